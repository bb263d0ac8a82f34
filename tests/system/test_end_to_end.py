"""The product end to end: a study in, SEG/SR/SC/PDF out, in a real PACS.

* offline: ``run_study`` on a phantom study (what ``rgcds process`` does);
* a study without T1c still gets an SR and a PDF that say why;
* the daemon: dcmtk's storescu pushes a phantom study to ``rgcds serve`` (listener,
  trigger, Prefect flow on the local ephemeral API, outbox), which delivers the results to
  a real Orthanc; no PHI reaches the logs on the way.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from rgcds.config import DestinationSettings, Settings, load_settings
from rgcds.logging import configure_logging
from rgcds.pipeline import StudyContext, run_study
from rgcds.store import JobState
from tests.conftest import OrthancServer, free_port
from tests.system.daemon_harness import RANO_SR_SERIES, push_study, sr_texts, wait_for_last_job

pytestmark = [pytest.mark.slow]

MODELS = Path(__file__).resolve().parents[2] / "models"
#: The reference model on this (small, template-derived) phantom reaches WT Dice 0.78 or more
#: on held-out phantoms (its card); a bound well under that still fails a broken pipeline
#: (a flipped axis, a shifted grid, labels on the wrong series), which "overlap > 0" did not.
DICE_WT_MIN = 0.6


def settings_for(tmp: Path, **extra: Any) -> Settings:
    base = load_settings(None)
    data = base.model_dump()
    data["storage"]["root"] = str(tmp / "storage")
    data["storage"]["min_free_bytes"] = 0
    data["inference"]["models_root"] = str(MODELS)
    data["trigger"]["stable_seconds"] = 3
    data["trigger"]["poll_seconds"] = 0.5
    data["metrics"]["enabled"] = False
    data["export"]["poll_seconds"] = 1
    data["export"]["initial_backoff_seconds"] = 1
    data.update(extra)
    return Settings(**data)


@pytest.fixture(scope="module")
def offline_run(phantom_study: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("offline")
    ctx = StudyContext(
        inputs=(phantom_study.series[0].directory.parent,),
        work_dir=tmp / "work",
        settings=settings_for(tmp),
    )
    return ctx, run_study(ctx)


def test_offline_run_writes_every_object(offline_run: Any, phantom_study: Any) -> None:
    _ctx, outcome = offline_run
    assert outcome.status == "complete", outcome.reason
    kinds = [pydicom.dcmread(p, stop_before_pixels=True).Modality for _u, p in outcome.written]
    assert kinds[0] == "SEG"
    assert {"SEG", "SR", "OT", "DOC"} <= set(kinds)  # the Secondary Capture (OT) too
    for _uid, path in outcome.written:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.StudyInstanceUID == phantom_study.study_instance_uid
        assert "research use only" in str(ds.get("SeriesDescription", "")).lower()
    assert set(outcome.summary["volumes_cm3"]) == {"NCR", "ED", "ET", "TC", "WT"}


def test_seg_is_on_the_t1c_grid_and_finds_the_tumour(offline_run: Any, phantom_study: Any) -> None:
    _ctx, outcome = offline_run
    seg = hd.seg.segread(outcome.written[0][1])
    t1c = phantom_study.series_by_role("T1c")
    referenced = {
        item.ReferencedSOPInstanceUID
        for s in seg.ReferencedSeriesSequence
        for item in s.ReferencedInstanceSequence
    }
    t1c_uids = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
                for p in t1c.directory.glob("*.dcm")}
    assert referenced <= t1c_uids
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(phantom_study.labels_native_path)))
    ctx, _ = offline_run
    labels = sitk.GetArrayFromImage(
        sitk.ReadImage(str(ctx.work_dir / "segmentation" / "labels_native.nii.gz"))
    )
    assert labels.shape == truth.shape
    overlap = np.logical_and(labels > 0, truth > 0).sum()
    dice = 2.0 * overlap / ((labels > 0).sum() + (truth > 0).sum())
    print(f"whole-tumour Dice on the native T1c grid: {dice:.3f}")
    assert dice >= DICE_WT_MIN, f"whole-tumour Dice {dice:.3f} < {DICE_WT_MIN}"


def test_rerun_resumes_from_the_work_directory(offline_run: Any) -> None:
    ctx, first = offline_run
    again = run_study(ctx)
    assert "preprocess" not in again.stage_seconds  # segmentation was reloaded
    assert [u for u, _p in again.written] == [u for u, _p in first.written]  # same UIDs


def test_study_without_t1c_gets_a_report_saying_why(phantom_study: Any, tmp_path: Path) -> None:
    study_dir = tmp_path / "no-t1c"
    for series in phantom_study.series:
        if series.role != "T1c":
            shutil.copytree(series.directory, study_dir / series.directory.name)
    ctx = StudyContext(inputs=(study_dir,), work_dir=tmp_path / "work",
                       settings=settings_for(tmp_path))
    outcome = run_study(ctx)
    assert outcome.status == "not analysed"
    assert "T1c" in (outcome.reason or "")
    modalities = sorted(pydicom.dcmread(p, stop_before_pixels=True).Modality
                        for _u, p in outcome.written)
    assert "SR" in modalities and "SEG" not in modalities
    texts = _report_texts(outcome)
    assert any("T1c" in t for t in texts), texts


def test_report_says_the_segmentation_passed_quality_control(offline_run: Any) -> None:
    _ctx, outcome = offline_run
    texts = " ".join(_report_texts(outcome))
    assert "Automatic segmentation passed quality control" in texts, texts
    assert "mirrored-image agreement Dice" in texts


def test_segmentation_failing_quality_control_is_withheld(
    phantom_study: Any, tmp_path: Path
) -> None:
    # A gate that no tumour passes (at most 0.1 % of the brain): what a study whose
    # segmentation fills the brain gets.
    qc = {"max_whole_tumour_brain_fraction": 0.001, "flip_check": False}
    ctx = StudyContext(inputs=(phantom_study.series[0].directory.parent,),
                       work_dir=tmp_path / "work", settings=settings_for(tmp_path, qc=qc))
    outcome = run_study(ctx)
    assert outcome.status == "not analysed"
    assert "automatic segmentation failed quality control" in (outcome.reason or "")
    assert "% of the brain" in (outcome.reason or "")
    modalities = sorted(pydicom.dcmread(p, stop_before_pixels=True).Modality
                        for _u, p in outcome.written)
    assert "SR" in modalities and "SEG" not in modalities
    texts = " ".join(_report_texts(outcome))
    assert "automatic segmentation failed quality control" in texts
    assert "measure" not in outcome.stage_seconds and "radiomics" not in outcome.stage_seconds


def _report_texts(outcome: Any) -> list[str]:
    """The TEXT values of the SR an offline run wrote."""
    sr = next(pydicom.dcmread(p) for _u, p in outcome.written
              if pydicom.dcmread(p, stop_before_pixels=True).Modality == "SR")
    return sr_texts(sr)


def _walk(ds: pydicom.Dataset) -> list[pydicom.Dataset]:
    items = []
    for item in ds.get("ContentSequence", []):
        items.append(item)
        items += _walk(item)
    return items


@pytest.mark.orthanc
@pytest.mark.dcmtk
def test_daemon_receives_processes_and_delivers_to_orthanc(
    orthanc: OrthancServer, phantom_study: Any, tmp_path: Path
) -> None:
    from rgcds.commands.serve import build_daemon

    orthanc.clear()
    logs = io.StringIO()
    configure_logging("INFO", "json", logs)
    settings = settings_for(
        tmp_path,
        destinations=[
            DestinationSettings(name="pacs", ae_title=orthanc.aet, host="127.0.0.1",
                                port=orthanc.dicom_port).model_dump()
        ],
    )
    port = free_port()
    daemon = build_daemon(settings, None, port=port)
    daemon.start()
    try:
        push_study(port, phantom_study.series[0].directory.parent, settings.listener.ae_title)
        job = wait_for_last_job(daemon)
        assert job is not None and job.state is JobState.DONE, job
    finally:
        daemon.stop(timeout=60)

    tags = [orthanc.get(f"/instances/{i}/simplified-tags") for i in orthanc.instances()]
    modalities = sorted(t["Modality"] for t in tags)
    segs = [t.get("SeriesDescription", "") for t in tags if t["Modality"] == "SEG"]
    assert sum("tumour" in d for d in segs) == 1
    assert all("tumour" in d or "PET" in d for d in segs)  # + the PET SEGs (PET in the study)
    reports = [t for t in tags if t["Modality"] == "SR" and t.get("SeriesNumber") != RANO_SR_SERIES]
    assert len(reports) == 1  # one report; the RANO key measurements beside it
    assert "DOC" in modalities
    studies = orthanc.studies()
    assert len(studies) == 1  # results went into the original study
    text = logs.getvalue()
    assert text, "the daemon logged nothing"
    for part in phantom_study.patient_name.replace("^", " ").split():
        assert part not in text
    assert phantom_study.patient_id not in text
