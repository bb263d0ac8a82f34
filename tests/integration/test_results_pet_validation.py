"""The PET result objects pass dciodvfy, a real Orthanc files each in its own study, and the
PET SEG read back by highdicom holds exactly the PET masks."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest

from rgcds.config import DestinationSettings
from rgcds.results import (
    PetSegment,
    SegmentationResult,
    SourceSeries,
    WrittenResults,
    build_pet_segmentation,
    write_results,
)
from rgcds.results.export import deliver_due, enqueue
from rgcds.results.testing import (
    PET_MODEL,
    SEG_MODEL,
    make_labels,
    make_mr_series,
    make_pet_images,
    make_pet_masks,
    make_pet_only_content,
    make_pet_report,
    make_pet_series,
    make_pet_uptake,
    make_report_content,
)
from rgcds.store import OutboxState
from tests.conftest import dciodvfy
from tests.outbox import StoreOutbox

pytestmark = pytest.mark.slow

# dciodvfy does not know our private coding scheme (declared in Coding Scheme Identification).
_ACCEPTED_WARNING = "Unrecognized defined term <99RGCDS>"


@pytest.fixture(scope="module")
def mr() -> SourceSeries:
    return SourceSeries(tuple(make_mr_series()))


@pytest.fixture(scope="module")
def pet_source() -> SourceSeries:
    return SourceSeries(tuple(make_pet_series()))


@pytest.fixture(scope="module", params=["paired-suv", "paired-arbitrary", "pet-only"])
def written(
    request: pytest.FixtureRequest,
    mr: SourceSeries,
    pet_source: SourceSeries,
    tmp_path_factory: pytest.TempPathFactory,
) -> WrittenResults:
    out = tmp_path_factory.mktemp(request.param)
    if request.param == "pet-only":
        return write_results(
            out, make_pet_only_content(pet_source), pet_images=make_pet_images(pet_source)
        )
    pet = make_pet_report(pet_source, suv=request.param == "paired-suv")
    return write_results(
        out,
        dataclasses.replace(make_report_content(mr), pet=pet),
        source=mr,
        segmentation=SegmentationResult(make_labels(), SEG_MODEL),
        pet_images=make_pet_images(pet_source, mr),
    )


def test_dciodvfy_finds_no_errors(written: WrittenResults) -> None:
    kinds = {o.kind for o in written.objects}
    assert {"pet-seg", "sr", "pet-sc", "pdf"} <= kinds
    for obj in written.objects:
        errors, warnings = dciodvfy(obj.path)
        assert errors == [], (obj.kind, errors)
        assert [w for w in warnings if _ACCEPTED_WARNING not in w] == [], (obj.kind, warnings)


def test_pet_seg_read_back_equals_the_pet_masks(
    written: WrittenResults, pet_source: SourceSeries
) -> None:
    seg = hd.seg.segread(written.of_kind("pet-seg")[0].path)
    assert seg.StudyInstanceUID == pet_source.study_instance_uid
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[d.SOPInstanceUID for d in pet_source.datasets],
        segment_numbers=[1, 2, 3],
    )
    masks = make_pet_masks(make_pet_uptake(*pet_source.shape))
    for channel, segment in enumerate(PetSegment):
        np.testing.assert_array_equal(pixels[..., channel].astype(bool), masks[segment])


def test_phantom_pet_series_seg_is_valid(phantom_study: Any, tmp_path: Path) -> None:
    """The phantom's PET (a full PET Image IOD) as the source of a PET SEG."""
    series = phantom_study.series_by_role("PET")
    datasets = [pydicom.dcmread(p) for p in sorted(series.directory.glob("*.dcm"))]
    normal = np.cross(
        np.asarray(datasets[0].ImageOrientationPatient[:3], float),
        np.asarray(datasets[0].ImageOrientationPatient[3:], float),
    )
    datasets.sort(key=lambda d: float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)))
    source = SourceSeries(tuple(datasets))
    uptake = source.pixel_volume()
    brain = uptake > np.percentile(uptake, 50)
    background = float(uptake[brain].mean())
    masks = make_pet_masks(uptake / background, threshold=1.6)
    assert masks[PetSegment.BTV].any()
    seg = build_pet_segmentation(source, masks, algorithm=PET_MODEL)
    assert seg is not None
    path = tmp_path / "pet-seg.dcm"
    seg.save_as(path)
    errors, warnings = dciodvfy(path)
    assert errors == []
    assert [w for w in warnings if _ACCEPTED_WARNING not in w] == []


@pytest.mark.orthanc
def test_orthanc_files_each_object_in_its_study(
    orthanc: Any,
    written: WrittenResults,
    mr: SourceSeries,
    pet_source: SourceSeries,
    tmp_path: Path,
) -> None:
    orthanc.clear()
    destination = DestinationSettings(
        name="orthanc",
        ae_title=orthanc.aet,
        host="127.0.0.1",
        port=orthanc.dicom_port,
        calling_ae_title="RGCDS",
    )
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    enqueue(outbox, written.files(), [destination], job_id=outbox.job_id, now=0.0)
    summary = deliver_due(outbox, [destination], now=0.0)
    assert summary.sent == len(written.objects), [i.last_error for i in outbox.all()]
    assert all(i.state is OutboxState.SENT for i in outbox.all())
    stored = {
        orthanc.instance_tags(i)["SOPInstanceUID"]: orthanc.instance_tags(i)
        for i in orthanc.instances()
    }
    assert set(stored) == {o.sop_instance_uid for o in written.objects}
    for obj in written.objects:
        assert stored[obj.sop_instance_uid]["StudyInstanceUID"] == obj.study_instance_uid
    pet_seg = written.of_kind("pet-seg")[0]
    assert pet_seg.study_instance_uid == pet_source.study_instance_uid
    pet_only = not written.of_kind("seg")
    expected_studies = (
        {pet_source.study_instance_uid}
        if pet_only
        else {pet_source.study_instance_uid, mr.study_instance_uid}
    )
    assert {tags["StudyInstanceUID"] for tags in stored.values()} == expected_studies
    assert len(orthanc.studies()) == len(expected_studies)
    modalities = {tags.get("Modality") for tags in stored.values()}
    assert {"SEG", "SR", "DOC"} <= modalities
