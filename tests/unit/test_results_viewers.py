"""The result objects as viewers read them (issue 18): TID 1500 structure, RANO coordinates,
predictions as decisions, SEG display colours; DCMTK's SR checks on every SR written."""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from rgcds.results import (
    ReportContent,
    SegmentationResult,
    SourceSeries,
    StudyIdentity,
    build_report,
    build_segmentation,
    write_results,
)
from rgcds.results._geometry import bidimensional_axes, rano_lesions
from rgcds.results.content import (
    Hemisphere,
    LesionDiameters,
    Location,
    RanoMeasurement,
    Region,
    RegionMeasurement,
    ResidualAssessment,
)
from rgcds.results.testing import (
    ANALYSED_AT,
    PET_MODEL,
    SEG_MODEL,
    make_labels,
    make_mr_series,
    make_not_analysed_content,
    make_pet_images,
    make_pet_report,
    make_pet_series,
    make_report_content,
)

MEASUREMENT_GROUP = "125007"
IMAGING_MEASUREMENTS = "126010"


@pytest.fixture(scope="module")
def source() -> SourceSeries:
    return SourceSeries(tuple(make_mr_series()))


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    # Besides the nested spheres: a long thin enhancing lesion (not measurable, 6 mm wide,
    # but with a larger product than the next) and a 12 mm block (measurable).
    out = make_labels()
    out[12:14, 2:8, 10:60] = 3
    out[2:5, 50:62, 8:20] = 3
    return out


@pytest.fixture(scope="module")
def segmentation(labels: np.ndarray) -> SegmentationResult:
    return SegmentationResult(labels, SEG_MODEL)


@pytest.fixture(scope="module")
def seg(source: SourceSeries, segmentation: SegmentationResult) -> hd.seg.Segmentation:
    return build_segmentation(source, segmentation, analysed_at=ANALYSED_AT)


@pytest.fixture(scope="module")
def content(source: SourceSeries, labels: np.ndarray) -> ReportContent:
    lesions = rano_lesions(labels == 3, source)
    # The analysis numbers lesions by rank among all lesions: 2 is not measurable.
    assert [lesion.lesion for lesion in lesions] == [1, 3]
    return dataclasses.replace(make_report_content(source, labels), rano=RanoMeasurement(lesions))


@pytest.fixture(scope="module")
def sr(
    content: ReportContent,
    seg: hd.seg.Segmentation,
    source: SourceSeries,
    segmentation: SegmentationResult,
) -> pydicom.Dataset:
    return build_report(
        content, seg=seg, source=source, algorithm=SEG_MODEL, segmentation=segmentation
    )


def _children(item: pydicom.Dataset) -> list[pydicom.Dataset]:
    return list(item.get("ContentSequence", []))


def _name(item: pydicom.Dataset) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeMeaning)


def _groups(sr: pydicom.Dataset) -> list[pydicom.Dataset]:
    measurements = next(
        i for i in _children(sr) if i.ConceptNameCodeSequence[0].CodeValue == IMAGING_MEASUREMENTS
    )
    return [
        g
        for g in _children(measurements)
        if g.ConceptNameCodeSequence[0].CodeValue == MEASUREMENT_GROUP
    ]


def _tracking_id(group: pydicom.Dataset) -> str:
    return next(str(i.TextValue) for i in _children(group) if _name(i) == "Tracking Identifier")


def _tracking_uid(group: pydicom.Dataset) -> str:
    return next(str(i.UID) for i in _children(group) if _name(i) == "Tracking Unique Identifier")


def test_segment_groups_come_first_in_segment_order_with_shared_tracking(
    sr: pydicom.Dataset, seg: hd.seg.Segmentation
) -> None:
    groups = _groups(sr)
    segments = {s.SegmentNumber: s for s in seg.SegmentSequence}
    assert sr.SOPClassUID == pydicom.uid.EnhancedSRStorage
    for index, group in enumerate(groups[:3]):
        assert group.ContentTemplateSequence[0].TemplateIdentifier == "1411"
        ref = next(i for i in _children(group) if _name(i) == "Referenced Segment")
        number = int(ref.ReferencedSOPSequence[0].ReferencedSegmentNumber)
        assert number == index + 1
        assert _tracking_uid(group) == segments[number].TrackingUID
        assert _tracking_id(group) == segments[number].TrackingID
        sites = [i for i in _children(group) if _name(i) == "Finding Site"]
        assert len(sites) == 1
        laterality = [_name(c) for c in _children(sites[0])]
        assert laterality == ["Laterality"]
    # No other group references a segment of this SEG: per-segment indexing holds.
    for group in groups[3:]:
        assert not any(_name(i) == "Referenced Segment" for i in _children(group))


def test_image_library_and_status_container(sr: pydicom.Dataset, source: SourceSeries) -> None:
    names = [_name(i) for i in _children(sr)]
    assert names.index("Image Library") < names.index("Imaging Measurements")
    assert names[-1] == "Qualitative Evaluations"
    library = next(i for i in _children(sr) if _name(i) == "Image Library")
    first_group = _children(library)[0]
    refs = {
        str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        for i in _children(first_group)
        if i.ValueType == "IMAGE"
    }
    assert refs == {str(ds.SOPInstanceUID) for ds in source.datasets}
    status = next(i for i in _children(sr) if _name(i) == "Qualitative Evaluations")
    coded = {
        (_name(i), i.ConceptCodeSequence[0].CodeMeaning)
        for i in _children(status)
        if i.ValueType == "CODE"
    }
    assert ("Analysis status", "Analysis complete") in coded
    assert _tracking_id(_groups(sr)[0]) != "Analysis status"


def test_rano_lesions_are_numbered_without_gaps_and_drawn_on_their_slice(
    sr: pydicom.Dataset, content: ReportContent, source: SourceSeries
) -> None:
    lesions = [g for g in _groups(sr) if _tracking_id(g).startswith("RANO lesion")]
    assert [_tracking_id(g) for g in lesions] == ["RANO lesion 1", "RANO lesion 2"]
    assert content.rano is not None
    by_sop = {str(ds.SOPInstanceUID): k for k, ds in enumerate(source.datasets)}
    for group, lesion in zip(lesions, content.rano.lesions, strict=True):
        nums = {_name(i): i for i in _children(group) if i.ValueType == "NUM"}
        for axis, expected in (
            ("Long axis", lesion.longest_diameter_mm),
            ("Short axis", lesion.perpendicular_diameter_mm),
        ):
            item = nums[axis]
            assert float(item.MeasuredValueSequence[0].NumericValue) == pytest.approx(expected)
            (scoord,) = _children(item)
            assert scoord.ValueType == "SCOORD" and scoord.RelationshipType == "INFERRED FROM"
            assert scoord.GraphicType == "POLYLINE"
            x0, y0, x1, y1 = (float(v) for v in scoord.GraphicData)
            (image,) = _children(scoord)
            k = by_sop[str(image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)]
            assert k == lesion.slice_index
            (sy, sx), _ = source.slice_geometry(k)
            # The drawn line is as long as the reported diameter (the viewer measures it).
            assert math.hypot((x1 - x0) * sx, (y1 - y0) * sy) == pytest.approx(expected, abs=0.01)


def test_geometry_matches_the_analysis_measurement() -> None:
    from rgcds.analysis.measure import bidimensional

    rng = np.random.default_rng(3)
    for _ in range(5):
        mask = np.zeros((40, 40), bool)
        cy, cx = rng.integers(12, 28, 2)
        yy, xx = np.mgrid[0:40, 0:40]
        a, b = rng.uniform(4, 10, 2)
        mask[((yy - cy) / a) ** 2 + ((xx - cx) / b) ** 2 < 1] = True
        spacing = (float(rng.uniform(0.5, 1.2)), float(rng.uniform(0.5, 1.2)))
        axes = bidimensional_axes(mask, spacing)
        assert axes is not None
        assert axes[:2] == pytest.approx(bidimensional(mask, spacing))


def test_a_lesion_that_cannot_be_placed_has_no_coordinates(
    content: ReportContent,
    seg: hd.seg.Segmentation,
    source: SourceSeries,
    segmentation: SegmentationResult,
) -> None:
    odd = dataclasses.replace(content, rano=RanoMeasurement((LesionDiameters(1, 40.0, 30.0, 3),)))
    sr = build_report(odd, seg=seg, source=source, algorithm=SEG_MODEL, segmentation=segmentation)
    (group,) = [g for g in _groups(sr) if _tracking_id(g).startswith("RANO lesion")]
    assert not any(c.ValueType == "SCOORD" for i in _children(group) for c in _children(i))


def test_predictions_are_decisions(sr: pydicom.Dataset, content: ReportContent) -> None:
    groups = {_tracking_id(g): g for g in _groups(sr)}
    for pred in content.predictions:
        group = groups[f"Prediction: {pred.target}"[:64]]
        nums = {
            _name(i): float(i.MeasuredValueSequence[0].NumericValue)
            for i in _children(group)
            if i.ValueType == "NUM"
        }
        assert nums[f"Probability of {pred.positive_label}"] == pytest.approx(pred.probability)
        assert nums["Decision threshold (probability)"] == pytest.approx(pred.threshold)
        assert nums["Validation area under the ROC curve"] == pytest.approx(
            pred.provenance.metric_value
        )
        (call,) = [i for i in _children(group) if i.ValueType == "CODE" and _name(i) == pred.target]
        expected = (
            pred.positive_label if pred.probability >= pred.threshold else pred.negative_label
        )
        assert call.ConceptCodeSequence[0].CodeMeaning == expected
        names = {_name(i) for i in _children(group)}
        assert {"Algorithm Name", "Algorithm Version", "Decision rule"} <= names


def test_residual_call_follows_the_threshold_and_states_a_disagreement(
    source: SourceSeries, seg: hd.seg.Segmentation, segmentation: SegmentationResult
) -> None:
    pet_source = SourceSeries(tuple(make_pet_series()))
    pet = dataclasses.replace(
        make_pet_report(pet_source),
        residual=ResidualAssessment(
            present=True,  # inconsistent input: the call must follow the numbers
            probability=0.506,
            threshold=0.55,
            decided_by="combined",
        ),
    )
    base = make_report_content(source, segmentation.labels)
    regions = tuple(
        RegionMeasurement(r.region, 8.44 if r.region is Region.ET else r.volume_ml)
        for r in base.regions
    )
    content = dataclasses.replace(base, postoperative=True, regions=regions, pet=pet, rano=None)
    sr = build_report(
        content,
        seg=seg,
        source=source,
        algorithm=SEG_MODEL,
        segmentation=segmentation,
        pet_algorithm=PET_MODEL,
    )
    (group,) = [g for g in _groups(sr) if _tracking_id(g) == "Residual tumour"]
    coded = [
        i.ConceptCodeSequence[0].CodeMeaning
        for i in _children(group)
        if i.ValueType == "CODE" and _name(i) == "Residual tumour"
    ]
    assert coded == ["Absent"]
    nums = {
        _name(i): float(i.MeasuredValueSequence[0].NumericValue)
        for i in _children(group)
        if i.ValueType == "NUM"
    }
    assert nums["Decision threshold (probability)"] == pytest.approx(0.55)
    texts = {_name(i): str(i.TextValue) for i in _children(group) if i.ValueType == "TEXT"}
    note = texts["Imaging finding and model call compared"]
    assert "8.4 ml" in note and "absent" in note and "0.55" in note


def test_seg_segments_have_distinct_colours_and_a_content_creator(
    seg: hd.seg.Segmentation,
) -> None:
    colours = [tuple(s.RecommendedDisplayCIELabValue) for s in seg.SegmentSequence]
    assert len(set(colours)) == 3
    assert str(seg.ContentCreatorName)


def test_segment_side_is_computed_from_the_mask_when_the_tumour_crosses_the_midline(
    content: ReportContent,
    seg: hd.seg.Segmentation,
    source: SourceSeries,
    segmentation: SegmentationResult,
) -> None:
    bilateral = dataclasses.replace(
        content, location=Location(Hemisphere.BILATERAL, (), crosses_midline=True)
    )
    sr = build_report(
        bilateral, seg=seg, source=source, algorithm=SEG_MODEL, segmentation=segmentation
    )
    sides = []
    for group in _groups(sr)[:3]:
        site = next(i for i in _children(group) if _name(i) == "Finding Site")
        sides.append(_children(site)[0].ConceptCodeSequence[0].CodeMeaning)
    # The nested spheres sit right of the image centre (patient's left in LPS, +x).
    assert sides[0] == "Left"  # the necrotic core lies wholly on one side
    assert "Bilateral" in sides  # the oedema spans the midline


def test_a_later_report_names_the_one_it_supersedes(
    content: ReportContent,
    seg: hd.seg.Segmentation,
    source: SourceSeries,
    segmentation: SegmentationResult,
) -> None:
    earlier = build_report(
        make_not_analysed_content(StudyIdentity.from_dataset(source.datasets[0]))
    )
    later = build_report(
        content,
        seg=seg,
        source=source,
        algorithm=SEG_MODEL,
        segmentation=segmentation,
        predecessors=[earlier],
    )
    (study,) = later.PredecessorDocumentsSequence
    assert study.StudyInstanceUID == earlier.StudyInstanceUID
    ref = study.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == earlier.SOPInstanceUID
    assert later.SeriesNumber == earlier.SeriesNumber  # same series number, deliberately


# --- DCMTK on every SR ------------------------------------------------------------------------

needs_dcmtk = pytest.mark.skipif(
    shutil.which("dsrdump") is None or shutil.which("dsr2xml") is None,
    reason="DCMTK (dsrdump, dsr2xml) is not installed",
)


def _dcmtk_clean(path: Path) -> None:
    for command in (["dsrdump", "-v", str(path)], ["dsr2xml", "-v", str(path)]):
        run = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        assert run.returncode == 0, (command, run.stderr)
        problems = [line for line in run.stderr.splitlines() if line.startswith(("W:", "E:", "F:"))]
        assert not problems, (command[0], problems)


@needs_dcmtk
def test_dcmtk_reads_every_sr_without_warnings(
    tmp_path: Path,
    content: ReportContent,
    source: SourceSeries,
    segmentation: SegmentationResult,
) -> None:
    pet_source = SourceSeries(tuple(make_pet_series()))
    paired = dataclasses.replace(content, pet=make_pet_report(pet_source))
    cases = {
        "preop": write_results(
            tmp_path / "preop",
            content,
            source=source,
            segmentation=segmentation,
            overlays=False,
            pdf=False,
        ),
        "pet": write_results(
            tmp_path / "pet",
            paired,
            source=source,
            segmentation=segmentation,
            pet_images=make_pet_images(pet_source, source),
            overlays=False,
            pdf=False,
        ),
        "not-analysed": write_results(
            tmp_path / "na",
            make_not_analysed_content(StudyIdentity.from_dataset(source.datasets[0])),
            pdf=False,
        ),
    }
    for name, written in cases.items():
        srs = written.of_kind("sr")
        assert srs, name
        for obj in srs:
            _dcmtk_clean(obj.path)


def test_write_results_supersedes_the_earlier_report(
    tmp_path: Path,
    content: ReportContent,
    source: SourceSeries,
    segmentation: SegmentationResult,
) -> None:
    study = StudyIdentity.from_dataset(source.datasets[0])
    first = write_results(tmp_path / "first", make_not_analysed_content(study), pdf=False)
    earlier = pydicom.dcmread(first.of_kind("sr")[0].path)
    later = write_results(
        tmp_path / "later",
        content,
        source=source,
        segmentation=segmentation,
        overlays=False,
        pdf=False,
        predecessors=[earlier],
    )
    sr = pydicom.dcmread(later.of_kind("sr")[0].path)
    ref = sr.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == earlier.SOPInstanceUID
    assert sr.SeriesNumber == earlier.SeriesNumber
    if shutil.which("dciodvfy"):
        run = subprocess.run(
            ["dciodvfy", "-new", str(later.of_kind("sr")[0].path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        errors = [line for line in run.stderr.splitlines() if line.startswith("Error")]
        assert not errors, errors
