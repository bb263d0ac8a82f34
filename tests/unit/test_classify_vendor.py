"""Sequence identification on what scanners really send: vendor names with their physics.

Each row is one series as a GE, Siemens, Philips or Canon scanner (or an older 1.5 T
spin-echo protocol) writes it: Series Description, Protocol Name, Scanning Sequence,
Sequence Variant, TR / TE / TI (ms), Contrast/Bolus Agent, MR Acquisition Type, slice
thickness (mm), and the role rgcds must give it. Names are the vendors' default protocol
names (Siemens ``t1_mprage_sag_p2_iso``, GE ``AX T1 FLAIR``, Philips ``T1W_3D_TFE``, ...)
and the timings typical of their protocols at 1.5 or 3 T. GE's Protocol Name is the exam
protocol ("BRAIN W/WO"), which names no series.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rgcds.study import (
    ClassificationSettings,
    InstanceRef,
    SeriesInfo,
    SeriesRole,
    StudyIndex,
    classify_series,
    select_sequences,
)

R = SeriesRole
ORIGINAL = ("ORIGINAL", "PRIMARY", "M", "ND", "NORM")
GE_ORIGINAL = ("ORIGINAL", "PRIMARY", "OTHER")
GE_EXAM = "BRAIN W/WO"


@dataclass(frozen=True)
class Row:
    vendor: str
    description: str
    protocol: str
    scanning_sequence: str
    sequence_variant: str
    tr: float | None
    te: float | None
    ti: float | None
    agent: str
    acquisition: str
    thickness: float
    expected: SeriesRole
    image_type: tuple[str, ...] = ORIGINAL


def row(
    vendor: str,
    description: str,
    protocol: str,
    seq: str,
    variant: str,
    tr: float | None,
    te: float | None,
    ti: float | None,
    agent: str,
    acq: str,
    thickness: float,
    expected: SeriesRole,
    image_type: tuple[str, ...] | None = None,
) -> Row:
    if image_type is None:
        image_type = GE_ORIGINAL if vendor == "ge" else ORIGINAL
    return Row(vendor, description, protocol, seq, variant, tr, te, ti, agent, acq, thickness,
               expected, image_type)  # fmt: skip


# vendor, SeriesDescription, ProtocolName, ScanningSequence, SequenceVariant, TR, TE, TI,
# ContrastBolusAgent, MRAcquisitionType, SliceThickness, expected role
ROWS: list[Row] = [
    # --- GE (Signa HDxt / Discovery MR750 / Premier) ---------------------------------------
    row("ge", "AX T1 FLAIR", GE_EXAM, "SE\\IR", "SK\\SS", 2150, 24, 750, "", "2D", 5, R.T1),
    row("ge", "AX T1 FLAIR +C", GE_EXAM, "SE\\IR", "SK\\SS", 2150, 24, 750, "", "2D", 5, R.T1C),
    row("ge", "AX T1 FLAIR POST", GE_EXAM, "SE\\IR", "SK\\SS", 2500, 9, 920, "", "2D", 5, R.T1C),
    row("ge", "Ax T1 FLAIR C+", GE_EXAM, "SE\\IR", "SK\\SS", 2150, 24, 750, "MULTIHANCE", "2D",
        5, R.T1C),
    row("ge", "SAG T1 FLAIR", GE_EXAM, "SE\\IR", "SK\\SS", 2000, 9, 860, "", "2D", 5, R.T1),
    row("ge", "AX T2 FLAIR", GE_EXAM, "SE\\IR", "SK\\SS\\SP", 9000, 145, 2250, "", "2D", 5,
        R.FLAIR),
    row("ge", "Sag CUBE FLAIR", GE_EXAM, "SE\\IR", "SK\\SS\\MP", 6000, 119, 1715, "", "3D", 1.2,
        R.FLAIR),
    row("ge", "SAG T1 BRAVO", GE_EXAM, "GR\\IR", "SK\\SS\\MP", 8.2, 3.2, 450, "", "3D", 1.0,
        R.T1),
    row("ge", "Ax BRAVO +C", GE_EXAM, "GR\\IR", "SK\\SS\\MP", 8.2, 3.2, 450, "", "3D", 1.0,
        R.T1C),
    row("ge", "Ax T1 FSPGR 3D +GD", GE_EXAM, "GR", "SS\\SP", 7.9, 3.0, None, "", "3D", 1.4,
        R.T1C),
    row("ge", "Sag CUBE T1 +C", GE_EXAM, "SE", "SK\\SS", 600, 12, None, "", "3D", 1.0, R.T1C),
    row("ge", "AX T2 FRFSE", GE_EXAM, "SE", "SK", 4500, 102, None, "", "2D", 5, R.T2),
    row("ge", "Ax T2 PROPELLER", GE_EXAM, "SE", "SK\\SS", 6000, 110, None, "", "2D", 5, R.T2),
    row("ge", "AX GRE", GE_EXAM, "GR", "SS", 650, 15, None, "", "2D", 5, R.IGNORED),
    row("ge", "Ax DWI 1000b", GE_EXAM, "EP", "SK\\SS", 6000, 75, None, "", "2D", 5, R.DWI),
    row("ge", "Apparent Diffusion Coefficient (mm2/s)", GE_EXAM, "EP", "SK\\SS", 6000, 75,
        None, "", "2D", 5, R.ADC, ("DERIVED", "PRIMARY", "OTHER")),
    row("ge", "AX DTI", GE_EXAM, "EP", "SK\\SS", 8000, 85, None, "", "2D", 3, R.DWI),
    row("ge", "Ax SWAN", GE_EXAM, "GR", "SS\\SP", 40, 25, None, "", "3D", 2.0, R.SWI),
    row("ge", "Ax Perfusion", GE_EXAM, "EP", "SS\\SP", 1500, 30, None, "MULTIHANCE", "2D", 5,
        R.IGNORED),
    row("ge", "3Plane Loc SSFSE", GE_EXAM, "SE", "SK\\SS", 1300, 80, None, "", "2D", 10,
        R.IGNORED),
    row("ge", "SAG T1 BRAVO", "BRAIN PERFUSION", "GR\\IR", "SK\\SS\\MP", 8.2, 3.2, 450, "",
        "3D", 1.0, R.T1),
    row("ge", "AX T1 SE", GE_EXAM, "SE", "SK", 500, 14, None, "", "2D", 5, R.T1),
    row("ge", "AX T1 SE +C", GE_EXAM, "SE", "SK", 500, 14, None, "MAGNEVIST", "2D", 5, R.T1C),
    row("ge", "Ax Reformat", GE_EXAM, "GR\\IR", "SK\\SS\\MP", 8.2, 3.2, 450, "", "3D", 1.0,
        R.IGNORED, ("DERIVED", "SECONDARY", "REFORMATTED")),
    # --- Siemens (Avanto / Skyra / Prisma) -------------------------------------------------
    row("siemens", "t1_mprage_sag_p2_iso", "t1_mprage_sag_p2_iso", "GR\\IR", "SK\\SP\\MP",
        2300, 2.32, 900, "", "3D", 0.9, R.T1),
    row("siemens", "t1_mprage_sag_p2_iso", "t1_mprage_sag_p2_iso", "GR\\IR", "SK\\SP\\MP",
        2300, 2.32, 900, "Gadovist", "3D", 0.9, R.T1C),
    row("siemens", "t1_mprage_tra_p2_iso_KM", "t1_mprage_tra_p2_iso_KM", "GR\\IR",
        "SK\\SP\\MP", 1900, 2.48, 900, "", "3D", 1.0, R.T1C),
    row("siemens", "MP-RAGE", "MP-RAGE", "GR\\IR", "SK\\SP\\MP", 2300, 2.98, 900, "", "3D",
        1.2, R.T1),
    row("siemens", "t1_mpr_ns_sag_p2_iso", "t1_mpr_ns_sag_p2_iso", "GR\\IR", "SP\\MP", 2400,
        3.61, 1000, "", "3D", 1.0, R.T1),
    row("siemens", "MPR_post", "MPR_post", "GR\\IR", "SK\\SP\\MP", 1900, 2.9, 1100, "", "3D",
        1.0, R.T1C),
    row("siemens", "t1_mprage_sag_p2_iso_MPR_tra", "t1_mprage_sag_p2_iso", "GR\\IR",
        "SK\\SP\\MP", 2300, 2.32, 900, "", "3D", 3.0, R.IGNORED,
        ("DERIVED", "PRIMARY", "MPR", "NORM", "DIS2D")),
    row("siemens", "t1_se_tra", "t1_se_tra", "SE", "SP", 550, 15, None, "", "2D", 5, R.T1),
    row("siemens", "t1_se_tra_KM", "t1_se_tra_KM", "SE", "SP", 550, 15, None, "", "2D", 5,
        R.T1C),
    row("siemens", "t1_se_tra_nativ", "t1_se_tra_nativ", "SE", "SP", 550, 15, None,
        "Dotarem", "2D", 5, R.T1),
    row("siemens", "t1_tirm_tra_dark-fluid", "t1_tirm_tra_dark-fluid", "SE\\IR", "SK\\SP\\MP",
        2000, 9, 860, "", "2D", 5, R.T1),
    row("siemens", "t2_tirm_tra_dark-fluid", "t2_tirm_tra_dark-fluid", "SE\\IR", "SK\\SP\\MP",
        9000, 81, 2500, "", "2D", 5, R.FLAIR),
    row("siemens", "t2_spc_da-fl_sag_p2_iso", "t2_spc_da-fl_sag_p2_iso", "SE\\IR",
        "SK\\SP\\MP", 5000, 387, 1800, "", "3D", 1.0, R.FLAIR),
    row("siemens", "t2_spc_sag_p2_iso", "t2_spc_sag_p2_iso", "SE", "SK\\SP", 3200, 408, None,
        "", "3D", 1.0, R.T2),
    row("siemens", "t2_tse_tra", "t2_tse_tra", "SE", "SK\\SP\\OSP", 5000, 98, None, "", "2D",
        5, R.T2),
    row("siemens", "t2_tirm_cor", "t2_tirm_cor", "SE\\IR", "SK\\SP\\MP", 4000, 39, 150, "",
        "2D", 4, R.IGNORED),
    row("siemens", "t1_fl2d_tra", "t1_fl2d_tra", "GR", "SP\\OSP", 250, 2.5, None, "", "2D", 5,
        R.T1),
    row("siemens", "t2_fl2d_tra_hemo", "t2_fl2d_tra_hemo", "GR", "SP\\OSP", 800, 20, None, "",
        "2D", 5, R.IGNORED),
    row("siemens", "t2_swi_tra_p2_2mm", "t2_swi_tra_p2_2mm", "GR", "SK\\SP\\OSP", 27, 20, None,
        "", "3D", 2.0, R.SWI),
    row("siemens", "ep2d_diff_3scan_trace_p2_TRACEW", "ep2d_diff_3scan_trace_p2", "EP",
        "SK\\SP", 5000, 89, None, "", "2D", 5, R.DWI,
        ("DERIVED", "PRIMARY", "DIFFUSION", "TRACEW", "ND", "NORM")),
    row("siemens", "ep2d_diff_3scan_trace_p2_ADC", "ep2d_diff_3scan_trace_p2", "EP", "SK\\SP",
        5000, 89, None, "", "2D", 5, R.ADC, ("DERIVED", "PRIMARY", "DIFFUSION", "ADC", "ND")),
    row("siemens", "ep2d_perf", "ep2d_perf", "EP", "SK", 1500, 30, None, "Gadovist", "2D", 5,
        R.IGNORED),
    row("siemens", "AAHead_Scout_64ch-head-coil", "AAHead_Scout_64ch-head-coil", "GR", "SP",
        3.2, 1.4, None, "", "3D", 1.6, R.IGNORED),
    # --- Philips (Achieva / Ingenia) -------------------------------------------------------
    row("philips", "T1W_3D_TFE", "WIP T1W_3D_TFE SENSE", "GR", "SK\\MTC\\SS", 8.1, 3.7, None,
        "", "3D", 1.0, R.T1),
    row("philips", "3D T1 TFE +GD", "3D T1 TFE +GD", "GR", "SK\\MTC\\SS", 8.1, 3.7, None, "",
        "3D", 1.0, R.T1C),
    row("philips", "sT1W_3D_TFE", "sT1W_3D_TFE", "GR", "SK\\MTC\\SS", 8.1, 3.7, None,
        "Dotarem", "3D", 1.0, R.T1C),
    row("philips", "T1W_SE", "T1W_SE", "SE", "SK", 550, 10, None, "", "2D", 5, R.T1),
    row("philips", "T1W_SE_Gd", "T1W_SE_Gd", "SE", "SK", 550, 10, None, "", "2D", 5, R.T1C),
    row("philips", "T1W_IR", "T1W_IR", "IR", "SK", 2000, 20, 800, "", "2D", 5, R.T1),
    row("philips", "T2W_TSE", "T2W_TSE", "SE", "SK", 3000, 80, None, "", "2D", 5, R.T2),
    row("philips", "T2W_FLAIR", "T2W_FLAIR", "IR", "SK", 11000, 125, 2800, "", "2D", 5,
        R.FLAIR),
    row("philips", "3D_Brain_VIEW_FLAIR", "3D_Brain_VIEW_FLAIR", "IR", "SK", 4800, 323, 1650,
        "", "3D", 1.1, R.FLAIR),
    row("philips", "3D VISTA", "3D VISTA", "SE", "SK", 2500, 250, None, "", "3D", 1.0, R.T2),
    row("philips", "T2_FFE", "T2_FFE", "GR", "SK", 800, 16, None, "", "2D", 5, R.IGNORED),
    row("philips", "DWI_SENSE", "DWI_SENSE", "EP", "SK", 3000, 70, None, "", "2D", 5, R.DWI),
    row("philips", "Survey", "Survey", "GR", "SK", 11, 4.6, None, "", "2D", 10, R.IGNORED),
    # --- Canon (Vantage Titan / Orian) -----------------------------------------------------
    row("canon", "3D MPRAGE", "3D MPRAGE", "GR\\IR", "SP\\MP", 2100, 3.2, 900, "", "3D", 1.0,
        R.T1),
    row("canon", "3D MPRAGE +C", "3D MPRAGE +C", "GR\\IR", "SP\\MP", 2100, 3.2, 900, "", "3D",
        1.0, R.T1C),
    row("canon", "Ax T2 FSE", "Ax T2 FSE", "SE", "SK", 4500, 100, None, "", "2D", 5, R.T2),
    row("canon", "Ax FLAIR", "Ax FLAIR", "IR", "SK", 9000, 100, 2500, "", "2D", 5, R.FLAIR),
    row("canon", "Ax T1 SE C+", "Ax T1 SE C+", "SE", "SK", 500, 12, None, "", "2D", 5, R.T1C),
    row("canon", "Ax DWI b1000", "Ax DWI b1000", "EP", "SK", 5000, 80, None, "", "2D", 5,
        R.DWI),
    # --- older 1.5 T, thick 2D axial spin echo --------------------------------------------
    row("1.5T", "T1 SE AX", "T1 SE AX", "SE", "SK", 500, 15, None, "", "2D", 6, R.T1),
    row("1.5T", "T1 SE AX POST GAD", "T1 SE AX POST GAD", "SE", "SK", 500, 15, None, "", "2D",
        6, R.T1C),
    row("1.5T", "T2 TSE AX", "T2 TSE AX", "SE", "SK", 4000, 100, None, "", "2D", 6, R.T2),
    row("1.5T", "PD/T2 TSE AX", "PD/T2 TSE AX", "SE", "SK", 3000, 17, None, "", "2D", 6, R.T2),
    row("1.5T", "FLAIR AX", "FLAIR AX", "IR", "SK", 8000, 120, 2000, "", "2D", 6, R.FLAIR),
    row("1.5T", "AX T2* GRE", "AX T2* GRE", "GR", "SP", 600, 18, None, "", "2D", 6, R.IGNORED),
]


def make_series(r: Row, uid: str = "1.2.3", **extra: Any) -> SeriesInfo:
    instances = tuple(
        InstanceRef(Path(f"/x/{uid}/{k}.dcm"), f"{uid}.{k}", "1.2.840.10008.5.1.4.1.1.4", k + 1)
        for k in range(20)
    )
    fields: dict[str, Any] = {
        "series_description": r.description,
        "protocol_name": r.protocol,
        "manufacturer": {"ge": "GE MEDICAL SYSTEMS", "siemens": "SIEMENS",
                         "philips": "Philips Medical Systems",
                         "canon": "CANON_MEC"}.get(r.vendor, ""),
        "image_type": r.image_type,
        "scanning_sequence": tuple(r.scanning_sequence.split("\\")),
        "sequence_variant": tuple(r.sequence_variant.split("\\")),
        "mr_acquisition_type": r.acquisition,
        "repetition_time": r.tr,
        "echo_time": r.te,
        "inversion_time": r.ti,
        "contrast_bolus_agent": r.agent,
        "slice_thickness": r.thickness,
    }  # fmt: skip
    fields.update(extra)
    return SeriesInfo(
        series_instance_uid=uid,
        study_instance_uid="1.2",
        modality="MR",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        instances=instances,
        **fields,
    )


def test_table_covers_the_vendors() -> None:
    assert len(ROWS) >= 40
    assert {r.vendor for r in ROWS} == {"ge", "siemens", "philips", "canon", "1.5T"}
    roles = {r.expected for r in ROWS}
    assert {R.T1, R.T1C, R.T2, R.FLAIR, R.IGNORED} <= roles


@pytest.mark.parametrize(
    "r", ROWS, ids=[f"{r.vendor}:{r.description}:{r.expected.value}" for r in ROWS]
)
def test_vendor_series(r: Row) -> None:
    result = classify_series(make_series(r))
    assert result.role is r.expected, result.reasons
    assert result.confidence >= 0.5 or r.expected is R.IGNORED, result.reasons


def test_inversion_time_overrules_the_name_and_the_setting_restores_the_name() -> None:
    # A copied protocol that kept its name: "AX T1 FLAIR" run with FLAIR timings.
    misnamed = row("ge", "AX T1 FLAIR", GE_EXAM, "SE\\IR", "SK\\SS", 9000, 120, 2400, "", "2D",
                   5, R.FLAIR)  # fmt: skip
    result = classify_series(make_series(misnamed))
    assert result.role is R.FLAIR
    assert any("inversion time over name" in reason for reason in result.reasons)
    by_name = classify_series(
        make_series(misnamed), settings=ClassificationSettings(inversion_time_over_name=False)
    )
    assert by_name.role is R.T1
    # "T2 FLAIR" with T1-FLAIR timings is a T1.
    t1ir = row("ge", "AX T2 FLAIR", GE_EXAM, "SE\\IR", "SK\\SS", 2150, 24, 750, "", "2D", 5,
               R.T1)  # fmt: skip
    assert classify_series(make_series(t1ir)).role is R.T1


def test_readout_family_defers_to_te_and_tr() -> None:
    t1_space = row("siemens", "SPACE", "SPACE", "SE", "SK\\SP", 700, 12, None, "", "3D", 1.0,
                   R.T1)  # fmt: skip
    assert classify_series(make_series(t1_space)).role is R.T1
    cube = row("ge", "Sag CUBE", GE_EXAM, "SE", "SK", 2500, 90, None, "", "3D", 1.0, R.T2)
    assert classify_series(make_series(cube)).role is R.T2


@pytest.mark.parametrize("agent", ["NONE", "none", "No", "0"])
def test_an_agent_of_none_is_no_contrast(agent: str) -> None:
    r = row("ge", "AX T1 SE", GE_EXAM, "SE", "SK", 500, 14, None, agent, "2D", 5, R.T1)
    assert classify_series(make_series(r)).role is R.T1


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("T1 SE tra ohne KM", R.T1),
        ("T1 SE posterior fossa", R.T1),
        ("T1 SE post op", R.T1),
        ("T1 SE POSTGAD", R.T1C),
        ("AX T1 SE W/O", R.T1),
    ],
)
def test_contrast_marker_edge_cases(description: str, expected: SeriesRole) -> None:
    r = row("1.5T", description, description, "SE", "SK", 500, 15, None, "", "2D", 5, expected)
    assert classify_series(make_series(r)).role is expected


def test_exam_level_with_and_without_in_protocol_name_is_neutral() -> None:
    pre = row("ge", "AX T1 SE", "BRAIN W/WO", "SE", "SK", 500, 14, None, "", "2D", 5, R.T1)
    post = row("ge", "AX T1 SE", "BRAIN W/WO", "SE", "SK", 500, 14, None, "GADAVIST", "2D", 5,
               R.T1C)  # fmt: skip
    assert classify_series(make_series(pre)).role is R.T1
    assert classify_series(make_series(post)).role is R.T1C


# --- study level: GE T1 FLAIR before and after contrast ------------------------------------

T1_FLAIR = row("ge", "AX T1 FLAIR", GE_EXAM, "SE\\IR", "SK\\SS", 2150, 24, 750, "", "2D", 5,
               R.T1)  # fmt: skip


def ge_study(post_description: str, *extra: SeriesInfo) -> StudyIndex:
    localizer = row("ge", "3Plane Loc SSFSE", GE_EXAM, "SE", "SK\\SS", 1300, 80, None, "", "2D",
                    10, R.IGNORED)  # fmt: skip
    t2 = row("ge", "AX T2 FRFSE", GE_EXAM, "SE", "SK", 4500, 102, None, "", "2D", 5, R.T2)
    flair = row("ge", "AX T2 FLAIR", GE_EXAM, "SE\\IR", "SK\\SS\\SP", 9000, 145, 2250, "",
                "2D", 5, R.FLAIR)  # fmt: skip
    post = row("ge", post_description, GE_EXAM, "SE\\IR", "SK\\SS", 2150, 24, 750, "", "2D", 5,
               R.T1C)  # fmt: skip
    series = [
        make_series(localizer, uid="9.1", series_number=1, series_time="100000"),
        make_series(T1_FLAIR, uid="9.2", series_number=2, series_time="100300"),
        make_series(t2, uid="9.3", series_number=3, series_time="100700"),
        make_series(flair, uid="9.4", series_number=4, series_time="101100"),
        make_series(post, uid="9.5", series_number=6, series_time="102000"),
        *extra,
    ]
    return StudyIndex(series=tuple(series))


def test_ge_t1_flair_pre_and_post_with_a_name_marker() -> None:
    selection = select_sequences(ge_study("AX T1 FLAIR +C"))
    assert selection.chosen[R.T1].series_instance_uid == "9.2"
    assert selection.chosen[R.T1C].series_instance_uid == "9.5"
    assert selection.chosen[R.FLAIR].series_instance_uid == "9.4"
    assert selection.chosen[R.T2].series_instance_uid == "9.3"


def test_ge_t1_flair_repeated_with_the_same_name_the_later_is_the_t1c() -> None:
    selection = select_sequences(ge_study("AX T1 FLAIR"))
    assert selection.chosen[R.T1].series_instance_uid == "9.2"
    assert selection.chosen[R.T1C].series_instance_uid == "9.5"
    c = selection.classification_of("9.5")
    assert c.role is R.T1C and any("later repeat" in reason for reason in c.reasons)
    assert any("taken as the post-contrast T1" in a for a in selection.ambiguities)
    off = select_sequences(
        ge_study("AX T1 FLAIR"), ClassificationSettings(post_contrast_from_order=False)
    )
    assert R.T1C not in off.chosen


def test_unmarked_t1_after_a_contrast_series_is_post_contrast() -> None:
    bravo = row("ge", "Ax BRAVO +C", GE_EXAM, "GR\\IR", "SK\\SS\\MP", 8.2, 3.2, 450, "", "3D",
                1.0, R.T1C)  # fmt: skip
    repeat = make_series(T1_FLAIR, uid="9.7", series_number=7, series_time="102600")
    index = ge_study("Ax BRAVO +C", repeat)
    index = StudyIndex(
        series=tuple(
            make_series(bravo, uid="9.5", series_number=6, series_time="102000")
            if s.series_instance_uid == "9.5"
            else s
            for s in index.series
        )
    )
    selection = select_sequences(index)
    assert selection.chosen[R.T1].series_instance_uid == "9.2"  # not the later repeat
    assert selection.chosen[R.T1C].series_instance_uid == "9.5"  # 3D over 2D
    assert selection.classification_of("9.7").role is R.T1C


def test_an_immediate_repeat_is_a_motion_repeat_not_a_post_contrast() -> None:
    mprage = row("siemens", "t1_mprage_sag_p2_iso", "t1_mprage_sag_p2_iso", "GR\\IR",
                 "SK\\SP\\MP", 2300, 2.32, 900, "", "3D", 0.9, R.T1)  # fmt: skip
    t2 = row("siemens", "t2_tse_tra", "t2_tse_tra", "SE", "SK\\SP\\OSP", 5000, 98, None, "",
             "2D", 5, R.T2)  # fmt: skip
    index = StudyIndex(
        series=(
            make_series(mprage, uid="8.1", series_number=2, series_time="090500"),
            make_series(mprage, uid="8.2", series_number=3, series_time="091100"),
            make_series(t2, uid="8.3", series_number=4, series_time="091700"),
        )
    )
    selection = select_sequences(index)
    assert R.T1C not in selection.chosen
    assert selection.chosen[R.T1].series_instance_uid == "8.2"  # the later, by preference


def test_a_perfusion_with_an_agent_marks_the_injection() -> None:
    perf = row("siemens", "ep2d_perf", "ep2d_perf", "EP", "SK", 1500, 30, None, "Gadovist",
               "2D", 5, R.IGNORED)  # fmt: skip
    t1 = row("siemens", "t1_se_tra", "t1_se_tra", "SE", "SP", 550, 15, None, "", "2D", 5, R.T1)
    index = StudyIndex(
        series=(
            make_series(t1, uid="7.1", series_number=2, series_time="090500"),
            make_series(perf, uid="7.2", series_number=5, series_time="091500"),
            make_series(t1, uid="7.3", series_number=6, series_time="091800"),
        )
    )
    selection = select_sequences(index)
    assert selection.chosen[R.T1].series_instance_uid == "7.1"
    assert selection.chosen[R.T1C].series_instance_uid == "7.3"
    assert any("ep2d_perf" in a for a in selection.ambiguities)
