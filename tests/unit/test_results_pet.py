"""Unit tests of the PET result objects: PET SEG, the SR's PET groups, fused overlays, PDF."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from structlog.testing import capture_logs

from rgcds.exceptions import DicomInputError
from rgcds.results import (
    PET_UNITS_ARBITRARY,
    PetSegment,
    ReportContent,
    SegmentationResult,
    SourceSeries,
    build_pet_fusion,
    build_pet_segmentation,
    build_report,
    build_segmentation,
    codes,
    pet_segment_numbers,
    write_results,
)
from rgcds.results.capture import pet_key_slices
from rgcds.results.pdf import pet_rows, prognosis_rows, render_pdf, residual_rows
from rgcds.results.testing import (
    ANALYSED_AT,
    PET_MODEL,
    SEG_MODEL,
    SYNTHETIC_PATIENT_ID,
    SYNTHETIC_PATIENT_NAME,
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


@pytest.fixture(scope="module")
def mr() -> SourceSeries:
    return SourceSeries(tuple(make_mr_series()))


@pytest.fixture(scope="module")
def pet_source() -> SourceSeries:
    return SourceSeries(tuple(make_pet_series()))


@pytest.fixture(scope="module")
def pet_seg(pet_source: SourceSeries) -> hd.seg.Segmentation:
    seg = build_pet_segmentation(
        pet_source,
        make_pet_masks(make_pet_uptake(*pet_source.shape)),
        algorithm=PET_MODEL,
        analysed_at=ANALYSED_AT,
    )
    assert seg is not None
    return seg


@pytest.fixture(scope="module")
def paired(mr: SourceSeries, pet_source: SourceSeries) -> ReportContent:
    return dataclasses.replace(make_report_content(mr), pet=make_pet_report(pet_source))


def _flatten(ds: pydicom.Dataset) -> list[pydicom.Dataset]:
    items = []
    for item in ds.get("ContentSequence", []):
        items.append(item)
        items += _flatten(item)
    return items


def _nums(sr: pydicom.Dataset) -> dict[tuple[str, str], tuple[float, str]]:
    """(concept meaning, derivation meaning) -> (value, unit code)."""
    out = {}
    for item in _flatten(sr):
        if item.ValueType != "NUM":
            continue
        derivation = ""
        for child in item.get("ContentSequence", []):
            if child.ConceptNameCodeSequence[0].CodeMeaning == "Derivation":
                derivation = child.ConceptCodeSequence[0].CodeMeaning
        mv = item.MeasuredValueSequence[0]
        out[(item.ConceptNameCodeSequence[0].CodeMeaning, derivation)] = (
            float(mv.NumericValue),
            str(mv.MeasurementUnitsCodeSequence[0].CodeValue),
        )
    return out


def _codes(sr: pydicom.Dataset) -> list[tuple[str, str]]:
    return [
        (i.ConceptNameCodeSequence[0].CodeMeaning, i.ConceptCodeSequence[0].CodeMeaning)
        for i in _flatten(sr)
        if i.ValueType == "CODE"
    ]


def _texts(sr: pydicom.Dataset) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for i in _flatten(sr):
        if i.ValueType == "TEXT":
            out.setdefault(i.ConceptNameCodeSequence[0].CodeMeaning, []).append(str(i.TextValue))
    return out


def _evidence_studies(sr: pydicom.Dataset, keyword: str) -> set[str]:
    return {str(item.StudyInstanceUID) for item in sr.get(keyword, [])}


# --- PET SEG --------------------------------------------------------------------------------


def test_pet_seg_is_in_the_pet_study_on_the_pet_grid(
    pet_seg: hd.seg.Segmentation, pet_source: SourceSeries, mr: SourceSeries
) -> None:
    assert pet_seg.StudyInstanceUID == pet_source.study_instance_uid != mr.study_instance_uid
    assert pet_seg.SeriesInstanceUID != pet_source.series_instance_uid
    assert pet_seg.SeriesNumber == 9905
    assert "research use only" in pet_seg.SeriesDescription.lower()
    assert pet_seg.PatientID == SYNTHETIC_PATIENT_ID
    labels = [s.SegmentLabel for s in pet_seg.SegmentSequence]
    assert labels == ["Biological tumour volume", "Residual tumour", "Clinical target volume"]
    types = [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in pet_seg.SegmentSequence]
    assert types == ["BTV", "108369006", "228792002"]
    for item in pet_seg.SegmentSequence:
        algo = item.SegmentationAlgorithmIdentificationSequence[0]
        assert algo.AlgorithmVersion == PET_MODEL.version
    assert pet_seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pet_source.series_instance_uid
    designators = {i.CodingSchemeDesignator for i in pet_seg.CodingSchemeIdentificationSequence}
    assert codes.PRIVATE_SCHEME in designators


def test_pet_seg_masks_round_trip(pet_seg: hd.seg.Segmentation, pet_source: SourceSeries) -> None:
    masks = make_pet_masks(make_pet_uptake(*pet_source.shape))
    pixels = pet_seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[d.SOPInstanceUID for d in pet_source.datasets],
        segment_numbers=[1, 2, 3],
    )
    for channel, segment in enumerate(PetSegment):
        np.testing.assert_array_equal(pixels[..., channel].astype(bool), masks[segment])


def test_pet_seg_uids_are_deterministic(
    pet_seg: hd.seg.Segmentation, pet_source: SourceSeries
) -> None:
    again = build_pet_segmentation(
        pet_source,
        make_pet_masks(make_pet_uptake(*pet_source.shape)),
        algorithm=PET_MODEL,
        analysed_at=ANALYSED_AT,
    )
    assert again is not None
    assert again.SOPInstanceUID == pet_seg.SOPInstanceUID
    assert again.SeriesInstanceUID == pet_seg.SeriesInstanceUID
    assert (
        again.DimensionOrganizationSequence[0].DimensionOrganizationUID
        == pet_seg.DimensionOrganizationSequence[0].DimensionOrganizationUID
    )


def test_pet_seg_skips_empty_segments_and_renumbers(pet_source: SourceSeries) -> None:
    masks = make_pet_masks(make_pet_uptake(*pet_source.shape), empty=(PetSegment.RESIDUAL,))
    seg = build_pet_segmentation(pet_source, masks, algorithm=PET_MODEL)
    assert seg is not None
    assert pet_segment_numbers(seg) == {PetSegment.BTV: 1, PetSegment.CTV: 2}


def test_pet_seg_of_empty_masks_is_not_written(pet_source: SourceSeries) -> None:
    empty = np.zeros(pet_source.shape, bool)
    assert (
        build_pet_segmentation(pet_source, {s: empty for s in PetSegment}, algorithm=PET_MODEL)
        is None
    )
    assert build_pet_segmentation(pet_source, {}, algorithm=PET_MODEL) is None


def test_pet_seg_rejects_masks_off_the_grid(pet_source: SourceSeries) -> None:
    with pytest.raises(DicomInputError, match="resample"):
        build_pet_segmentation(
            pet_source, {PetSegment.BTV: np.ones((2, 2, 2), bool)}, algorithm=PET_MODEL
        )


# --- SR -------------------------------------------------------------------------------------


def test_sr_pet_group_values_codes_and_units(
    paired: ReportContent, mr: SourceSeries, pet_source: SourceSeries, pet_seg: hd.seg.Segmentation
) -> None:
    seg = build_segmentation(mr, SegmentationResult(make_labels(), SEG_MODEL))
    sr = build_report(
        paired, seg=seg, source=mr, algorithm=SEG_MODEL, pet_seg=pet_seg, pet_algorithm=PET_MODEL
    )
    assert sr.StudyInstanceUID == mr.study_instance_uid
    nums = _nums(sr)
    assert nums[("Lesion to Background SUV Ratio", "Maximum")] == (pytest.approx(3.41), "1")
    assert nums[("Lesion to Background SUV Ratio", "Mean")] == (pytest.approx(1.87), "1")
    assert nums[("SUVbw", "Maximum")] == (pytest.approx(4.62), "{SUVbw}g/ml")
    assert nums[("SUVbw", "Mean")] == (pytest.approx(2.53), "{SUVbw}g/ml")
    assert nums[("SUVbw", "Peak Value Within ROI")] == (pytest.approx(4.11), "{SUVbw}g/ml")
    background = ("Background for Lesion to Background SUV Ratio", "Mean")
    assert nums[background] == (pytest.approx(1.355), "{SUVbw}g/ml")
    assert nums[("BTV threshold (tumour-to-background ratio)", "")][0] == pytest.approx(1.3)
    assert nums[("PET-to-MR normalised mutual information", "")][0] == pytest.approx(1.142)
    assert nums[("Probability of residual tumour", "")][0] == pytest.approx(0.83)
    assert nums[("Probability of residual tumour (PET)", "")][0] == pytest.approx(0.88)
    assert nums[("Probability of residual tumour (radiomics)", "")][0] == pytest.approx(0.71)
    assert nums[("Predicted risk score", "")][0] in (pytest.approx(1.21), pytest.approx(0.64))
    assert nums[("Predicted median time to recurrence", "")] == (pytest.approx(240), "d")
    coded = _codes(sr)
    assert ("Radiopharmaceutical", "Methionine C^11^") in coded
    assert ("Residual tumour", "Present") in coded
    assert ("PET-to-MR registration passed", "Yes") in coded
    assert ("MGMT status used as covariate", "Yes") in coded
    assert ("MGMT status used as covariate", "No") in coded
    assert ("Predicted risk group", "Moderate risk") in coded
    texts = _texts(sr)
    assert texts["PET uptake units"] == ["SUVbw"]
    assert texts["Clinical target volume source"][0] == "derived: ESTRO-EANO 2023"
    assert "contralateral" in texts["Background region method"][0]
    assert "age, KPS, TBRmax, BTV, MGMT" in texts["Model covariates used"]
    assert "PET analysed without MR" not in texts
    params = [
        str(p)
        for i in _flatten(sr)
        if i.ValueType == "TEXT"
        and i.ConceptNameCodeSequence[0].CodeMeaning == "Algorithm Parameters"
        for p in [i.TextValue]
    ]
    assert any("residual-pet-lr 0.2.0 validation AUC 0.81" in p for p in params)
    procedures = [value for name, value in coded if name == "Procedure reported"]
    assert procedures == ["MR Brain", "PET brain study"]


def test_sr_references_the_pet_seg_and_both_studies(
    paired: ReportContent,
    mr: SourceSeries,
    pet_source: SourceSeries,
    pet_seg: hd.seg.Segmentation,
    tmp_path: Path,
) -> None:
    seg = build_segmentation(mr, SegmentationResult(make_labels(), SEG_MODEL))
    sr = build_report(
        paired, seg=seg, source=mr, algorithm=SEG_MODEL, pet_seg=pet_seg, pet_algorithm=PET_MODEL
    )
    assert _evidence_studies(sr, "CurrentRequestedProcedureEvidenceSequence") == {
        mr.study_instance_uid
    }
    assert _evidence_studies(sr, "PertinentOtherEvidenceSequence") == {
        pet_source.study_instance_uid
    }
    other = {
        ref.ReferencedSOPInstanceUID
        for item in sr.PertinentOtherEvidenceSequence
        for series in item.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    }
    assert pet_seg.SOPInstanceUID in other
    assert {d.SOPInstanceUID for d in pet_source.datasets} <= other
    sr.save_as(tmp_path / "sr.dcm")
    report = hd.sr.srread(tmp_path / "sr.dcm")
    tracking = {s.SegmentNumber: s.TrackingUID for s in pet_seg.SegmentSequence}
    pet_groups = [
        g
        for g in report.content.get_volumetric_roi_measurement_groups()
        if g.referenced_segment[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        == pet_seg.SOPInstanceUID
    ]
    assert len(pet_groups) == 3  # BTV, residual tumour, CTV
    ctv_group = [g for g in pet_groups if g.finding_type.meaning == "Clinical Target Volume"
                 or "target" in str(g.finding_type.meaning).lower()]
    assert len(ctv_group) == 1
    volumes = [m.value for m in ctv_group[0].get_measurements()]
    assert volumes == [pytest.approx(212.5)]  # the CTV's volume, in ml
    for group in pet_groups:
        number = group.referenced_segment[0].ReferencedSOPSequence[0].ReferencedSegmentNumber
        assert group.tracking_uid == tracking[number]
        uids = [item.UID for item in group.referenced_segment if item.ValueType == "UIDREF"]
        assert uids == [pet_source.series_instance_uid]


def test_sr_without_suv_reports_arbitrary_units(mr: SourceSeries, pet_source: SourceSeries) -> None:
    pet = make_pet_report(pet_source, suv=False)
    assert pet.units == PET_UNITS_ARBITRARY and not pet.is_suv
    content = dataclasses.replace(make_report_content(mr), pet=pet)
    seg = build_segmentation(mr, SegmentationResult(make_labels(), SEG_MODEL))
    sr = build_report(content, seg=seg, source=mr, algorithm=SEG_MODEL)
    nums = _nums(sr)
    assert not any(name == "SUVbw" for name, _ in nums)
    background = ("Background for Lesion to Background SUV Ratio", "Mean")
    assert nums[background] == (pytest.approx(2710.0), "[arb'U]")
    assert _texts(sr)["PET uptake units"] == [PET_UNITS_ARBITRARY]
    rows = dict((k, v) for k, v in pet_rows(pet))
    assert rows["SUVmax"].startswith("-") and "a.u." in rows["Background mean"]


def test_pet_only_sr_is_in_the_pet_study(
    pet_source: SourceSeries, pet_seg: hd.seg.Segmentation
) -> None:
    content = make_pet_only_content(pet_source)
    sr = build_report(
        content, source=pet_source, algorithm=PET_MODEL, pet_seg=pet_seg, pet_algorithm=PET_MODEL
    )
    assert sr.StudyInstanceUID == pet_source.study_instance_uid
    procedures = [value for name, value in _codes(sr) if name == "Procedure reported"]
    assert procedures == ["PET brain study"]
    assert "PertinentOtherEvidenceSequence" not in sr
    assert _evidence_studies(sr, "CurrentRequestedProcedureEvidenceSequence") == {
        pet_source.study_instance_uid
    }
    texts = _texts(sr)
    assert texts["PET analysed without MR"] == ["No MR study of the patient within 14 days."]
    assert ("PET-to-MR registration passed", "Yes") not in _codes(sr)


# --- overlays and PDF ----------------------------------------------------------------------


def test_fused_overlays_are_rgb_burned_in_in_the_mr_study(
    mr: SourceSeries, pet_source: SourceSeries
) -> None:
    images = make_pet_images(pet_source, mr)
    assert images.masks_mr is not None and images.tbr is not None
    pet = make_pet_report(pet_source)
    scs = build_pet_fusion(
        mr,
        pet,
        images.tbr,
        algorithm=PET_MODEL,
        btv=images.masks_mr[PetSegment.BTV],
        ctv=images.masks_mr[PetSegment.CTV],
        analysed_at=ANALYSED_AT,
    )
    assert 1 <= len(scs) <= 3
    for sc in scs:
        assert sc.StudyInstanceUID == mr.study_instance_uid
        assert sc.SeriesNumber == 9906
        assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
        assert sc.BurnedInAnnotation == "YES"
        assert "research use only" in sc.SeriesDescription.lower()
        assert "PET/MR fusion" in sc.ImageComments
        assert min(sc.Rows, sc.Columns) >= 512
        pixels = sc.pixel_array
        # the banner is red on black, the TBR colour map is not grey
        assert (pixels[..., 0].astype(int) - pixels[..., 2].astype(int)).max() > 100
    again = build_pet_fusion(mr, pet, images.tbr, algorithm=PET_MODEL)
    assert [s.SOPInstanceUID for s in again] == [s.SOPInstanceUID for s in scs][: len(again)]


def test_pet_only_overlays_are_in_the_pet_study(pet_source: SourceSeries) -> None:
    images = make_pet_images(pet_source)
    assert images.tbr is not None
    scs = build_pet_fusion(
        pet_source,
        make_pet_report(pet_source, pet_only=True),
        images.tbr,
        algorithm=PET_MODEL,
        btv=images.masks[PetSegment.BTV],
    )
    assert scs and all(sc.StudyInstanceUID == pet_source.study_instance_uid for sc in scs)
    assert "PET only" in scs[0].ImageComments
    with pytest.raises(DicomInputError, match="resample"):
        build_pet_fusion(
            pet_source, make_pet_report(pet_source), np.zeros((2, 2, 2)), algorithm=PET_MODEL
        )


def test_pet_key_slices() -> None:
    tbr = np.ones((10, 8, 8))
    tbr[7, 4, 4] = 5.0
    assert pet_key_slices(tbr, None) == [7]
    btv = np.zeros((10, 8, 8), bool)
    btv[2:9, 3:6, 3:6] = True
    chosen = pet_key_slices(tbr, btv)
    assert 7 in chosen and len(chosen) == 3 and all(2 <= k <= 8 for k in chosen)


def test_pdf_has_a_pet_page_with_the_sr_numbers(paired: ReportContent) -> None:
    assert paired.pet is not None
    rows = dict((k, v) for k, v in pet_rows(paired.pet))
    assert rows["TBRmax"] == "3.41" and rows["TBRmean (BTV)"] == "1.87"
    assert rows["SUVmax"] == "4.62" and rows["SUVpeak"] == "4.11"
    assert rows["BTV volume"] == "7.4 ml" and rows["BTV threshold (TBR)"] == "1.3"
    assert rows["Background mean"] == "1.355 SUVbw"
    assert rows["PET-to-MR registration"] == "passed, NMI 1.142"
    assert rows["CTV source"] == "derived: ESTRO-EANO 2023"
    assert rows["CTV volume"] == "212.5 ml"
    assert rows["Above threshold, before the BTV rules"] == "19.8 ml"
    residual = residual_rows(paired.pet)
    assert residual[0] == ["Residual tumour", "Present (probability 0.83)"]
    assert ["Probability (PET model)", "0.88"] in residual
    assert ["Model", "residual-pet-lr 0.2.0, AUC 0.81 (95% CI 0.72-0.88)"] in residual
    prognosis = prognosis_rows(paired.pet)
    assert ["Time to recurrence", "risk group high, risk score 1.21"] in prognosis
    assert ["  covariates used", "age, KPS, TBRmax, BTV, MGMT"] in prognosis
    assert ["  MGMT status used", "yes"] in prognosis
    with_pet = render_pdf(paired)
    without = render_pdf(dataclasses.replace(paired, pet=None))
    pages = re.compile(rb"/Type\s*/Page\b(?!s)")
    assert len(pages.findall(with_pet)) == len(pages.findall(without)) + 1 >= 2
    assert render_pdf(paired) == with_pet  # deterministic


# --- writer ---------------------------------------------------------------------------------


def test_write_results_puts_each_pet_object_in_its_study(
    paired: ReportContent, mr: SourceSeries, pet_source: SourceSeries, tmp_path: Path
) -> None:
    labels = make_labels()
    with capture_logs() as logs:
        written = write_results(
            tmp_path,
            paired,
            source=mr,
            segmentation=SegmentationResult(labels, SEG_MODEL),
            pet_images=make_pet_images(pet_source, mr),
        )
    kinds = [o.kind for o in written.objects]
    assert kinds[:4] == ["seg", "pet-seg", "pet-seg-mr", "sr"] and kinds[-1] == "pdf"
    assert "sc" in kinds and "pet-sc" in kinds
    for obj in written.objects:
        expected = pet_source if obj.kind == "pet-seg" else mr
        assert obj.study_instance_uid == expected.study_instance_uid, obj.kind
        assert pydicom.dcmread(obj.path).StudyInstanceUID == obj.study_instance_uid
    again = write_results(
        tmp_path,
        paired,
        source=mr,
        segmentation=SegmentationResult(labels, SEG_MODEL),
        pet_images=make_pet_images(pet_source, mr),
    )
    assert [o.sop_instance_uid for o in again.objects] == [
        o.sop_instance_uid for o in written.objects
    ]
    text = repr(logs)
    for phi in (SYNTHETIC_PATIENT_NAME, SYNTHETIC_PATIENT_ID, "ACC-SYN-78", "19600101"):
        assert phi not in text


def test_write_results_pet_only_writes_everything_in_the_pet_study(
    pet_source: SourceSeries, mr: SourceSeries, tmp_path: Path
) -> None:
    content = make_pet_only_content(pet_source)
    written = write_results(tmp_path, content, pet_images=make_pet_images(pet_source))
    assert [o.kind for o in written.objects][:2] == ["pet-seg", "sr"]
    assert {o.kind for o in written.objects} == {"pet-seg", "sr", "pet-sc", "pdf"}
    assert {o.study_instance_uid for o in written.objects} == {pet_source.study_instance_uid}
    without_images = write_results(tmp_path / "plain", content)
    assert [o.kind for o in without_images.objects] == ["sr", "pdf"]
    wrong_study = dataclasses.replace(content, study=make_report_content(mr).study)
    with pytest.raises(ValueError, match="PET study"):
        write_results(tmp_path / "wrong", wrong_study)


def test_write_results_without_pet_is_unchanged(
    mr: SourceSeries, pet_source: SourceSeries, tmp_path: Path
) -> None:
    """PET images without a PET report are ignored; the MR objects are as before."""
    written = write_results(
        tmp_path,
        make_report_content(mr),
        source=mr,
        segmentation=SegmentationResult(make_labels(), SEG_MODEL),
        pet_images=make_pet_images(pet_source, mr),
    )
    assert {o.kind for o in written.objects} == {"seg", "sr", "sc", "pdf"}


def test_pet_seg_accepts_the_pipelines_short_names(pet_source: SourceSeries) -> None:
    """The pipeline keys its masks "BTV", "RESIDUAL", "CTV"; labels work too."""
    masks = make_pet_masks(make_pet_uptake(*pet_source.shape))
    by_name = {segment.short_name: mask for segment, mask in masks.items()}
    seg = build_pet_segmentation(pet_source, by_name, algorithm=PET_MODEL)
    assert seg is not None
    assert pet_segment_numbers(seg) == {s: i + 1 for i, s in enumerate(PetSegment)}
    assert PetSegment.parse("clinical target volume") is PetSegment.CTV
    with pytest.raises(ValueError, match="not a PET segment"):
        build_pet_segmentation(pet_source, {"GTV": masks[PetSegment.BTV]}, algorithm=PET_MODEL)
