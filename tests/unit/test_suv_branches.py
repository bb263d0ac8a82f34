"""QIBA SUVbw: every branch of rgcds.study.suv against hand-computed values.

Numbers chosen so the arithmetic is done by hand: weight 70 kg, dose 370 MBq, half-life
6000 s. One half-life after injection the dose is 185 MBq, so SUVbw factor = 70 000 g /
185e6 Bq = 3.783783...e-4; at administration 70 000 / 370e6 = 1.891891...e-4.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from rgcds.study.enums import PetQuantity
from rgcds.study.suv import compute_suv_factor, philips_private_factor, slice_suv

ONE_HALF_LIFE = 70_000.0 / 185e6
AT_ADMIN = 70_000.0 / 370e6


def header(**overrides: Any) -> Dataset:
    rp = Dataset()
    rp.RadionuclideHalfLife = "6000"
    rp.RadionuclideTotalDose = "370000000"
    rp.RadiopharmaceuticalStartTime = "100000"
    rp.RadiopharmaceuticalStartDateTime = "20240102100000"
    ds = Dataset()
    ds.Modality = "PT"
    ds.Units = "BQML"
    ds.DecayCorrection = "START"
    ds.CorrectedImage = ["ATTN", "DECY"]
    ds.SeriesDate = "20240102"
    ds.SeriesTime = "114000"  # 100 min = 6000 s after injection
    ds.PatientWeight = "70"
    ds.RadiopharmaceuticalInformationSequence = [rp]
    for key, value in overrides.items():
        if key.startswith("rp_"):
            if value is None:
                delattr(rp, key[3:])
            else:
                setattr(rp, key[3:], value)
        elif value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def at(hhmmss: str) -> datetime:
    return datetime.strptime("20240102" + hhmmss, "%Y%m%d%H%M%S")


def test_bqml_start_series_time() -> None:
    result = compute_suv_factor(header(), [at("114000")])
    assert result.quantity is PetQuantity.SUVBW
    assert result.factor == pytest.approx(ONE_HALF_LIFE, rel=1e-12)
    assert "series start" in result.reason


def test_series_date_without_time_is_not_midnight() -> None:
    result = compute_suv_factor(header(SeriesTime=None))
    assert result.factor is None and "Neither Series Date/Time" in result.reason


def test_start_time_only_uses_series_date() -> None:
    result = compute_suv_factor(header(rp_RadiopharmaceuticalStartDateTime=None))
    assert result.factor == pytest.approx(ONE_HALF_LIFE, rel=1e-12)


def test_start_datetime_wins_over_start_time() -> None:
    # The DT says 08:20 (two half-lives before the scan); the TM (10:00) is ignored.
    ds = header(rp_RadiopharmaceuticalStartDateTime="20240102082000")
    assert compute_suv_factor(ds).factor == pytest.approx(70_000.0 / 92.5e6, rel=1e-12)


def test_injection_the_day_before_via_datetime() -> None:
    ds = header(rp_RadiopharmaceuticalStartDateTime="20240101235000", SeriesTime="011000")
    # 23:50 -> 01:10 next day = 80 min = 4800 s
    expected = 70_000.0 / (370e6 * 2 ** (-4800 / 6000))
    assert compute_suv_factor(ds).factor == pytest.approx(expected, rel=1e-12)


def test_series_time_after_acquisition_uses_earliest_acquisition() -> None:
    ds = header(SeriesTime="130000")  # re-processed: series re-stamped at 13:00
    result = compute_suv_factor(ds, [at("114500"), at("114000"), at("114230")])
    assert result.factor == pytest.approx(ONE_HALF_LIFE, rel=1e-12)
    assert "earliest acquisition" in result.reason


def test_series_time_before_acquisition_keeps_series_time() -> None:
    result = compute_suv_factor(header(), [at("115000")])
    assert result.factor == pytest.approx(ONE_HALF_LIFE, rel=1e-12)


def test_qiba_check_acquisition_before_injection_refused() -> None:
    ds = header(SeriesTime="130000")
    result = compute_suv_factor(ds, [at("093000")])
    assert result.factor is None and result.quantity is PetQuantity.BQML
    assert "before the injection" in result.reason


def test_no_series_time_uses_acquisition() -> None:
    result = compute_suv_factor(header(SeriesTime=None), [at("114000")])
    assert result.factor == pytest.approx(ONE_HALF_LIFE, rel=1e-12)


def test_decay_admin() -> None:
    result = compute_suv_factor(header(DecayCorrection="ADMIN"))
    assert result.factor == pytest.approx(AT_ADMIN, rel=1e-12)
    assert "administration" in result.reason


def test_decay_none_refused_with_reason() -> None:
    result = compute_suv_factor(header(DecayCorrection="NONE"), [at("114000")])
    assert result.factor is None and result.quantity is PetQuantity.BQML
    assert "Decay Correction is NONE" in result.reason


def test_decay_correction_datetime() -> None:
    ds = header(DecayCorrection="START", DecayCorrectionDateTime="20240102082000")
    ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = "20240102064000"
    assert compute_suv_factor(ds).factor == pytest.approx(ONE_HALF_LIFE, rel=1e-12)


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"PatientWeight": None}, "Patient Weight is missing"),
        ({"rp_RadionuclideTotalDose": None}, "Total Dose is missing"),
        ({"rp_RadionuclideHalfLife": None}, "Half Life is missing"),
        (
            {"rp_RadiopharmaceuticalStartDateTime": None, "rp_RadiopharmaceuticalStartTime": None},
            "start date/time is missing",
        ),
        ({"rp_RadiopharmaceuticalStartDateTime": "20240102130000"}, "injection time is after"),
        ({"CorrectedImage": ["ATTN"]}, "without both ATTN and DECY"),
        ({"RadiopharmaceuticalInformationSequence": []}, "Information Sequence is missing"),
    ],
)
def test_missing_information_gives_reason(overrides: dict[str, Any], why: str) -> None:
    result = compute_suv_factor(header(**overrides), [at("114000")])
    assert result.factor is None and not result.is_suv
    assert why in result.reason and "Bq/ml" in result.reason


def test_gml_is_already_suv() -> None:
    result = compute_suv_factor(header(Units="GML"))
    assert result.is_suv and result.factor == 1.0


def _philips(ds: Dataset, block: int, element: int, value: str) -> Dataset:
    ds.add_new((0x7053, block), "LO", "Philips PET Private Group")
    ds.add_new((0x7053, (block << 8) | element), "DS", value)
    return ds


def test_cnts_philips_suv_scale_factor() -> None:
    ds = _philips(header(Units="CNTS"), 0x10, 0x00, "0.000123")
    result = compute_suv_factor(ds)
    assert result.is_suv and result.factor == pytest.approx(0.000123, rel=1e-12)
    assert "7053,1000" in result.reason


def test_cnts_philips_private_block_is_found_by_creator() -> None:
    ds = header(Units="CNTS")
    ds.add_new((0x7053, 0x0010), "LO", "SOME OTHER CREATOR")
    ds.add_new((0x7053, 0x1000), "DS", "99")  # belongs to the other creator
    _philips(ds, 0x11, 0x00, "0.5")
    assert philips_private_factor(ds, 0x00) == 0.5
    assert compute_suv_factor(ds).factor == pytest.approx(0.5)


def test_cnts_philips_value_as_unknown_bytes() -> None:
    ds = header(Units="CNTS")
    ds.add_new((0x7053, 0x0010), "LO", "Philips PET Private Group")
    ds.add_new((0x7053, 0x1000), "UN", b"0.25 ")
    assert compute_suv_factor(ds).factor == pytest.approx(0.25)


def test_cnts_philips_activity_concentration_scale_factor() -> None:
    ds = _philips(header(Units="CNTS"), 0x10, 0x09, "2.5")
    result = compute_suv_factor(ds, [at("114000")])
    assert result.is_suv
    assert result.factor == pytest.approx(2.5 * ONE_HALF_LIFE, rel=1e-12)
    assert "7053,1009" in result.reason


def test_cnts_activity_scale_without_weight_gives_bqml() -> None:
    ds = _philips(header(Units="CNTS", PatientWeight=None), 0x10, 0x09, "2.5")
    result = compute_suv_factor(ds)
    assert result.quantity is PetQuantity.BQML and result.factor == pytest.approx(2.5)
    assert "Patient Weight is missing" in result.reason


def test_cnts_without_philips_factor_is_raw() -> None:
    result = compute_suv_factor(header(Units="CNTS"))
    assert result.quantity is PetQuantity.RAW and result.factor is None


def _slice(slope: str, intercept: str, values: list[int]) -> Dataset:
    ds = header()
    ds.Rows, ds.Columns = 1, len(values)
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.PixelData = np.asarray(values, dtype="<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def test_per_slice_rescale_slope() -> None:
    result = compute_suv_factor(header())
    first = _slice("0.5", "0", [1000, 2000])
    second = _slice("2.0", "0", [1000, 2000])
    np.testing.assert_allclose(
        slice_suv(first, result)[0], [500 * ONE_HALF_LIFE, 1000 * ONE_HALF_LIFE]
    )
    np.testing.assert_allclose(
        slice_suv(second, result)[0], [2000 * ONE_HALF_LIFE, 4000 * ONE_HALF_LIFE]
    )


def test_per_slice_rescale_with_philips_counts() -> None:
    ds = _philips(_slice("3", "10", [100]), 0x10, 0x00, "0.001")
    ds.Units = "CNTS"
    result = compute_suv_factor(ds)
    np.testing.assert_allclose(slice_suv(ds, result)[0], [(100 * 3 + 10) * 0.001])


def test_slice_suv_without_factor_raises() -> None:
    result = compute_suv_factor(header(PatientWeight=None))
    with pytest.raises(ValueError, match="SUV is not available"):
        slice_suv(_slice("1", "0", [1]), result)
