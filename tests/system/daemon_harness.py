"""What the system tests share: push a study to a running daemon with storescu, wait for its
job to settle, read the SR's texts."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pydicom

from rgcds.results._common import SERIES_NUMBER, ObjectKind
from rgcds.store import Job, JobState
from tests.conftest import require_tool

RANO_SR_SERIES = str(SERIES_NUMBER[ObjectKind.RANO_SR])
"""Series number of the RANO key-measurement SR, as Orthanc's simplified tags give it: the
report SR of a study is the one SR not in this series."""


def push_study(port: int, folder: Path, called_aet: str = "RGCDS", *extra: str) -> None:
    """Send every file below ``folder`` to the daemon on ``port`` with dcmtk's storescu."""
    storescu = require_tool("storescu", "dcmtk")
    sent = subprocess.run(
        [storescu, "-aet", "SCANNER1", "-aec", called_aet, *extra, "+sd", "+r",
         "127.0.0.1", str(port), str(folder)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert sent.returncode == 0, sent.stderr


def wait_for_last_job(daemon: Any, timeout: float = 900.0) -> Job | None:
    """The daemon's latest job once it is done or failed (or as it is at ``timeout``)."""
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        assert daemon.jobs is not None
        jobs = daemon.jobs.jobs()
        job = jobs[-1] if jobs else None
        if job is not None and job.state in (JobState.DONE, JobState.FAILED):
            break
        time.sleep(1)
    return job


def sr_texts(ds: pydicom.Dataset) -> list[str]:
    """Every TEXT value of an SR's content tree, depth first."""
    out = []
    for item in ds.get("ContentSequence", []):
        if "TextValue" in item:
            out.append(str(item.TextValue))
        out += sr_texts(item)
    return out


__all__ = ["push_study", "sr_texts", "wait_for_last_job"]
