"""PET standardised uptake value (SUVbw) from header information, vendor neutral.

Follows the QIBA vendor-neutral pseudo-code: pixel values in Bq/ml (Units BQML) decay
corrected to the series start (DecayCorrection START; SeriesDate/Time, or the earliest
acquisition time when the series time is later, as after GE re-processing) or to the
administration (ADMIN); the injected dose decayed from RadiopharmaceuticalStartDateTime (or
SeriesDate + RadiopharmaceuticalStartTime) to that time; SUVbw = value * weight[g] /
decayed dose[Bq]. When something is missing the factor is ``None`` and the reason says what.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rgcds.study.enums import DecayCorrectionValues, PetQuantity, UnitsValues


@dataclass(frozen=True, slots=True)
class SuvResult:
    """How PET voxel values were scaled.

    Attributes
    ----------
    quantity
        ``SUVbw`` when ``factor`` was applied; ``Bq/ml`` (or ``raw``) when it could not be.
    factor
        Multiply Bq/ml by this to obtain SUVbw (g/ml); ``None`` when SUV was not computed.
    reason
        A sentence: how the factor was computed, or why it could not be.
    """

    quantity: PetQuantity
    factor: float | None
    reason: str

    @property
    def is_suv(self) -> bool:
        """Whether the values are SUVbw."""
        return self.quantity is PetQuantity.SUVBW


def parse_dicom_datetime(date: str, time: str = "") -> datetime | None:
    """Parse DA + TM (or a DT in ``date`` with empty ``time``); ``None`` if malformed."""
    text = (date.strip() + time.strip()).split("+")[0].split("-")[0]
    if not text:
        return None
    whole, _, frac = text.partition(".")
    fmt = {8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}.get(len(whole))
    if fmt is None:
        return None
    try:
        value = datetime.strptime(whole, fmt)  # DICOM times are local (naive)
    except ValueError:
        return None
    if frac:
        value += timedelta(seconds=float("0." + frac))
    return value


def _get(ds: Any, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def compute_suv_factor(ds: Any, acquisition_datetimes: Sequence[datetime] = ()) -> SuvResult:
    """Compute the Bq/ml -> SUVbw factor of a PET series.

    Parameters
    ----------
    ds
        A pydicom Dataset of the series (any instance; the header attributes are shared).
    acquisition_datetimes
        The acquisition date-times of all slices or frames, used when the series time is
        later than the acquisition (re-processed series).

    Returns
    -------
    SuvResult
    """

    def fail(reason: str) -> SuvResult:
        return SuvResult(PetQuantity.BQML, None, reason + " The PET image is kept in Bq/ml.")

    units = _get(ds, "Units").upper()
    if units == UnitsValues.GML.value:
        return SuvResult(PetQuantity.SUVBW, 1.0, "Units are GML: values are already SUVbw.")
    if units != UnitsValues.BQML.value:
        return SuvResult(
            PetQuantity.RAW,
            None,
            f"Units are {units or 'absent'}, not BQML, so SUV cannot be computed; values are "
            "left as stored.",
        )
    corrected = {str(v).upper() for v in (ds.get("CorrectedImage") or [])}
    if corrected and not {"ATTN", "DECY"} <= corrected:
        return fail(
            f"Corrected Image is {sorted(corrected)}, without both ATTN and DECY, so SUV "
            "would be wrong."
        )
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        return fail("The Radiopharmaceutical Information Sequence is missing.")
    info = seq[0]
    try:
        half_life = float(info.get("RadionuclideHalfLife") or 0)
        dose = float(info.get("RadionuclideTotalDose") or 0)
        weight = float(ds.get("PatientWeight") or 0)
    except (TypeError, ValueError):
        return fail("Half-life, total dose or patient weight is not a number.")
    if half_life <= 0:
        return fail("Radionuclide Half Life is missing.")
    if dose <= 0:
        return fail("Radionuclide Total Dose is missing.")
    if weight <= 0:
        return fail("Patient Weight is missing.")

    series_date = _get(ds, "SeriesDate") or _get(ds, "StudyDate")
    start = parse_dicom_datetime(_get(info, "RadiopharmaceuticalStartDateTime"))
    if start is None:
        start = parse_dicom_datetime(series_date, _get(info, "RadiopharmaceuticalStartTime"))
    if start is None:
        return fail("The radiopharmaceutical start date/time is missing.")

    decay = _get(ds, "DecayCorrection").upper() or DecayCorrectionValues.START.value
    decay_dt = parse_dicom_datetime(_get(ds, "DecayCorrectionDateTime"))
    how: str
    if decay == DecayCorrectionValues.ADMIN.value:
        scan = start
        how = "decay corrected to administration"
    elif decay_dt is not None:
        scan = decay_dt
        how = "decay corrected to Decay Correction DateTime"
    elif decay == DecayCorrectionValues.START.value:
        series_dt = parse_dicom_datetime(series_date, _get(ds, "SeriesTime"))
        earliest = min(acquisition_datetimes) if acquisition_datetimes else None
        if series_dt is None and earliest is None:
            return fail("Neither Series Date/Time nor Acquisition Date/Time is present.")
        if series_dt is None or (earliest is not None and series_dt > earliest):
            assert earliest is not None
            scan = earliest
            how = "decay corrected to the earliest acquisition time (series time is later)"
        else:
            scan = series_dt
            how = "decay corrected to the series start"
    else:
        return fail(f"Decay Correction is {decay}, not START or ADMIN.")

    elapsed = (scan - start).total_seconds()
    if elapsed < 0:
        return fail(
            "The injection time is after the scan time; check RadiopharmaceuticalStartTime "
            "and the series time."
        )
    decayed_dose = dose * math.pow(2.0, -elapsed / half_life)
    factor = weight * 1000.0 / decayed_dose
    return SuvResult(
        PetQuantity.SUVBW,
        factor,
        f"SUVbw computed ({how}; {elapsed / 60:.1f} min after injection).",
    )


__all__ = ["SuvResult", "compute_suv_factor", "parse_dicom_datetime"]
