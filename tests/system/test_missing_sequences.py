"""Offline ``run_study`` of a phantom study without its T1, or without its FLAIR.

A missing T1, T2 or FLAIR never makes a study with a T1c "not analysed": the segmentation
substitutes the channel, and the report names the missing sequence and the substitute.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from rgcds.pipeline import StudyContext, run_study
from tests.system.test_end_to_end import _walk, settings_for

pytestmark = [pytest.mark.slow]


def _run_without(phantom_study: Any, tmp_path: Path, role: str) -> tuple[Any, list[str], Path]:
    study_dir = tmp_path / f"no-{role}"
    for series in phantom_study.series:
        if series.role not in (role, "PET"):
            shutil.copytree(series.directory, study_dir / series.directory.name)
    work = tmp_path / "work"
    ctx = StudyContext(inputs=(study_dir,), work_dir=work, settings=settings_for(tmp_path))
    outcome = run_study(ctx)
    sr = next(
        pydicom.dcmread(p)
        for _u, p in outcome.written
        if pydicom.dcmread(p, stop_before_pixels=True).Modality == "SR"
    )
    texts = [str(item.TextValue) for item in _walk(sr) if "TextValue" in item]
    return outcome, texts, work


@pytest.mark.parametrize(
    ("missing", "substitute"), [("T1", "T1c"), ("FLAIR", "T2")], ids=["no-T1", "no-FLAIR"]
)
def test_study_without_a_sequence_is_complete_and_says_so(
    phantom_study: Any, tmp_path: Path, missing: str, substitute: str
) -> None:
    outcome, texts, work = _run_without(phantom_study, tmp_path, missing)
    assert outcome.status == "complete", outcome.reason
    modalities = {pydicom.dcmread(p, stop_before_pixels=True).Modality for _u, p in outcome.written}
    assert {"SEG", "SR"} <= modalities
    note = f"No {missing} series: the segmentation used the {substitute}"
    assert any(note in t for t in texts), texts
    assert any("volumes may be less accurate" in t for t in texts)
    labels = sitk.GetArrayFromImage(
        sitk.ReadImage(str(work / "segmentation" / "labels_native.nii.gz"))
    )
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_study.labels_native_path)))
    assert np.logical_and(labels > 0, truth > 0).sum() > 0, "the tumour was missed entirely"
