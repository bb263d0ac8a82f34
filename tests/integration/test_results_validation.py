"""Every result object passes dciodvfy, a real Orthanc accepts and indexes them, and the
SEG read back by highdicom holds exactly the pipeline's masks."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pytest

from rgcds.config import DestinationSettings
from rgcds.results import (
    SegmentationResult,
    SourceSeries,
    StudyIdentity,
    WrittenResults,
    write_results,
)
from rgcds.results.export import deliver_due, enqueue
from rgcds.results.testing import (
    SEG_MODEL,
    make_labels,
    make_mr_series,
    make_not_analysed_content,
    make_report_content,
)
from rgcds.store import OutboxState
from tests.conftest import dciodvfy
from tests.outbox import StoreOutbox

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source() -> SourceSeries:
    return SourceSeries(tuple(make_mr_series()))


@pytest.fixture(scope="module", params=["all-labels", "empty-necrosis"])
def written(
    request: pytest.FixtureRequest, source: SourceSeries, tmp_path_factory: pytest.TempPathFactory
) -> tuple[WrittenResults, np.ndarray]:
    labels = make_labels(empty=(1,) if request.param == "empty-necrosis" else ())
    flair = source.pixel_volume() * 0.8
    results = write_results(
        tmp_path_factory.mktemp(request.param),
        make_report_content(source, labels),
        source=source,
        segmentation=SegmentationResult(labels, SEG_MODEL),
        backgrounds={"FLAIR": flair},
    )
    return results, labels


# The only warning we accept: dciodvfy does not know our private coding scheme (declared in
# the SR's Coding Scheme Identification Sequence).
_ACCEPTED_WARNING = "Unrecognized defined term <99RGCDS>"


def test_dciodvfy_finds_no_errors(written: tuple[WrittenResults, np.ndarray]) -> None:
    results, _ = written
    assert {o.kind for o in results.objects} == {"seg", "sr", "sc", "pdf"}
    for obj in results.objects:
        errors, warnings = dciodvfy(obj.path)
        assert errors == [], (obj.kind, errors)
        assert [w for w in warnings if _ACCEPTED_WARNING not in w] == [], (obj.kind, warnings)


def test_dciodvfy_finds_no_errors_postoperative(source: SourceSeries, tmp_path: Path) -> None:
    labels = make_labels()
    content = dataclasses.replace(make_report_content(source, labels), postoperative=True)
    results = write_results(
        tmp_path,
        content,
        source=source,
        segmentation=SegmentationResult(labels, SEG_MODEL, postoperative=True),
        overlays=False,
        pdf=False,
    )
    assert {o.kind for o in results.objects} == {"seg", "sr"}
    for obj in results.objects:
        errors, warnings = dciodvfy(obj.path)
        assert errors == [], (obj.kind, errors)
        assert [w for w in warnings if _ACCEPTED_WARNING not in w] == [], (obj.kind, warnings)


def test_dciodvfy_not_analysed(source: SourceSeries, tmp_path: Path) -> None:
    content = make_not_analysed_content(StudyIdentity.from_dataset(source.datasets[0]))
    for obj in write_results(tmp_path, content).objects:
        errors, _ = dciodvfy(obj.path)
        assert errors == [], (obj.kind, errors)


def test_seg_read_back_equals_the_pipeline_masks(
    written: tuple[WrittenResults, np.ndarray], source: SourceSeries
) -> None:
    results, labels = written
    seg = hd.seg.segread(results.of_kind("seg")[0].path)
    uids = [ds.SOPInstanceUID for ds in source.datasets]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=[1, 2, 3]
    )
    for channel, label in enumerate((1, 3, 2)):
        np.testing.assert_array_equal(pixels[..., channel].astype(bool), labels == label)


@pytest.mark.orthanc
def test_orthanc_accepts_and_indexes_every_object(
    orthanc: Any, written: tuple[WrittenResults, np.ndarray], tmp_path: Path
) -> None:
    results, _ = written
    orthanc.clear()
    destination = DestinationSettings(
        name="orthanc",
        ae_title=orthanc.aet,
        host="127.0.0.1",
        port=orthanc.dicom_port,
        calling_ae_title="RGCDS",
    )
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    enqueue(outbox, results.files(), [destination], job_id=outbox.job_id, now=0.0)
    summary = deliver_due(outbox, [destination], now=0.0)
    assert summary.sent == len(results.objects), [i.last_error for i in outbox.all()]
    assert all(i.state is OutboxState.SENT for i in outbox.all())
    stored = {
        orthanc.instance_tags(i)["SOPInstanceUID"]: orthanc.instance_tags(i)
        for i in orthanc.instances()
    }
    assert set(stored) == {o.sop_instance_uid for o in results.objects}
    studies = {tags["StudyInstanceUID"] for tags in stored.values()}
    assert len(studies) == 1
    modalities = {tags.get("Modality") for tags in stored.values()}
    assert {"SEG", "SR", "DOC"} <= modalities
    # Idempotent: a re-run's delivery replaces, the PACS still holds one copy of each.
    enqueue(outbox, results.files(), [destination], job_id=outbox.new_job(), now=1.0)
    deliver_due(outbox, [destination], now=1.0)
    assert len(orthanc.instances()) == len(results.objects)


def test_phantom_study_end_to_end(tmp_path: Path) -> None:
    """The phantom's T1c series and its truth labels go through SEG, SR, SC and PDF."""
    import pydicom
    import SimpleITK as sitk

    import rgcds.phantom.study as study_mod

    study = study_mod.write_study(tmp_path / "phantom", seed=1, size="small", with_pet=False)
    image = sitk.ReadImage(str(study.labels_native_path))
    normal = np.array(image.GetDirection()).reshape(3, 3)[:, 2]
    t1c = study.series_by_role("T1c")
    datasets = [pydicom.dcmread(p) for p in t1c.directory.glob("*.dcm")]
    datasets.sort(key=lambda d: float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)))
    np.testing.assert_allclose(datasets[0].ImagePositionPatient, image.GetOrigin(), atol=1e-3)
    labels = sitk.GetArrayFromImage(image).astype(np.uint8)
    source = SourceSeries(tuple(datasets))
    results = write_results(
        tmp_path / "out",
        make_report_content(source, labels),
        source=source,
        segmentation=SegmentationResult(labels, SEG_MODEL),
    )
    for obj in results.objects:
        errors, _ = dciodvfy(obj.path)
        assert errors == [], (obj.kind, errors)
    seg = hd.seg.segread(results.of_kind("seg")[0].path)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[d.SOPInstanceUID for d in datasets], segment_numbers=[1, 2, 3]
    )
    for channel, label in enumerate((1, 3, 2)):
        np.testing.assert_array_equal(pixels[..., channel].astype(bool), labels == label)
    assert seg.PatientName == study.patient_name
