"""Small pieces of the post-operative read: the site MGMT file and the post-operative rule."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rgcds.config import Settings
from rgcds.pipeline import StudyContext
from rgcds.pipeline.postop import is_postoperative, site_mgmt_status
from rgcds.study import SeriesRole


def _ctx(tmp_path: Path, **processing: Any) -> StudyContext:
    settings = Settings(processing=processing)  # type: ignore[arg-type]
    return StudyContext(inputs=(), work_dir=tmp_path, settings=settings)


def test_site_mgmt_status_from_the_clinical_data_file(tmp_path: Path) -> None:
    csv = tmp_path / "clinical.csv"
    csv.write_text(
        "accession_number,mgmt_methylated\nACC1,1\nACC2,unmethylated\nACC3,\n"
    )
    ctx = _ctx(tmp_path, clinical_data_file=csv)
    assert site_mgmt_status(ctx, "ACC1") is True
    assert site_mgmt_status(ctx, "ACC2") is False
    assert site_mgmt_status(ctx, "ACC3") is None
    assert site_mgmt_status(ctx, "ACC9") is None
    assert site_mgmt_status(ctx, "") is None
    assert site_mgmt_status(_ctx(tmp_path), "ACC1") is None
    missing = _ctx(tmp_path, clinical_data_file=tmp_path / "nope.csv")
    assert site_mgmt_status(missing, "ACC1") is None


def _converted(pet_study: str, mr_study: str) -> Any:
    series = {
        SeriesRole.T1C: SimpleNamespace(study_instance_uid=mr_study),
        SeriesRole.PET: SimpleNamespace(study_instance_uid=pet_study),
    }
    return SimpleNamespace(series=series)


@pytest.mark.parametrize(
    ("mode", "pet_study", "expected"),
    [("auto", "2.2", True), ("auto", "1.1", False), ("always", "1.1", True),
     ("never", "2.2", False)],
)
def test_postoperative_rule(tmp_path: Path, mode: str, pet_study: str, expected: bool) -> None:
    ctx = _ctx(tmp_path, postoperative=mode)
    assert is_postoperative(ctx, _converted(pet_study, "1.1")) is expected
