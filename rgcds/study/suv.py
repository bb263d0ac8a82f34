"""PET standardised uptake value (SUVbw) from header information, vendor neutral.

Follows the QIBA vendor-neutral pseudo-code: pixel values in Bq/ml (Units BQML) decay
corrected to the series start (DecayCorrection START; SeriesDate/Time, or the earliest
acquisition time when the series time is later, as after GE re-processing) or to the
administration (ADMIN); the injected dose decayed from RadiopharmaceuticalStartDateTime (or
SeriesDate + RadiopharmaceuticalStartTime) to that time; SUVbw = value * weight[g] /
decayed dose[Bq]. When something is missing the factor is ``None`` and the reason says what.

Branches (each covered by ``tests/unit/test_suv_branches.py`` with hand-computed values):

* Units ``GML``: already SUVbw (factor 1).
* Units ``BQML`` with Decay Correction ``START`` (to SeriesDate/Time, or — QIBA rule — to the
  earliest AcquisitionDate/Time when the series time is later, as after re-processing; the
  check then requires that acquisition to follow the injection) or ``ADMIN`` (no decay of the
  dose). ``NONE`` is refused with the reason, as in the QIBA pseudo-code (uncorrected values
  would need a per-slice decay and frame-duration correction); ratios remain usable.
* Units ``CNTS`` (Philips): the private SUV Scale Factor (7053,1000) of the "Philips PET Private
  Group" gives SUVbw directly; otherwise the private Activity Concentration Scale Factor
  (7053,1009) turns counts into Bq/ml and the BQML rules above follow. Without either the
  values stay raw.
* Per-slice Rescale Slope/Intercept are applied before the factor (:func:`slice_suv` shows the
  arithmetic; :mod:`rgcds.study.convert` does the same per slice).

The GE private post-injection time is deliberately not used (see ``docs/pet.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

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


#: The Philips private creator of group 7053.
PHILIPS_PET_PRIVATE_CREATOR = "Philips PET Private Group"
#: Element offsets in the Philips block: SUV Scale Factor and Activity Concentration Scale Factor.
PHILIPS_SUV_SCALE_ELEMENT = 0x00
PHILIPS_ACTIVITY_SCALE_ELEMENT = 0x09


def _number(value: Any) -> float | None:
    """A positive finite number from a DS/FD/UN value (bytes are decoded as text)."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = value.decode("ascii", "replace").strip("\x00 ")
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def philips_private_factor(ds: Any, element_offset: int) -> float | None:
    """Read a Philips PET private scale factor from group 7053.

    Parameters
    ----------
    ds
        A pydicom Dataset.
    element_offset
        ``PHILIPS_SUV_SCALE_ELEMENT`` (7053,xx00) or ``PHILIPS_ACTIVITY_SCALE_ELEMENT``
        (7053,xx09).

    Returns
    -------
    float or None
        The factor, or ``None`` when absent, zero or not a number. The block reserved by the
        "Philips PET Private Group" creator is used; without a creator the usual block
        (7053,10xx) is tried.
    """
    block = 0x10
    for element in range(0x10, 0x100):
        creator = ds.get((0x7053, element))
        if creator is None:
            continue
        text = creator.value
        if isinstance(text, bytes | bytearray):
            text = text.decode("ascii", "replace")
        if str(text).strip("\x00 ").upper() == PHILIPS_PET_PRIVATE_CREATOR.upper():
            block = element
            break
    item = ds.get((0x7053, (block << 8) | element_offset))
    return None if item is None else _number(item.value)


def _bqml_factor(ds: Any, acquisition_datetimes: Sequence[datetime]) -> tuple[float | None, str]:
    """Bq/ml -> SUVbw factor and a sentence (how, or why not)."""
    corrected = {str(v).upper() for v in (ds.get("CorrectedImage") or [])}
    if corrected and not {"ATTN", "DECY"} <= corrected:
        return None, (
            f"Corrected Image is {sorted(corrected)}, without both ATTN and DECY, so SUV "
            "would be wrong."
        )
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        return None, "The Radiopharmaceutical Information Sequence is missing."
    info = seq[0]
    try:
        half_life = float(info.get("RadionuclideHalfLife") or 0)
        dose = float(info.get("RadionuclideTotalDose") or 0)
        weight = float(ds.get("PatientWeight") or 0)
    except (TypeError, ValueError):
        return None, "Half-life, total dose or patient weight is not a number."
    if half_life <= 0:
        return None, "Radionuclide Half Life is missing."
    if dose <= 0:
        return None, "Radionuclide Total Dose is missing."
    if weight <= 0:
        return None, "Patient Weight is missing."

    series_date = _get(ds, "SeriesDate") or _get(ds, "StudyDate")
    start = parse_dicom_datetime(_get(info, "RadiopharmaceuticalStartDateTime"))
    start_time = _get(info, "RadiopharmaceuticalStartTime")
    if start is None and start_time:  # a date alone would silently mean midnight
        start = parse_dicom_datetime(series_date, start_time)
    if start is None:
        return None, "The radiopharmaceutical start date/time is missing."

    decay = _get(ds, "DecayCorrection").upper() or DecayCorrectionValues.START.value
    decay_dt = parse_dicom_datetime(_get(ds, "DecayCorrectionDateTime"))
    earliest = min(acquisition_datetimes) if acquisition_datetimes else None
    series_time = _get(ds, "SeriesTime")
    series_dt = parse_dicom_datetime(series_date, series_time) if series_time else None
    how: str
    if decay == DecayCorrectionValues.ADMIN.value:
        scan = start
        how = "decay corrected to administration"
    elif decay == DecayCorrectionValues.NONE.value:
        # QIBA computes SUV only from decay-corrected images (START or ADMIN): uncorrected
        # values would need a per-slice decay and frame-duration correction.
        return None, (
            "Decay Correction is NONE (values are not decay corrected); QIBA SUVbw needs "
            "START or ADMIN."
        )
    elif decay_dt is not None:
        scan = decay_dt
        how = "decay corrected to Decay Correction DateTime"
    elif decay == DecayCorrectionValues.START.value:
        if series_dt is None and earliest is None:
            return None, "Neither Series Date/Time nor Acquisition Date/Time is present."
        if series_dt is None or (earliest is not None and series_dt > earliest):
            assert earliest is not None
            # QIBA: a series time after the earliest acquisition means the series was
            # re-processed (its time re-stamped); the acquisition is the scan start, provided
            # it is itself after the injection.
            if earliest < start:
                return None, (
                    "The series time is after the earliest acquisition time, and that "
                    "acquisition time is before the injection; the scan start cannot be "
                    "trusted."
                )
            scan = earliest
            how = "decay corrected to the earliest acquisition time (series time is later)"
        else:
            scan = series_dt
            how = "decay corrected to the series start"
    else:
        return None, f"Decay Correction is {decay}, not START, ADMIN or NONE."

    elapsed = (scan - start).total_seconds()
    if elapsed < 0:
        return None, (
            "The injection time is after the scan time; check RadiopharmaceuticalStartTime "
            "and the series time."
        )
    decayed_dose = dose * math.pow(2.0, -elapsed / half_life)
    factor = weight * 1000.0 / decayed_dose
    return factor, f"{how}; {elapsed / 60:.1f} min after injection"


def compute_suv_factor(ds: Any, acquisition_datetimes: Sequence[datetime] = ()) -> SuvResult:
    """Compute the factor from rescaled PET values to SUVbw (QIBA vendor-neutral).

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
        ``factor`` multiplies values after Rescale Slope/Intercept (Bq/ml for BQML, counts for
        Philips CNTS). ``None`` with the reason when the header cannot give SUV; TBR needs
        no calibration, so the PET remains usable for ratios.
    """
    units = _get(ds, "Units").upper()
    if units == UnitsValues.GML.value:
        return SuvResult(PetQuantity.SUVBW, 1.0, "Units are GML: values are already SUVbw.")
    if units == UnitsValues.CNTS.value:
        suv_scale = philips_private_factor(ds, PHILIPS_SUV_SCALE_ELEMENT)
        if suv_scale is not None:
            return SuvResult(
                PetQuantity.SUVBW,
                suv_scale,
                "SUVbw from the Philips private SUV Scale Factor (7053,1000) applied to "
                "counts (Units CNTS).",
            )
        activity_scale = philips_private_factor(ds, PHILIPS_ACTIVITY_SCALE_ELEMENT)
        if activity_scale is not None:
            factor, why = _bqml_factor(ds, acquisition_datetimes)
            if factor is None:
                return SuvResult(
                    PetQuantity.BQML,
                    activity_scale,
                    why + " Counts were converted to Bq/ml with the Philips Activity "
                    "Concentration Scale Factor (7053,1009) only.",
                )
            return SuvResult(
                PetQuantity.SUVBW,
                activity_scale * factor,
                f"SUVbw computed from counts via the Philips Activity Concentration Scale "
                f"Factor (7053,1009) ({why}).",
            )
    if units not in (UnitsValues.BQML.value,):
        return SuvResult(
            PetQuantity.RAW,
            None,
            f"Units are {units or 'absent'}, not BQML (nor CNTS with a Philips scale factor), "
            "so SUV cannot be computed; values are left as stored.",
        )
    factor, why = _bqml_factor(ds, acquisition_datetimes)
    if factor is None:
        return SuvResult(PetQuantity.BQML, None, why + " The PET image is kept in Bq/ml.")
    return SuvResult(PetQuantity.SUVBW, factor, f"SUVbw computed ({why}).")


def slice_suv(ds: Any, result: SuvResult) -> npt.NDArray[np.float64]:
    """SUVbw of one single-frame PET slice: (stored * its own slope + intercept) * factor.

    Parameters
    ----------
    ds
        A single-frame PET instance with pixel data (Rescale Slope may differ per slice).
    result
        The series' :class:`SuvResult` with a factor.

    Returns
    -------
    numpy.ndarray
        float64 values in SUVbw.

    Raises
    ------
    ValueError
        If ``result`` carries no factor.
    """
    if result.factor is None:
        raise ValueError(f"SUV is not available for this series: {result.reason}")
    slope = float(ds.get("RescaleSlope") or 1.0)
    intercept = float(ds.get("RescaleIntercept") or 0.0)
    values = np.asarray(ds.pixel_array, dtype=np.float64) * slope + intercept
    return values * result.factor


__all__ = [
    "PHILIPS_PET_PRIVATE_CREATOR",
    "SuvResult",
    "compute_suv_factor",
    "parse_dicom_datetime",
    "philips_private_factor",
    "slice_suv",
]
