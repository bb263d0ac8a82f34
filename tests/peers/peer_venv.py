"""Running a peer's own code in the nnU-Net venv (``make nnunet-extra``: PyTorch, nnunetv2, MONAI).

Its python is ``RGCDS_NNUNET_PYTHON`` (``make test`` sets it) or ``.venv-nnunet/bin/python``;
without it the peer tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def peer_python() -> str:
    """The nnU-Net venv's python, or skip (fail under CI) when it is missing."""
    python = os.environ.get("RGCDS_NNUNET_PYTHON") or str(ROOT / ".venv-nnunet/bin/python")
    if not Path(python).is_file():
        message = (f"the nnU-Net venv is missing ({python}); 'make nnunet-extra' makes it "
                   "('make test' does)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python


def run_peer(python: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``python args...`` with rgcds on ``PYTHONPATH`` and two threads."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2")
    return subprocess.run([python, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def check(done: subprocess.CompletedProcess[str]) -> None:
    """Assert the peer command succeeded, showing its output when it did not."""
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
