"""Every study gets an answer: the four-sequence study with and without a PET, and with each
single MR sequence other than the T1c removed, ends in a complete report.

Prediction models that the study cannot feed are skipped with a note in the SR (never a
"not analysed" study); a missing T1, T2 or FLAIR is named in the report. The MR-only study
also goes the whole DICOM path: storescu -> ``rgcds serve`` -> Orthanc.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest

from rgcds.config import DestinationSettings
from rgcds.logging import configure_logging
from rgcds.pipeline import StudyContext, run_study
from rgcds.store import JobState
from tests.conftest import OrthancServer, free_port
from tests.system.daemon_harness import RANO_SR_SERIES, push_study, sr_texts, wait_for_last_job
from tests.system.test_end_to_end import settings_for

pytestmark = [pytest.mark.slow]

MARKERS = ("MGMT", "IDH", "EGFR")


def _study_without(phantom_study: Any, roles: set[str], into: Path) -> Path:
    for series in phantom_study.series:
        if series.role not in roles:
            shutil.copytree(series.directory, into / series.directory.name)
    return into


def _sr(outcome: Any) -> pydicom.Dataset:
    for _uid, path in outcome.written:
        ds = pydicom.dcmread(path)
        if ds.Modality == "SR":
            return ds
    raise AssertionError("no SR was written")


@pytest.mark.parametrize(
    "removed",
    [set(), {"PET"}, {"PET", "T1"}, {"PET", "T2"}, {"PET", "FLAIR"}],
    ids=["with-PET", "MR-only", "no-T1", "no-T2", "no-FLAIR"],
)
def test_study_is_complete_with_notes_for_what_was_missing(
    removed: set[str], phantom_study: Any, tmp_path: Path
) -> None:
    study = _study_without(phantom_study, removed, tmp_path / "study")
    ctx = StudyContext(inputs=(study,), work_dir=tmp_path / "work",
                       settings=settings_for(tmp_path))
    outcome = run_study(ctx)
    assert outcome.status == "complete", outcome.reason
    assert set(outcome.summary["volumes_cm3"]) >= {"WT", "TC", "ET"}  # type: ignore[arg-type]
    text = " ".join(sr_texts(_sr(outcome)))
    predictions = outcome.summary["predictions"]
    assert isinstance(predictions, dict)
    missing_mr = removed - {"PET"}
    if not missing_mr:
        # Every marker is predicted: by the PET variant with a PET, the MR one without.
        assert {m.split("_")[0].upper() for m in predictions} == set(MARKERS), (
            predictions, text)
    for role in missing_mr:
        # The report names the missing sequence (segmentation substitute, skipped models).
        assert role in text, text
    if removed:
        assert "not applied" in text, text  # the models this study could not feed


@pytest.mark.orthanc
@pytest.mark.dcmtk
def test_mr_only_study_through_the_daemon_into_orthanc(
    orthanc: OrthancServer, phantom_study: Any, tmp_path: Path
) -> None:
    from rgcds.commands.serve import build_daemon

    study = _study_without(phantom_study, {"PET"}, tmp_path / "mr-only")
    orthanc.clear()
    logs = io.StringIO()
    configure_logging("INFO", "json", logs)
    settings = settings_for(
        tmp_path,
        destinations=[DestinationSettings(name="pacs", ae_title=orthanc.aet, host="127.0.0.1",
                                          port=orthanc.dicom_port).model_dump()],
    )
    port = free_port()
    daemon = build_daemon(settings, None, port=port)
    daemon.start()
    try:
        push_study(port, study, settings.listener.ae_title)
        job = wait_for_last_job(daemon)
        assert job is not None and job.state is JobState.DONE, job
        assert job.reason is None, job.reason  # complete: nothing recorded as not analysed
    finally:
        daemon.stop(timeout=60)
    tags = [orthanc.get(f"/instances/{i}/simplified-tags") for i in orthanc.instances()]
    modalities = sorted(t["Modality"] for t in tags if t.get("SeriesNumber") != RANO_SR_SERIES)
    assert "SEG" in modalities and "DOC" in modalities and modalities.count("SR") == 1
    sr_id = next(i for i, t in zip(orthanc.instances(), tags, strict=True)
                 if t["Modality"] == "SR" and t.get("SeriesNumber") != RANO_SR_SERIES)
    sr = pydicom.dcmread(io.BytesIO(orthanc.request_raw(f"/instances/{sr_id}/file")))
    text = " ".join(sr_texts(sr))
    assert "not analysed" not in text.lower()
    assert "PET" in text and "not applied" in text  # the PET variants were skipped, said so
    log = logs.getvalue()
    assert "telemetry" not in log.lower()
    for part in phantom_study.patient_name.replace("^", " ").split():
        assert part not in log
