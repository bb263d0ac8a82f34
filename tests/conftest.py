"""Shared fixtures: real DICOM peers on loopback and phantom studies generated once.

* ``orthanc``: a real Orthanc PACS (Debian package) on free loopback ports, with its own
  temporary configuration and storage, started once per session. Reset between tests with
  ``orthanc.clear()`` where a test needs an empty PACS.
* ``phantom_study``: a small synthetic glioblastoma study (``rgcds.phantom``), generated
  once per session.
* ``free_port()``: a free TCP port on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rgcds.demo.orthanc import ORTHANC_BIN, Orthanc, free_port

# Prefect: a private home per test session, the local ephemeral API, patience on a busy CI box.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="rgcds-prefect-"))
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


OrthancServer = Orthanc  # the suite's name for it


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
