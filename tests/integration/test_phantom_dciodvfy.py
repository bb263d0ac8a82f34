"""Every kind of object the phantom writes passes dciodvfy (dicom3tools) without errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rgcds.phantom import PhantomStudy, write_study

DCIODVFY = shutil.which("dciodvfy")

pytestmark = pytest.mark.skipif(
    DCIODVFY is None,
    reason="dciodvfy (Debian package dicom3tools) is not installed; it validates our DICOM.",
)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> PhantomStudy:
    return write_study(tmp_path_factory.mktemp("phantom-dciodvfy"), seed=7, size="small")


@pytest.mark.parametrize("role", ["T1", "T1c", "T2", "FLAIR", "PET"])
@pytest.mark.parametrize("which", ["first", "last"])
def test_dciodvfy_reports_no_errors(study: PhantomStudy, role: str, which: str) -> None:
    assert DCIODVFY is not None
    files = sorted(study.series_by_role(role).directory.glob("*.dcm"))
    path: Path = files[0] if which == "first" else files[-1]
    result = subprocess.run(
        [DCIODVFY, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if "Error" in line]
    assert not errors, f"dciodvfy found errors in {role} {path.name}:\n{output}"
