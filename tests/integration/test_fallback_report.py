"""The last-resort report: dciodvfy-clean, in the patient's study, saying what failed."""

from __future__ import annotations

from pathlib import Path

import pydicom

from rgcds.results.fallback import BASIC_TEXT_SR, write_fallback_report
from rgcds.results.testing import make_mr_series
from tests.conftest import dciodvfy


def test_fallback_report_is_valid_and_says_why(tmp_path: Path) -> None:
    source = make_mr_series()[0]
    src = tmp_path / "src.dcm"
    source.save_as(src, enforce_file_format=True)
    uid, path = write_fallback_report(
        src, tmp_path / "out", "Automated analysis failed during writing the results.",
        notes=["One note."], key="7",
    )
    again, _ = write_fallback_report(src, tmp_path / "out2", "x", key="7")
    assert again == uid  # a re-run replaces, not duplicates
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == BASIC_TEXT_SR and ds.SOPInstanceUID == uid
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.PatientID == source.PatientID
    assert "research use only" in ds.SeriesDescription
    texts = [str(i.TextValue) for i in ds.ContentSequence]
    assert any("without automated results" in t for t in texts)
    assert any("writing the results" in t for t in texts)
    errors, warnings = dciodvfy(path)
    assert not errors, errors + warnings
