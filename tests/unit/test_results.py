"""Unit tests of the result writers: SEG, TID 1500 SR, Secondary Capture, Encapsulated PDF."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from structlog.testing import capture_logs

from rgcds.exceptions import DicomInputError
from rgcds.results import (
    AlgorithmInfo,
    ReportStatus,
    SegmentationResult,
    SourceSeries,
    StudyIdentity,
    build_encapsulated_pdf,
    build_overlays,
    build_report,
    build_segmentation,
    codes,
    key_slices,
    write_results,
)
from rgcds.results.testing import (
    ANALYSED_AT,
    SEG_MODEL,
    SYNTHETIC_PATIENT_ID,
    SYNTHETIC_PATIENT_NAME,
    make_labels,
    make_mr_series,
    make_not_analysed_content,
    make_report_content,
)


@pytest.fixture(scope="module")
def source() -> SourceSeries:
    return SourceSeries(tuple(make_mr_series()))


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return make_labels()


@pytest.fixture(scope="module")
def seg(source: SourceSeries, labels: np.ndarray) -> hd.seg.Segmentation:
    return build_segmentation(
        source, SegmentationResult(labels, SEG_MODEL), analysed_at=ANALYSED_AT
    )


def test_seg_segments_are_coded_and_identify_the_algorithm(seg: hd.seg.Segmentation) -> None:
    segments = seg.SegmentSequence
    assert [s.SegmentNumber for s in segments] == [1, 2, 3]
    assert [s.SegmentLabel for s in segments] == ["Necrotic core", "Enhancing tumour", "Oedema"]
    types = [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in segments]
    assert types == [codes.NECROSIS.value, codes.ENHANCING_LESION.value, codes.EDEMA.value]
    for s in segments:
        assert s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
        assert s.SegmentedPropertyCategoryCodeSequence[0].CodingSchemeDesignator == "SCT"
        assert s.SegmentAlgorithmType == "AUTOMATIC"
        algo = s.SegmentationAlgorithmIdentificationSequence[0]
        assert algo.AlgorithmVersion == SEG_MODEL.version
        assert SEG_MODEL.model_id in algo.AlgorithmParameters
        assert s.TrackingUID


def test_seg_is_a_new_series_in_the_source_study_marked_research(
    seg: hd.seg.Segmentation, source: SourceSeries
) -> None:
    first = source.datasets[0]
    assert seg.StudyInstanceUID == first.StudyInstanceUID
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert "research use only" in seg.SeriesDescription.lower()
    assert seg.Manufacturer == "rgcds"
    equipment = seg.ContributingEquipmentSequence
    assert any(e.Manufacturer == "rgcds" and e.SoftwareVersions for e in equipment)
    referenced = {
        i.ReferencedSOPInstanceUID
        for s in seg.ReferencedSeriesSequence
        for i in s.ReferencedInstanceSequence
    }
    assert referenced == {ds.SOPInstanceUID for ds in source.datasets}
    assert seg.ContentDate == "20240102"


def test_seg_masks_round_trip(
    seg: hd.seg.Segmentation, source: SourceSeries, labels: np.ndarray, tmp_path: Path
) -> None:
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    back = hd.seg.segread(path)
    uids = [ds.SOPInstanceUID for ds in source.datasets]
    for number, value in ((1, 1), (2, 3), (3, 2)):
        mask = back.get_pixels_by_source_instance(
            source_sop_instance_uids=uids,
            segment_numbers=[number],
            assert_missing_frames_are_empty=True,
        )[..., 0]
        np.testing.assert_array_equal(mask.astype(bool), labels == value)


def test_seg_uids_are_deterministic(
    source: SourceSeries, labels: np.ndarray, seg: hd.seg.Segmentation
) -> None:
    again = build_segmentation(source, SegmentationResult(labels.copy(), SEG_MODEL))
    assert (again.SOPInstanceUID, again.SeriesInstanceUID) == (
        seg.SOPInstanceUID,
        seg.SeriesInstanceUID,
    )
    other = AlgorithmInfo(SEG_MODEL.model_id, "9.9.9")
    changed = build_segmentation(source, SegmentationResult(labels, other))
    assert changed.SOPInstanceUID != seg.SOPInstanceUID
    assert changed.SeriesInstanceUID != seg.SeriesInstanceUID


def test_seg_with_an_empty_segment_still_describes_it(source: SourceSeries, tmp_path: Path) -> None:
    labels = make_labels(empty=(1,))
    seg = build_segmentation(source, SegmentationResult(labels, SEG_MODEL))
    assert len(seg.SegmentSequence) == 3
    numbers = {
        f.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        for f in seg.PerFrameFunctionalGroupsSequence
    }
    assert numbers == {2, 3}
    seg.save_as(tmp_path / "seg.dcm")
    back = hd.seg.segread(tmp_path / "seg.dcm")
    mask = back.get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in source.datasets], segment_numbers=[1]
    )
    assert not mask.any()


def test_seg_of_no_tumour_is_still_written(source: SourceSeries) -> None:
    seg = build_segmentation(source, SegmentationResult(make_labels(empty=(1, 2, 3)), SEG_MODEL))
    assert len(seg.SegmentSequence) == 3
    assert int(seg.NumberOfFrames) >= 1


def test_seg_rejects_labels_off_the_reference_grid(source: SourceSeries) -> None:
    with pytest.raises(DicomInputError, match="native grid"):
        build_segmentation(source, SegmentationResult(make_labels(16, 32, 32), SEG_MODEL))
    with pytest.raises(DicomInputError, match="0-3"):
        SegmentationResult(np.full((2, 2, 2), 4, np.uint8), SEG_MODEL)


def _groups(sr: pydicom.Dataset) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    report = hd.sr.srread(sr) if isinstance(sr, Path) else sr
    return list(report.content.get_volumetric_roi_measurement_groups()) + list(
        report.content.get_planar_roi_measurement_groups()
    )


def test_sr_references_seg_segments_with_shared_tracking_uids(
    seg: hd.seg.Segmentation, source: SourceSeries, labels: np.ndarray, tmp_path: Path
) -> None:
    content = make_report_content(source, labels)
    sr = build_report(content, seg=seg, source=source, algorithm=SEG_MODEL)
    assert sr.StudyInstanceUID == seg.StudyInstanceUID
    assert "research use only" in sr.SeriesDescription.lower()
    sr.save_as(tmp_path / "sr.dcm")
    report = hd.sr.srread(tmp_path / "sr.dcm")
    vol_groups = report.content.get_volumetric_roi_measurement_groups()
    assert len(vol_groups) == 3
    seg_tracking = {s.SegmentNumber: s.TrackingUID for s in seg.SegmentSequence}
    for group in vol_groups:
        ref = group.referenced_segment[0]
        assert ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
        number = ref.ReferencedSOPSequence[0].ReferencedSegmentNumber
        assert group.tracking_uid == seg_tracking[number]
        volume = group.get_measurements(name=codes.VOLUME)[0]
        assert volume.unit.value == "ml"
        assert volume.value > 0
    # The segments' radiomics: one group per sequence, the sequence as the group's method,
    # sharing the segment's tracking UID.
    radiomics = [
        g for g in _tid1501(report)
        if g.tracking_uid in set(seg_tracking.values())
    ]
    assert radiomics
    for group in radiomics:
        methods = [i for i in group[0].ContentSequence
                   if i.ConceptNameCodeSequence[0].CodeValue == "370129005"]
        assert len(methods) == 1 and not group.get_measurements(name=codes.VOLUME)
    evidence = {
        i.ReferencedSOPInstanceUID
        for i in sr.CurrentRequestedProcedureEvidenceSequence[0]
        .ReferencedSeriesSequence[0]
        .ReferencedSOPSequence
    }
    assert evidence  # SEG and/or source images are recorded as evidence


def _tid1501(report: hd.sr.EnhancedSR) -> list:
    """The report's TID 1501 measurement groups (highdicom reads them as such)."""
    return list(report.content.get_image_measurement_groups())


def _flatten(ds: pydicom.Dataset) -> list[pydicom.Dataset]:
    items = []
    for item in ds.get("ContentSequence", []):
        items.append(item)
        items += _flatten(item)
    return items


def test_sr_carries_predictions_provenance_status_and_series(
    seg: hd.seg.Segmentation, source: SourceSeries, labels: np.ndarray
) -> None:
    content = make_report_content(source, labels)
    sr = build_report(content, seg=seg, source=source, algorithm=SEG_MODEL)
    items = _flatten(sr)
    texts = [str(i.TextValue) for i in items if i.ValueType == "TEXT"]
    codes_ = [
        (i.ConceptNameCodeSequence[0].CodeMeaning, i.ConceptCodeSequence[0].CodeMeaning)
        for i in items
        if i.ValueType == "CODE"
    ]
    nums = {
        i.ConceptNameCodeSequence[0].CodeMeaning: float(i.MeasuredValueSequence[0].NumericValue)
        for i in items
        if i.ValueType == "NUM"
    }
    assert ("Analysis status", "Analysis complete") in codes_
    assert ("MGMT promoter methylation", "methylated") in codes_
    assert ("IDH mutation", "IDH-wildtype") in codes_
    assert ("Predicted risk group", "High risk") in codes_
    assert ("Crosses midline", "No") in codes_
    assert nums["Probability of methylated"] == pytest.approx(0.68)
    assert nums["Predicted median overall survival"] == pytest.approx(410)
    assert nums["Sum of products of perpendicular diameters"] == pytest.approx(
        28 * 21.5 + 12 * 10.5
    )
    assert any("Sphericity" in k for k in nums)
    assert any("validation AUC 0.71 (95% CI 0.62-0.80)" in t for t in texts)
    assert any(t.startswith("FLAIR 3D") for t in texts)
    assert any("Research use only" in t for t in texts)
    sites = [
        i.ConceptCodeSequence[0].CodeMeaning
        for i in items
        if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeMeaning == "Finding Site"
    ]
    assert "Frontal lobe" in sites


def test_sr_of_a_study_not_analysed_says_why(source: SourceSeries) -> None:
    content = make_not_analysed_content(StudyIdentity.from_dataset(source.datasets[0]))
    sr = build_report(content)
    assert sr.StudyInstanceUID == source.study_instance_uid
    assert sr.PatientID == SYNTHETIC_PATIENT_ID
    items = _flatten(sr)
    assert not any(i.ValueType == "IMAGE" for i in items)
    assert "CurrentRequestedProcedureEvidenceSequence" not in sr
    texts = [str(i.TextValue) for i in items if i.ValueType == "TEXT"]
    assert content.reason in texts
    status = [
        i.ConceptCodeSequence[0].CodeMeaning
        for i in items
        if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeMeaning == "Analysis status"
    ]
    assert status == ["Not analysed"]
    assert build_report(content).SOPInstanceUID == sr.SOPInstanceUID
    with pytest.raises(ValueError, match="why"):
        type(content)(study=content.study, status=ReportStatus.NOT_ANALYSED)


def test_overlays_are_rgb_burned_in_research_images(
    source: SourceSeries, labels: np.ndarray
) -> None:
    flair = source.pixel_volume() * 0.5
    images = build_overlays(
        source, SegmentationResult(labels, SEG_MODEL), backgrounds={"FLAIR": flair}
    )
    slices = key_slices(labels)
    assert len(images) == 2 * len(slices)
    assert len({im.SOPInstanceUID for im in images}) == len(images)
    assert len({im.SeriesInstanceUID for im in images}) == 1
    for im in images:
        assert im.PhotometricInterpretation == "RGB"
        assert im.BurnedInAnnotation == "YES"
        assert "research use only" in im.SeriesDescription.lower()
        assert im.StudyInstanceUID == source.study_instance_uid
        assert im.pixel_array.shape[0] >= 512
    # The enhancing-tumour colour appears on the slice with the largest tumour section.
    pixels = images[slices.index(int(np.argmax((labels > 0).sum(axis=(1, 2)))))].pixel_array
    assert ((pixels[..., 0] > 150) & (pixels[..., 1] > 120) & (pixels[..., 2] < 120)).any()
    with pytest.raises(DicomInputError, match="resample"):
        build_overlays(
            source, SegmentationResult(labels, SEG_MODEL), backgrounds={"FLAIR": flair[:4]}
        )


def test_key_slices_without_tumour_is_the_middle() -> None:
    assert key_slices(np.zeros((10, 4, 4), np.uint8)) == [5]


def test_pdf_is_encapsulated_and_deterministic(source: SourceSeries, labels: np.ndarray) -> None:
    content = make_report_content(source, labels)
    doc = build_encapsulated_pdf(content, source=source, algorithm=SEG_MODEL)
    assert doc.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert doc.Modality == "DOC"
    assert doc.BurnedInAnnotation == "YES"
    assert "research use only" in doc.DocumentTitle.lower()
    assert "research use only" in doc.SeriesDescription.lower()
    data = bytes(doc.EncapsulatedDocument)
    assert data.startswith(b"%PDF")
    assert len(data) % 2 == 0 and doc.EncapsulatedDocumentLength in (len(data), len(data) - 1)
    again = build_encapsulated_pdf(content, source=source, algorithm=SEG_MODEL)
    assert bytes(again.EncapsulatedDocument) == data
    assert again.SOPInstanceUID == doc.SOPInstanceUID


def test_write_results_is_idempotent_and_never_logs_phi(
    source: SourceSeries, labels: np.ndarray, tmp_path: Path
) -> None:
    content = make_report_content(source, labels)
    with capture_logs() as logs:
        first = write_results(
            tmp_path, content, source=source, segmentation=SegmentationResult(labels, SEG_MODEL)
        )
    kinds = [o.kind for o in first.objects]
    assert kinds[:2] == ["seg", "sr"] and kinds[-1] == "pdf" and "sc" in kinds
    bytes_first = {o.path: o.path.read_bytes() for o in first.objects}
    second = write_results(
        tmp_path, content, source=source, segmentation=SegmentationResult(labels, SEG_MODEL)
    )
    assert [o.sop_instance_uid for o in second.objects] == [
        o.sop_instance_uid for o in first.objects
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(o.path.name for o in first.objects)
    for obj in second.objects:
        assert obj.path.read_bytes() == bytes_first[obj.path], obj.kind
    text = repr(logs)
    for phi in (
        SYNTHETIC_PATIENT_NAME,
        SYNTHETIC_PATIENT_NAME.split("^")[0],
        SYNTHETIC_PATIENT_ID,
        "ACC-SYN-77",
        "19600101",
    ):
        assert phi not in text


def test_write_results_not_analysed_writes_sr_and_pdf_only(
    source: SourceSeries, tmp_path: Path
) -> None:
    content = make_not_analysed_content(StudyIdentity.from_dataset(source.datasets[0]))
    written = write_results(tmp_path, content)
    assert [o.kind for o in written.objects] == ["sr", "pdf"]
    with pytest.raises(ValueError, match="source"):
        write_results(tmp_path, make_report_content(source))
