"""A private Orthanc PACS on loopback (Debian package ``orthanc``, DICOMweb from
``orthanc-dicomweb``): its own configuration, storage and free ports.

The demo (``rgcds demo --pacs``) runs one as the hospital's PACS; the test suite's real peer
is the same class (``tests/conftest.py``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ORTHANC_BIN = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Orthanc:
    """A private Orthanc on loopback, driven over its REST API (the demo's PACS; the test
    suite's ``orthanc`` fixture)."""

    aet: str
    dicom_port: int
    http_port: int
    workdir: Path
    name: str = "rgcds-test-pacs"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - http://127.0.0.1
            payload = resp.read()
        return json.loads(payload) if payload else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def request_raw(self, path: str) -> bytes:
        req = urllib.request.Request(self.url + path, method="GET")  # noqa: S310
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - http://127.0.0.1
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
            "Name": self.name,
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
            config["Plugins"] = [str(DICOMWEB_PLUGIN)]
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
