"""A PET/CT study without an MR partner, and bad PET input, through the whole pipeline.

Each case must end with a report in the PET study that says what was (not) done; none may
crash: PET-only analysis on the PET grid; FDG (not analysed, why); no weight or dose (TBR
only, no SUV); decay correction NONE (no SUV, said so); a PET of one slice (not analysed,
geometry).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from rgcds.phantom import PostopStudies, write_postop_study
from rgcds.pipeline import StudyContext, run_study
from tests.system.test_end_to_end import settings_for

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def postop(tmp_path_factory: pytest.TempPathFactory) -> PostopStudies:
    return write_postop_study(tmp_path_factory.mktemp("postop-pet"), seed=12)


def _edited(postop: PostopStudies, tmp: Path, edit: Callable[[Any], None],
            keep: Callable[[int], bool] = lambda i: True) -> Path:
    out = tmp / "petct"
    shutil.copytree(postop.petct_dir, out)
    pet_dir = next(p for p in out.iterdir() if p.is_dir() and "MET" in p.name)
    for i, path in enumerate(sorted(pet_dir.glob("*.dcm"))):
        if not keep(i):
            path.unlink()
            continue
        ds = pydicom.dcmread(path)
        edit(ds)
        ds.save_as(path)
    return out


def _texts(outcome: Any) -> str:
    parts: list[str] = []
    for _uid, path in outcome.written:
        ds = pydicom.dcmread(path)
        if ds.Modality != "SR":
            continue
        stack = list(ds.get("ContentSequence", []))
        while stack:
            item = stack.pop()
            if "TextValue" in item:
                parts.append(str(item.TextValue))
            stack += list(item.get("ContentSequence", []))
    return " | ".join(parts)


def _run(inputs: Path, tmp: Path, notes: tuple[str, ...] = ()) -> Any:
    ctx = StudyContext(inputs=(inputs,), work_dir=tmp / "work", settings=settings_for(tmp),
                       notes=notes)
    return run_study(ctx)


def test_pet_without_mr_is_measured_on_its_own_grid(postop: PostopStudies, tmp_path: Path) -> None:
    outcome = _run(postop.petct_dir, tmp_path, ("No MR study of this patient: PET-only.",))
    assert outcome.status == "complete", outcome.reason
    assert outcome.summary["pet"]["units"] == "SUVbw"
    written = [pydicom.dcmread(p, stop_before_pixels=True) for _u, p in outcome.written]
    assert {ds.StudyInstanceUID for ds in written} == {postop.petct_study_uid}
    assert {"SEG", "SR", "DOC"} <= {ds.Modality for ds in written}
    assert "CT series of the PET/CT study was recognised and not used" in _texts(outcome)


def test_fdg_pet_is_reported_as_not_analysed(postop: PostopStudies, tmp_path: Path) -> None:
    def fdg(ds: Any) -> None:
        item = ds.RadiopharmaceuticalInformationSequence[0]
        item.Radiopharmaceutical = "Fluorodeoxyglucose F^18^"
        item.RadiopharmaceuticalCodeSequence[0].CodeValue = "35321007"
        item.RadiopharmaceuticalCodeSequence[0].CodeMeaning = "Fluorodeoxyglucose F^18^"
        ds.SeriesDescription = "FDG Brain AC"

    outcome = _run(_edited(postop, tmp_path, fdg), tmp_path)
    assert outcome.status == "not analysed"
    assert "FDG" in (outcome.reason or "")
    assert "FDG" in _texts(outcome)


@pytest.mark.parametrize(
    ("name", "edit", "why"),
    [
        ("no weight", lambda ds: delattr(ds, "PatientWeight"), "weight"),
        ("decay NONE", lambda ds: setattr(ds, "DecayCorrection", "NONE"), "NONE"),
    ],
)
def test_pet_without_suv_calibration_gives_ratios_only(
    postop: PostopStudies, tmp_path: Path, name: str, edit: Callable[[Any], None], why: str
) -> None:
    outcome = _run(_edited(postop, tmp_path, edit), tmp_path)
    assert outcome.status == "complete", (name, outcome.reason)
    pet = outcome.summary["pet"]
    assert pet["units"] != "SUVbw" and pet["suv_max"] is None and pet["tbr_max"] > 0
    assert why.lower() in _texts(outcome).lower()


def test_one_slice_pet_is_not_analysed_with_the_reason(
    postop: PostopStudies, tmp_path: Path
) -> None:
    outcome = _run(_edited(postop, tmp_path, lambda ds: None, keep=lambda i: i == 20), tmp_path)
    assert outcome.status == "not analysed"
    assert "slice" in (outcome.reason or "").lower()
