"""Every kind of object the post-operative phantom writes passes dciodvfy without errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rgcds.phantom import PostopStudies, write_postop_study

DCIODVFY = shutil.which("dciodvfy")

pytestmark = [
    pytest.mark.skipif(
        DCIODVFY is None,
        reason="dciodvfy (Debian package dicom3tools) is not installed; it validates our DICOM.",
    ),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> PostopStudies:
    return write_postop_study(
        tmp_path_factory.mktemp("postop-dciodvfy"), seed=3, size="small", rtstruct=True
    )


@pytest.mark.parametrize(
    ("study", "prefix"),
    [("mr", "003_"), ("mr", "008_"), ("mr", "200_"), ("petct", "002_"), ("petct", "101_")],
)
def test_dciodvfy_reports_no_errors(studies: PostopStudies, study: str, prefix: str) -> None:
    assert DCIODVFY is not None
    root = studies.mr_dir if study == "mr" else studies.petct_dir
    folder = next(p for p in root.iterdir() if p.name.startswith(prefix))
    path: Path = sorted(folder.glob("*.dcm"))[0]
    result = subprocess.run(
        [DCIODVFY, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if "Error" in line]
    assert not errors, f"dciodvfy found errors in {folder.name}/{path.name}:\n{output}"
