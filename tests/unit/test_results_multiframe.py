"""Result writers on a multi-frame reference: one (Legacy Converted) Enhanced MR T1c.

The synthetic single-frame series is converted by highdicom's converter with its frames
stored out of slice order, so every check also proves that slice ``k`` is matched to the
right source frame.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from rgcds.exceptions import DicomInputError
from rgcds.results import (
    SegmentationResult,
    SourceSeries,
    build_overlays,
    build_report,
    build_segmentation,
    write_results,
)
from rgcds.results.content import frame_macro
from rgcds.results.pet_seg import build_pet_segmentation
from rgcds.results.testing import (
    ANALYSED_AT,
    SEG_MODEL,
    make_enhanced_mr,
    make_labels,
    make_mr_series,
    make_pet_images,
    make_pet_series,
    make_report_content,
)


@pytest.fixture(scope="module")
def single() -> SourceSeries:
    return SourceSeries(tuple(make_mr_series()))


@pytest.fixture(scope="module")
def multi(single: SourceSeries) -> SourceSeries:
    image, frames = make_enhanced_mr(single.datasets, shuffle_seed=3)
    assert list(frames) != sorted(frames)  # the frame order is not the slice order
    return SourceSeries((image,), frame_numbers=frames)


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return make_labels()


@pytest.fixture(scope="module")
def seg(multi: SourceSeries, labels: np.ndarray) -> hd.seg.Segmentation:
    return build_segmentation(multi, SegmentationResult(labels, SEG_MODEL), analysed_at=ANALYSED_AT)


def _position(ds: pydicom.Dataset, frame: int) -> list[float]:
    item = frame_macro(ds, frame, "PlanePositionSequence")
    assert item is not None
    return [float(v) for v in item.ImagePositionPatient]


def test_source_series_of_one_multiframe_image(single: SourceSeries, multi: SourceSeries) -> None:
    assert multi.is_multiframe and not single.is_multiframe
    assert multi.shape == single.shape
    assert multi.series_instance_uid == single.series_instance_uid
    np.testing.assert_allclose(multi.pixel_volume(), single.pixel_volume())
    for k in range(multi.shape[0]):
        assert multi.slice_dataset(k) is multi.datasets[0]
        frame = multi.slice_frame_number(k)
        assert frame is not None
        assert _position(multi.datasets[0], frame) == [
            float(v) for v in single.datasets[k].ImagePositionPatient
        ]
        assert multi.slice_geometry(k) == single.slice_geometry(k)


def test_source_series_defaults_to_the_stored_frame_order(multi: SourceSeries) -> None:
    stored = SourceSeries(multi.datasets)
    assert stored.frame_numbers == tuple(range(1, multi.shape[0] + 1))


def test_source_series_refuses_what_a_seg_cannot_reference(
    single: SourceSeries, multi: SourceSeries
) -> None:
    with pytest.raises(DicomInputError, match="one multi-frame image"):
        SourceSeries((multi.datasets[0], multi.datasets[0]))
    with pytest.raises(DicomInputError, match="frame numbers"):
        SourceSeries(multi.datasets, frame_numbers=(1, 1, 2))
    with pytest.raises(DicomInputError, match="single-frame"):
        SourceSeries(single.datasets, frame_numbers=(2,) * len(single.datasets))


def test_seg_has_the_one_multiframe_source_image(
    seg: hd.seg.Segmentation, multi: SourceSeries
) -> None:
    image = multi.datasets[0]
    referenced = [
        (i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID)
        for s in seg.ReferencedSeriesSequence
        for i in s.ReferencedInstanceSequence
    ]
    assert referenced == [(image.SOPClassUID, image.SOPInstanceUID)]
    assert seg.FrameOfReferenceUID == image.FrameOfReferenceUID


def test_seg_frames_reference_and_sit_on_their_source_frames(
    seg: hd.seg.Segmentation, multi: SourceSeries, labels: np.ndarray
) -> None:
    image = multi.datasets[0]
    slice_of_frame = {f: k for k, f in enumerate(multi.frame_numbers)}
    value = {1: 1, 2: 3, 3: 2}  # segment number -> BraTS label
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), *labels.shape[1:])
    assert int(seg.NumberOfFrames) > 0
    for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        sources = item.DerivationImageSequence[0].SourceImageSequence
        assert len(sources) == 1
        assert sources[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
        frame = int(sources[0].ReferencedFrameNumber)
        assert sources[0].SpatialLocationsPreserved == "YES"
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        assert position == _position(image, frame)
        k = slice_of_frame[frame]
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        np.testing.assert_array_equal(pixels[index].astype(bool), labels[k] == value[number])


def test_seg_masks_round_trip_by_source_frame(
    seg: hd.seg.Segmentation, multi: SourceSeries, labels: np.ndarray, tmp_path: Path
) -> None:
    seg.save_as(tmp_path / "seg.dcm")
    back = hd.seg.segread(tmp_path / "seg.dcm")
    frames = list(multi.frame_numbers)
    for number, value in ((1, 1), (2, 3), (3, 2)):
        mask = back.get_pixels_by_source_frame(
            source_sop_instance_uid=multi.datasets[0].SOPInstanceUID,
            source_frame_numbers=frames,
            segment_numbers=[number],
            assert_missing_frames_are_empty=True,
        )[..., 0]
        np.testing.assert_array_equal(mask.astype(bool), labels == value)


def test_sr_references_the_multiframe_image_with_frame_numbers(
    seg: hd.seg.Segmentation, single: SourceSeries, multi: SourceSeries, labels: np.ndarray
) -> None:
    sr = build_report(
        make_report_content(single, labels), seg=seg, source=multi, algorithm=SEG_MODEL
    )
    image = multi.datasets[0]
    found: dict[int, list[int]] = {}

    def walk(items: pydicom.Sequence) -> None:
        for item in items:
            children = item.get("ContentSequence", [])
            for child in children:
                name = child.ConceptNameCodeSequence[0].CodeMeaning
                if name == "Referenced Segment":
                    number = int(child.ReferencedSOPSequence[0].ReferencedSegmentNumber)
                    sources = [
                        c for c in children
                        if c.ConceptNameCodeSequence[0].CodeMeaning
                        == "Source Image for Segmentation"
                    ]
                    assert len(sources) == 1
                    ref = sources[0].ReferencedSOPSequence[0]
                    assert ref.ReferencedSOPInstanceUID == image.SOPInstanceUID
                    assert ref.ReferencedSOPClassUID == image.SOPClassUID
                    found[number] = sorted(int(f) for f in ref.ReferencedFrameNumber)
            walk(children)

    walk(sr.ContentSequence)
    value = {1: 1, 2: 3, 3: 2}
    assert set(found) == {1, 2, 3}
    for number, frames in found.items():
        slices = np.flatnonzero((labels == value[number]).any(axis=(1, 2)))
        assert frames == sorted(multi.frame_numbers[k] for k in slices)
    evidence = {
        s.ReferencedSOPInstanceUID
        for e in sr.CurrentRequestedProcedureEvidenceSequence
        for series in e.ReferencedSeriesSequence
        for s in series.ReferencedSOPSequence
    }
    assert image.SOPInstanceUID in evidence


def test_overlays_reference_the_rendered_frame(multi: SourceSeries, labels: np.ndarray) -> None:
    images = build_overlays(multi, SegmentationResult(labels, SEG_MODEL), slices=[2, 9])
    image = multi.datasets[0]
    for sc, k in zip(images, [2, 9], strict=True):
        (ref,) = sc.SourceImageSequence
        assert ref.ReferencedSOPInstanceUID == image.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == image.SOPClassUID
        assert int(ref.ReferencedFrameNumber) == multi.frame_numbers[k]
        assert ref.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
        assert list(sc.PatientOrientation) == ["L", "P"]
        assert sc.StudyInstanceUID == image.StudyInstanceUID


def test_overlays_of_single_frame_sources_reference_the_instance(
    single: SourceSeries, labels: np.ndarray
) -> None:
    (sc,) = build_overlays(single, SegmentationResult(labels, SEG_MODEL), slices=[4])
    (ref,) = sc.SourceImageSequence
    assert ref.ReferencedSOPInstanceUID == single.datasets[4].SOPInstanceUID
    assert "ReferencedFrameNumber" not in ref


def test_pet_segments_on_a_multiframe_mr_grid(multi: SourceSeries) -> None:
    pet_source = SourceSeries(tuple(make_pet_series()))
    images = make_pet_images(pet_source, multi)
    assert images.masks_mr is not None
    seg = build_pet_segmentation(multi, images.masks_mr, algorithm=images.algorithm)
    assert seg is not None
    (series,) = seg.ReferencedSeriesSequence
    assert [i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence] == [
        multi.datasets[0].SOPInstanceUID
    ]
    for item in seg.PerFrameFunctionalGroupsSequence:
        frame = int(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        assert position == _position(multi.datasets[0], frame)


def test_write_results_with_a_multiframe_reference(
    single: SourceSeries, multi: SourceSeries, labels: np.ndarray, tmp_path: Path
) -> None:
    written = write_results(
        tmp_path,
        make_report_content(single, labels),
        source=multi,
        segmentation=SegmentationResult(labels, SEG_MODEL),
        backgrounds={"FLAIR": multi.pixel_volume() * 0.5},
    )
    assert {o.kind for o in written.objects} == {"seg", "sr", "sc", "pdf"}
    for obj in written.objects:
        ds = pydicom.dcmread(obj.path, stop_before_pixels=True)
        assert ds.StudyInstanceUID == multi.study_instance_uid
