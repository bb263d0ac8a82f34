"""Shared fixtures: real DICOM peers on loopback and phantom studies generated once.

* ``orthanc``: a real Orthanc PACS (Debian package) on free loopback ports, with its own
  temporary configuration and storage, started once per session. Reset between tests with
  ``orthanc.clear()`` where a test needs an empty PACS.
* ``phantom_study``: a small synthetic glioblastoma study (``rgcds.phantom``), generated
  once per session.
* ``free_port()``: a free TCP port on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ORTHANC_BIN = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

# Prefect: a private home per test session, the local ephemeral API, patience on a busy CI box.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rgcds-prefect-"))
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OrthancServer:
    """A running Orthanc on loopback, driven over its REST API."""

    aet: str
    dicom_port: int
    http_port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = resp.read()
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def request_raw(self, path: str) -> bytes:
        req = urllib.request.Request(self.url + path, method="GET")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return bytes(resp.read())

    def instances(self) -> list[str]:
        return list(self.get("/instances"))

    def studies(self) -> list[str]:
        return list(self.get("/studies"))

    def instance_tags(self, orthanc_id: str) -> dict[str, Any]:
        return dict(self.get(f"/instances/{orthanc_id}/simplified-tags"))

    def clear(self) -> None:
        for pid in self.get("/patients"):
            self.request("DELETE", f"/patients/{pid}")

    def start(
        self, modalities: dict[str, list[Any]] | None = None, dicomweb: bool = False
    ) -> None:
        """Start Orthanc; ``dicomweb`` loads its DICOMweb plugin (``/dicom-web``, ``/wado``)."""
        config: dict[str, Any] = {
            "Name": "rgcds-test-pacs",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "HttpServerEnabled": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "DicomModalities": modalities or {},
            "Plugins": [],
            "StableAge": 2,
            "ConcurrentJobs": 1,
            "SaveJobs": False,
            "DicomScpTimeout": 30,
        }
        if dicomweb:
            config["Plugins"] = [DICOMWEB_PLUGIN]
            config["DicomWeb"] = {
                "Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado"
            }
        cfg = self.workdir / "orthanc.json"
        cfg.write_text(json.dumps(config, indent=2))
        log = (self.workdir / "orthanc.log").open("wb")
        self.process = subprocess.Popen(
            [ORTHANC_BIN, str(cfg)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "Orthanc exited at start-up: " + (self.workdir / "orthanc.log").read_text()
                )
            try:
                self.get("/system")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise RuntimeError("Orthanc did not answer on its REST port within 60 s.")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_orthanc(workdir: Path, aet: str = "ORTHANC", **kwargs: Any) -> OrthancServer:
    """Start an Orthanc in ``workdir``; skip the test if the Debian package is missing."""
    if not Path(ORTHANC_BIN).exists():
        pytest.skip("Orthanc is not installed (Debian package 'orthanc'); `make test` installs it.")
    workdir.mkdir(parents=True, exist_ok=True)
    server = OrthancServer(aet=aet, dicom_port=free_port(), http_port=free_port(), workdir=workdir)
    server.start(**kwargs)
    return server


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """A real Orthanc PACS on loopback for the whole session."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def phantom_study(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A small synthetic GBM study with MET-PET, generated once per session (seed 1)."""
    from rgcds.phantom import write_study

    return write_study(tmp_path_factory.mktemp("phantom"), seed=1, size="small", with_pet=True)


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """dciodvfy's ``Error`` and ``Warning`` lines for one object (skips without the tool)."""
    tool = require_tool("dciodvfy", "dicom3tools")
    proc = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [line for line in lines if line.startswith("Warning")]
    return errors, warnings


def require_tool(name: str, package: str) -> str:
    """Return the path of a command-line tool or skip the test with the reason."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed (Debian package '{package}'); `make test` installs it."
        )
    return path
