"""``rgcds demo --pacs`` (what ``make demo`` runs) works as a hospital does (issue 18, item 7).

The demo starts a private Orthanc with DICOMweb and ``rgcds serve`` in its own process, pushes
the pre-operative study and the post-operative MR + PET/CT pair with storescu, waits until
every study has been answered in the PACS, prints where each study opens in the viewer, and
stops what it started.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.viewer_harness import require_viewer

pytestmark = [pytest.mark.timeout(1800), pytest.mark.orthanc, pytest.mark.dcmtk]


def _listening(url: str) -> bool:
    host, port = re.match(r"http://([\d.]+):(\d+)", url).groups()  # type: ignore[union-attr]
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_demo_pushes_to_the_daemon_and_reads_the_results_in_the_pacs(tmp_path: Path) -> None:
    require_tool("storescu", "dcmtk")
    require_viewer()
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-m", "rgcds", "demo", "--pacs", "--size", "small",
         "--out", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=1700, cwd=root, check=False,
    )
    out = run.stdout
    assert run.returncode == 0, (out + run.stderr)[-4000:]
    assert out.count("pushed with storescu: ") == 3
    # Each study done in the daemon; the two MR studies hold a report in the PACS.
    states = re.findall(r"^rgcds status: \S+ (\w+) ", out, re.MULTILINE)
    assert len(states) == 3 and set(states) == {"done"}, out
    held = re.search(r"PACS holds (\d+) rgcds report SR\(s\) in (\d+) studies", out)
    assert held is not None and int(held.group(2)) == 2, out
    urls = re.findall(r"open in the viewer \(.*\): (http://\S+)", out)
    assert len(urls) == 3 and all("/viewer?StudyInstanceUIDs=" in u for u in urls), out
    assert "research use only" in out.lower()
    # Everything it started is stopped.
    pacs = re.search(r"PACS: Orthanc (http://\S+)", out)
    assert pacs is not None and not _listening(pacs.group(1))
    assert not _listening(urls[0])
    log = (tmp_path / "demo" / "rgcds-serve.log").read_text()
    assert "PHANTOM" not in log  # no patient name in the daemon's log
