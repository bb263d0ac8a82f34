"""Sequence identification from header evidence (names as Siemens, GE and Philips spell them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rgcds.study import (
    ClassificationRule,
    ClassificationSettings,
    InstanceRef,
    PetTracer,
    RadiopharmaceuticalInfo,
    SeriesInfo,
    SeriesRole,
    StudyIndex,
    classify_series,
    select_sequences,
)

R = SeriesRole


def make_series(
    description: str = "",
    *,
    uid: str = "1.2.3",
    modality: str = "MR",
    n: int = 20,
    **fields: Any,
) -> SeriesInfo:
    instances = tuple(
        InstanceRef(Path(f"/x/{uid}/{k}.dcm"), f"{uid}.{k}", "1.2.840.10008.5.1.4.1.1.4", k + 1)
        for k in range(n)
    )
    return SeriesInfo(
        series_instance_uid=uid,
        study_instance_uid="1.2",
        modality=modality,
        sop_class_uid=fields.pop("sop_class_uid", "1.2.840.10008.5.1.4.1.1.4"),
        instances=instances,
        series_description=description,
        **fields,
    )


# (vendor, Series Description, expected role, extra header fields)
CASES: list[tuple[str, str, SeriesRole, dict[str, Any]]] = [
    # Siemens
    (
        "siemens",
        "t1_mprage_sag_p2_iso",
        R.T1,
        {
            "repetition_time": 2300,
            "echo_time": 2.3,
            "inversion_time": 900,
            "scanning_sequence": ("GR", "IR"),
        },
    ),
    ("siemens", "t1_mprage_sag_p2_iso_post", R.T1C, {}),
    ("siemens", "T1 MPRAGE +C", R.T1C, {}),
    ("siemens", "t1_mprage_tra_p2_iso", R.T1C, {"contrast_bolus_agent": "Gadovist"}),
    ("siemens", "t1_se_tra", R.T1, {"repetition_time": 500, "echo_time": 12}),
    ("siemens", "t1_se_tra_KM", R.T1C, {}),
    ("siemens", "t1_fl2d_tra", R.T1, {}),
    ("siemens", "t1_vibe_fs_tra_Gd", R.T1C, {}),
    ("siemens", "t2_tse_tra", R.T2, {"repetition_time": 5000, "echo_time": 95}),
    ("siemens", "t2_tse_tra_512", R.T2, {}),
    ("siemens", "t2_blade_tra", R.T2, {}),
    (
        "siemens",
        "t2_tirm_tra_dark-fluid",
        R.FLAIR,
        {
            "repetition_time": 9000,
            "echo_time": 81,
            "inversion_time": 2500,
            "scanning_sequence": ("SE", "IR"),
        },
    ),
    ("siemens", "t2_spc_da-fl_sag_p2_iso", R.FLAIR, {}),
    ("siemens", "t2_flair_tra", R.FLAIR, {}),
    ("siemens", "ep2d_diff_b1000", R.DWI, {"diffusion_b_value": 1000}),
    ("siemens", "ep2d_diff_3scan_trace_p2_TRACEW", R.DWI, {}),
    ("siemens", "ep2d_diff_3scan_trace_p2_ADC", R.ADC, {}),
    ("siemens", "_ADC", R.ADC, {}),
    ("siemens", "resolve_4scan_trace_tra", R.DWI, {}),
    ("siemens", "SWI_Images", R.SWI, {}),
    ("siemens", "mIP_Images(SW)", R.IGNORED, {}),
    ("siemens", "Pha_Images", R.IGNORED, {}),
    ("siemens", "localizer", R.IGNORED, {}),
    ("siemens", "AAHead_Scout_64ch-head-coil", R.IGNORED, {}),
    ("siemens", "t2_fl2d_tra_hemo", R.IGNORED, {}),
    ("siemens", "t1_mprage_sag_p2_iso_MPR_tra", R.IGNORED, {}),
    ("siemens", "t1_mprage_post_sag", R.IGNORED, {"image_type": ("DERIVED", "PRIMARY", "MPR")}),
    # GE
    ("ge", "Ax T1 FSPGR BRAVO +C", R.T1C, {}),
    ("ge", "SAG T1 BRAVO", R.T1, {"repetition_time": 8.2, "echo_time": 3.2, "inversion_time": 450}),
    ("ge", "AX T1 SE", R.T1, {}),
    ("ge", "AX T1 FLAIR", R.T1, {}),
    ("ge", "AX T1 FLAIR +C", R.T1C, {}),
    ("ge", "Sag CUBE T1 +C", R.T1C, {}),
    ("ge", "AX T2 FRFSE", R.T2, {}),
    ("ge", "Ax T2 PROPELLER", R.T2, {}),
    ("ge", "Sag CUBE FLAIR", R.FLAIR, {}),
    ("ge", "AX T2 FLAIR", R.FLAIR, {}),
    ("ge", "Ax DWI 1000b", R.DWI, {}),
    ("ge", "Apparent Diffusion Coefficient (mm2/s)", R.ADC, {}),
    ("ge", "Ax SWAN", R.SWI, {}),
    ("ge", "AX T2 GRE", R.IGNORED, {}),
    ("ge", "3-pl loc", R.IGNORED, {}),
    ("ge", "3 Plane Localizer", R.IGNORED, {}),
    ("ge", "ASSET cal", R.IGNORED, {}),
    ("ge", "Screen Save", R.IGNORED, {}),
    ("ge", "Ax T1 post MIP", R.IGNORED, {}),
    # Philips
    ("philips", "3D T1 TFE Gd", R.T1C, {}),
    ("philips", "T1W_3D_TFE", R.T1, {}),
    ("philips", "sT1W_3D_TFE", R.T1, {}),
    ("philips", "T1W_3D_TFE+C", R.T1C, {}),
    ("philips", "T1W_SE", R.T1, {}),
    ("philips", "T2W_TSE", R.T2, {}),
    ("philips", "T2W_FLAIR", R.FLAIR, {}),
    ("philips", "3D_Brain_VIEW_FLAIR", R.FLAIR, {}),
    ("philips", "DWI_SENSE", R.DWI, {}),
    ("philips", "dADC", R.ADC, {}),
    ("philips", "eADC", R.IGNORED, {}),
    ("philips", "SWIp", R.SWI, {}),
    ("philips", "T2_FFE", R.IGNORED, {}),
    ("philips", "Survey", R.IGNORED, {}),
    ("philips", "SmartBrain", R.IGNORED, {}),
    ("philips", "SENSE_Ref_Scan", R.IGNORED, {}),
    # header-only evidence
    (
        "any",
        "",
        R.FLAIR,
        {
            "repetition_time": 9000,
            "echo_time": 120,
            "inversion_time": 2500,
            "scanning_sequence": ("SE", "IR"),
        },
    ),
    (
        "any",
        "",
        R.T1C,
        {"repetition_time": 550, "echo_time": 10, "contrast_bolus_agent": "Dotarem"},
    ),
    ("any", "", R.T2, {"repetition_time": 4000, "echo_time": 100}),
    ("any", "", R.DWI, {"image_type": ("ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW")}),
    ("any", "", R.ADC, {"image_type": ("DERIVED", "PRIMARY", "DIFFUSION", "ADC")}),
    ("any", "", R.IGNORED, {"image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER")}),
    ("any", "seriesname", R.IGNORED, {}),
    # our own results and non-image objects
    ("rgcds", "Tumour segmentation (research use only)", R.IGNORED, {}),
    ("rgcds", "T1c overlay", R.IGNORED, {"manufacturer": "rgcds"}),
    ("any", "AI Segmentation", R.IGNORED, {"modality": "SEG"}),
    ("any", "Report", R.IGNORED, {"modality": "SR"}),
    ("any", "T1 post screenshot", R.IGNORED, {"sop_class_uid": "1.2.840.10008.5.1.4.1.1.7"}),
    ("any", "Head CT", R.CT, {"modality": "CT"}),
    ("any", "Topogram 0.6 T20s", R.IGNORED, {"modality": "CT"}),
    ("any", "PET Brain FET", R.PET, {"modality": "PT"}),
    ("any", "PET Brain NAC", R.IGNORED, {"modality": "PT"}),
]


def test_table_is_large_enough() -> None:
    vendors = {v for v, *_ in CASES}
    assert {"siemens", "ge", "philips"} <= vendors
    assert sum(1 for v, *_ in CASES if v in {"siemens", "ge", "philips"}) >= 40


@pytest.mark.parametrize(
    ("vendor", "description", "expected", "fields"),
    CASES,
    ids=[f"{v}:{d or '(header)'}" for v, d, *_ in CASES],
)
def test_series_description_spellings(
    vendor: str, description: str, expected: SeriesRole, fields: dict[str, Any]
) -> None:
    fields = dict(fields)
    modality = fields.pop("modality", "MR")
    result = classify_series(make_series(description, modality=modality, **fields))
    assert result.role is expected, result.reasons
    assert 0.0 <= result.confidence <= 1.0
    assert result.reasons and all(isinstance(r, str) and r for r in result.reasons)


def test_protocol_name_is_used_when_description_is_empty() -> None:
    result = classify_series(make_series("", protocol_name="t2_tirm_tra_dark-fluid"))
    assert result.role is R.FLAIR


def test_header_agreement_raises_confidence_and_conflict_lowers_it() -> None:
    agree = classify_series(make_series("t2_tse_tra", repetition_time=5000, echo_time=100))
    name_only = classify_series(make_series("t2_tse_tra"))
    conflict = classify_series(make_series("t2_tse_tra", repetition_time=500, echo_time=10))
    assert agree.confidence > name_only.confidence > conflict.confidence
    assert conflict.role is R.T2
    assert any("conflicts" in r for r in conflict.reasons)


def test_pre_in_name_beats_contrast_agent_with_lower_confidence() -> None:
    result = classify_series(make_series("T1 SE pre", contrast_bolus_agent="Gadovist"))
    assert result.role is R.T1
    assert any("pre-contrast" in r for r in result.reasons)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (
            RadiopharmaceuticalInfo(code_value="35321007", code_meaning="Fluorodeoxyglucose F^18^"),
            PetTracer.FDG,
        ),
        (RadiopharmaceuticalInfo(code_value="C-B1031"), PetTracer.FDG),
        (RadiopharmaceuticalInfo(code_value="129510001"), PetTracer.MET),
        (RadiopharmaceuticalInfo(code_value="424708001"), PetTracer.FET),
        (RadiopharmaceuticalInfo(code_value="5811000122108"), PetTracer.FDOPA),
        (RadiopharmaceuticalInfo(name="18F-FET"), PetTracer.FET),
        (RadiopharmaceuticalInfo(name="Fluorethyltyrosin"), PetTracer.FET),
        (RadiopharmaceuticalInfo(name="C11-Methionin"), PetTracer.MET),
        (RadiopharmaceuticalInfo(name="F-DOPA"), PetTracer.FDOPA),
        (RadiopharmaceuticalInfo(name="FDG -- fluorodeoxyglucose"), PetTracer.FDG),
        (RadiopharmaceuticalInfo(name="Unobtainium"), PetTracer.UNKNOWN),
    ],
)
def test_pet_tracer(info: RadiopharmaceuticalInfo, expected: PetTracer) -> None:
    result = classify_series(make_series("PET Brain", modality="PT", radiopharmaceutical=info))
    assert result.role is R.PET
    assert result.tracer is expected


def test_configured_rule_overrides_everything() -> None:
    rule = ClassificationRule(series_description_regex=r"^weird_seq_7$", role="t1c")
    assert rule.role == "T1c"
    result = classify_series(make_series("weird_seq_7"), overrides=[rule])
    assert result.role is R.T1C and result.confidence == 1.0
    ignored = classify_series(
        make_series("t1_mprage_post"),
        overrides=[ClassificationRule(series_description_regex="mprage", role="IGNORED")],
    )
    assert ignored.role is R.IGNORED


def test_settings_models_are_strict_and_frozen() -> None:
    settings = ClassificationSettings.model_validate(
        {"rules": [{"series_description_regex": "foo", "role": "FLAIR"}]}
    )
    assert settings.rules[0].series_role is R.FLAIR
    with pytest.raises(ValidationError):
        ClassificationSettings.model_validate({"rules": [], "unknown": 1})
    with pytest.raises(ValidationError):
        ClassificationRule(series_description_regex="(", role="T1")
    with pytest.raises(ValidationError, match="not one of"):
        ClassificationRule(series_description_regex="x", role="T3")
    with pytest.raises(ValidationError):
        settings.min_confidence = 0.1  # type: ignore[misc]


def test_selection_prefers_3d_then_thin_then_later_and_reports_it() -> None:
    series = (
        make_series(
            "t1_se_tra_KM",
            uid="1.1",
            mr_acquisition_type="2D",
            slice_thickness=5.0,
            series_number=5,
            series_time="101000",
        ),
        make_series(
            "t1_mprage_sag_post",
            uid="1.2",
            mr_acquisition_type="3D",
            slice_thickness=1.0,
            series_number=6,
            series_time="102000",
        ),
        make_series(
            "t1_mprage_tra_post",
            uid="1.3",
            mr_acquisition_type="3D",
            slice_thickness=1.0,
            series_number=7,
            series_time="103000",
        ),
        make_series("t2_tse_tra", uid="2.1", series_number=2),
        make_series("localizer", uid="0.1", series_number=1, n=3),
        make_series("t2_flair_tra", uid="3.1", series_number=3, slice_thickness=3.0),
        make_series("t2_flair_tra", uid="3.2", series_number=4, slice_thickness=5.0),
    )
    selection = select_sequences(StudyIndex(series=series))
    assert selection.series_for(R.T1C) is not None
    assert selection.chosen[R.T1C].series_instance_uid == "1.3"  # 3D, 1 mm, later
    assert selection.chosen[R.FLAIR].series_instance_uid == "3.1"  # thinner
    assert selection.chosen[R.T2].series_instance_uid == "2.1"
    assert R.IGNORED not in selection.chosen
    assert selection.series_for(R.PET) is None
    assert len(selection.ambiguities) == 2
    assert any("T1c" in a and "3D over 2D" in a for a in selection.ambiguities)
    assert selection.classification_of("0.1").role is R.IGNORED


def test_selection_applies_settings_rules_and_confidence_floor() -> None:
    series = (
        make_series("mystery", uid="9.1"),
        make_series("", uid="9.2", repetition_time=4000, echo_time=100),
    )
    strict = ClassificationSettings(min_confidence=0.7)
    assert select_sequences(StudyIndex(series=series), strict).chosen == {}
    rules = ClassificationSettings(
        rules=[ClassificationRule(series_description_regex="mystery", role="T1c")]
    )
    chosen = select_sequences(StudyIndex(series=series), rules).chosen
    assert chosen[R.T1C].series_instance_uid == "9.1"
    assert chosen[R.T2].series_instance_uid == "9.2"
