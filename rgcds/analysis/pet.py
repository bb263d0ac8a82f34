# SimpleITK ships no type hints: its calls are untyped and return Any.
"""Amino-acid PET measurements for glioma (joint EANM/EANO/RANO/SNMMI guideline, Law et al. 2019).

All measurements are made on the PET grid (no interpolation of uptake values); masks defined
on the MR grid (brain, tumour, CTV) are brought onto it with nearest-neighbour interpolation
through the rigid PET-to-MR transform, and the biological tumour volume (BTV) is mapped back
onto the MR grid the same way.

Background (the guideline's "normal-appearing contralateral brain")
    The tumour region (the tumour mask, or — without one — a 15 mm ball around the hottest
    voxel) is dilated by ``background_radius_mm`` (25 mm) and mirrored across the brain's
    mid-sagittal plane (the plane x = centre of the brain mask's left-right extent, in LPS
    physical coordinates). The background VOI is that mirrored region, inside the brain
    mask, in the hemisphere opposite the tumour, minus the tumour dilated by
    ``background_exclusion_mm`` (20 mm). It is a large VOI that includes grey and white
    matter (as the guideline's crescent VOI in the contralateral hemisphere, Unterrainer et
    al. 2016). The background is the **mean** uptake of that VOI. When it is smaller than
    ``background_min_ml`` the whole contralateral hemisphere (minus the exclusion) is used
    and a note says so. The mid-plane assumes the head is roughly aligned with the patient
    axes (after PET-to-MR registration); fitting a tilted mid-sagittal plane is future work.

Measurements
    TBRmax = max uptake in the search region / background; TBRmean = mean uptake of the BTV /
    background; SUVmax, SUVmean (of the BTV), SUVpeak (PERCIST: the highest mean within a
    1 cm³ sphere — radius 6.2 mm, voxel centres within the radius — whose centre lies in the
    search region). BTV = voxels of the search region (CTV, else the tumour dilated by
    ``ctv_margin_mm``, else the brain mask; always within the brain) with uptake >= threshold x
    background, less the connected components that :func:`rgcds.analysis.btv.select_btv`
    explains as not tumour (too small, far from the cavity or residual enhancement, the
    surgical margin alone, normal grey matter, the brain mask's edge). Thresholds are tracer
    specific (:class:`PetSettings`). Without SUV calibration the uptake values are
    "arbitrary units" and only ratios are reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import structlog
from numpy.typing import NDArray

from rgcds.analysis.btv import BtvComponent, distance_mm, select_btv
from rgcds.analysis.pet_registration import (
    RegistrationQuality,
    normalised_mutual_information,
    register_pet_to_mr,
    registration_quality,
)
from rgcds.analysis.pet_voi import (
    PEAK_RADIUS_MM,
    BackgroundVoi,
    _hotspot_region,
    _mask_array,
    _onto_pet,
    contralateral_background,
    peak_mean,
    pet_head_mask,
)
from rgcds.exceptions import GeometryError
from rgcds.imaging.resample import GridGeometry, resample_onto
from rgcds.settings.pet import PetSettings
from rgcds.study.enums import PetTracer
from rgcds.study.suv import SuvResult

logger = structlog.get_logger(__name__)

#: Units label when the PET is not SUV calibrated.
ARBITRARY_UNITS = "arbitrary units (not SUV calibrated; ratios only)"


# --- errors and results -------------------------------------------------------------------


class PetGeometryError(GeometryError):
    """The PET volume cannot be analysed: a single slice or a broken grid."""


@dataclass(frozen=True)
class PetMeasurements:
    """Amino-acid PET measurements of one study.

    Attributes
    ----------
    tracer
        The tracer analysed.
    units
        ``SUVbw`` or :data:`ARBITRARY_UNITS`.
    suv_available
        Whether the PET was SUV calibrated; ``suv_reason`` says how, or why not.
    suv_reason
        From :class:`~rgcds.study.suv.SuvResult` (or a sentence when none was given).
    threshold_tbr
        The BTV threshold (ratio to background).
    background_method
        A sentence describing the background VOI actually used.
    background_mean
        Mean uptake of the background VOI (SUV or arbitrary units).
    background_ml
        Volume of the background VOI.
    tbr_max, tbr_mean, tbr_peak
        Max in the search region, BTV mean, SUVpeak-sphere mean, each over the background.
        ``tbr_mean`` is ``None`` when the BTV is empty.
    suv_max, suv_mean, suv_peak
        In SUVbw; ``None`` when the PET is not SUV calibrated.
    btv_ml
        Biological tumour volume (on the PET grid), after the plausibility rules.
    btv_candidate_ml
        Every supra-threshold voxel of the search region (the guideline's BTV before the
        rules).
    btv_excluded
        The supra-threshold components the rules left out, with the rule.
    search_region
        ``CTV``, ``tumour + margin`` or ``brain``.
    btv_pet
        BTV mask (uint8) on the PET grid.
    btv_mr
        BTV mask (uint8) on the MR grid (nearest neighbour), or ``None`` when there is no
        passed registration / MR grid.
    registration
        The registration quality, when a registration was given.
    notes
        Sentences for the report (fallbacks, caveats).
    """

    tracer: PetTracer
    units: str
    suv_available: bool
    suv_reason: str
    threshold_tbr: float
    background_method: str
    background_mean: float
    background_ml: float
    tbr_max: float
    tbr_mean: float | None
    tbr_peak: float
    suv_max: float | None
    suv_mean: float | None
    suv_peak: float | None
    btv_ml: float
    search_region: str
    btv_pet: sitk.Image = field(repr=False)
    btv_mr: sitk.Image | None = field(repr=False)
    registration: RegistrationQuality | None
    notes: tuple[str, ...]
    btv_candidate_ml: float = 0.0
    btv_excluded: tuple[BtvComponent, ...] = ()


@dataclass(frozen=True)
class PetNotAnalysed:
    """The PET was not analysed (FDG, unknown tracer, no usable background)."""

    tracer: PetTracer
    reason: str


# --- helpers ------------------------------------------------------------------------------


def check_pet_geometry(pet: sitk.Image) -> None:
    """Raise :class:`PetGeometryError` unless ``pet`` is a usable 3D grid.

    Raises
    ------
    PetGeometryError
        One slice, non-positive or non-finite spacing, a non-orthonormal direction, or no
        finite uptake.
    """
    if pet.GetDimension() != 3:
        raise PetGeometryError(
            f"The PET image is {pet.GetDimension()}D; a 3D volume is needed — send the whole "
            "PET series."
        )
    size = pet.GetSize()
    if min(size) < 2:
        raise PetGeometryError(
            f"The PET volume has size {tuple(size)} (a single slice or row); TBR, BTV and "
            "SUVpeak need a 3D volume — send the complete PET series."
        )
    spacing = np.asarray(pet.GetSpacing(), dtype=np.float64)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise PetGeometryError(
            f"The PET spacing {tuple(spacing)} is not positive; the series geometry is broken."
        )
    direction = np.asarray(pet.GetDirection(), dtype=np.float64).reshape(3, 3)
    if not np.allclose(direction @ direction.T, np.eye(3), atol=1e-4):
        raise PetGeometryError(
            "The PET direction cosines are not orthonormal; the series geometry is broken."
        )


# --- analysis -----------------------------------------------------------------------------


def analyse_pet(
    pet: sitk.Image,
    *,
    tracer: PetTracer,
    suv: SuvResult | None,
    brain_mask: sitk.Image | None,
    tumour_mask: sitk.Image | None = None,
    ctv: sitk.Image | None = None,
    transform: sitk.Transform | None = None,
    registration: RegistrationQuality | None = None,
    settings: PetSettings | None = None,
    cavity_mask: sitk.Image | None = None,
    grey_matter: sitk.Image | None = None,
) -> PetMeasurements | PetNotAnalysed:
    """Measure TBR, SUV and the BTV of an amino-acid PET.

    Parameters
    ----------
    pet
        The PET volume (SUVbw, or uncalibrated values when ``suv`` says so).
    tracer
        From :func:`rgcds.study.classify.identify_tracer`.
    suv
        How the PET was scaled (``Volume.pet``); ``None`` or no factor: ratios only.
    brain_mask, tumour_mask, ctv
        Masks on the MR grid (or on the PET grid when ``transform`` is ``None`` and the
        geometry matches). ``tumour_mask`` is e.g. resection cavity + residual enhancement or
        ET + NCR. ``brain_mask`` ``None``: an approximate mask from the PET is used.
    transform
        Maps MR points to PET points (``RegistrationResult.transform`` with the MR fixed);
        ``None`` when PET and masks share one frame of reference.
    registration
        Quality of that registration; when it failed the MR masks are not used.
    settings
        Thresholds, background geometry and the BTV's plausibility rules.
    cavity_mask, grey_matter
        The resection cavity and a grey-matter prior (masks, same grid as the others), for
        the BTV's rules: with a non-empty cavity (post-operative) the distance and
        surgical-margin rules apply, with a grey-matter prior the grey-matter rule;
        ``None``: that rule is not applied.

    Returns
    -------
    PetMeasurements or PetNotAnalysed
        ``PetNotAnalysed`` for FDG, unknown tracers or tracers without a threshold.

    Raises
    ------
    PetGeometryError
        If the PET is a single slice or its grid is broken.
    """
    s = settings or PetSettings()
    if tracer is PetTracer.FDG:
        return PetNotAnalysed(
            tracer,
            "FDG PET is not analysed: normal grey matter takes up FDG avidly, so the amino-acid "
            "TBR/BTV method of the EANM/EANO/RANO/SNMMI guideline does not apply.",
        )
    threshold = s.tbr_thresholds.get(tracer.value)
    if threshold is None:
        return PetNotAnalysed(
            tracer,
            f"The PET tracer ({tracer.value}) is not a configured amino-acid tracer "
            f"({', '.join(sorted(s.tbr_thresholds))}); no BTV threshold applies.",
        )
    check_pet_geometry(pet)
    notes: list[str] = []
    values = np.asarray(sitk.GetArrayFromImage(sitk.Cast(pet, sitk.sitkFloat32)), np.float64)
    spacing = tuple(float(v) for v in reversed(pet.GetSpacing()))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if not np.isfinite(values).all():
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        notes.append("Non-finite PET values were set to 0.")

    use_mr = registration is None or registration.passed
    if registration is not None and not registration.passed:
        notes.append(registration.note)
    inverse = transform.GetInverse() if transform is not None else None

    def onto(mask: sitk.Image | None) -> NDArray[np.bool_] | None:
        if mask is None or not use_mr:
            return None
        return _onto_pet(mask, pet, inverse)

    brain = onto(brain_mask)
    if brain is None or not brain.any():
        brain = _mask_array(pet_head_mask(pet))
        notes.append("The brain mask was estimated from the PET alone (approximate).")
    tumour = onto(tumour_mask)
    tumour_from_mr = tumour is not None and bool(tumour.any())
    cavity = onto(cavity_mask)
    grey = onto(grey_matter)
    ctv_pet = onto(ctv)
    if ctv_pet is not None and ctv_pet.any():
        search = ctv_pet & brain
        search_name = "CTV"
    elif tumour is not None and tumour.any():
        search = (distance_mm(tumour, spacing) <= s.ctv_margin_mm) & brain
        search_name = "tumour + margin"
    else:
        search = brain.copy()
        search_name = "brain"
    if not search.any():
        search = brain.copy()
        search_name = "brain"
        notes.append("The search region does not overlap the brain on the PET; the brain is used.")
    if tumour is None or not tumour.any():
        tumour = _hotspot_region(values, search, spacing)
        notes.append(
            "No tumour mask on the PET grid: the background mirrors a 15 mm ball around the "
            "hottest voxel."
        )

    try:
        voi = contralateral_background(pet, brain, tumour, s)
    except ValueError as exc:
        return PetNotAnalysed(tracer, f"No contralateral background could be defined: {exc}")
    background = float(values[voi.mask].mean())
    if not background > 0:
        return PetNotAnalysed(
            tracer, "The background uptake is not positive; TBR cannot be computed."
        )

    selection = select_btv(
        search & (values >= threshold * background),
        values / background,
        spacing,
        threshold,
        # The distance rule is post-operative: before surgery amino-acid uptake reaches beyond
        # the enhancing tumour into the non-enhancing part, which the MR mask may not hold.
        tumour=tumour if tumour_from_mr and cavity is not None and cavity.any() else None,
        cavity=cavity,
        grey_matter=grey,
        brain=brain,
        settings=s,
    )
    btv = selection.mask
    excluded_note = selection.note()
    if excluded_note is not None:
        notes.append(excluded_note)
    max_value = float(values[search].max())
    peak, _ = peak_mean(values, search, spacing)
    mean_value = float(values[btv].mean()) if btv.any() else None
    calibrated = suv is not None and suv.is_suv
    if not calibrated:
        notes.append(
            "The PET is not SUV calibrated ("
            + (suv.reason if suv is not None else "no calibration information")
            + "); uptake is in arbitrary units and only ratios are reported."
        )
    btv_image = sitk.GetImageFromArray(btv.astype(np.uint8))
    btv_image.CopyInformation(pet)
    btv_mr: sitk.Image | None = None
    if use_mr and brain_mask is not None:
        btv_mr = resample_onto(
            btv_image, GridGeometry.of(brain_mask), transform=transform, label=True
        )
    result = PetMeasurements(
        tracer=tracer,
        units="SUVbw" if calibrated else ARBITRARY_UNITS,
        suv_available=calibrated,
        suv_reason=suv.reason if suv is not None else "No SUV information was given.",
        threshold_tbr=threshold,
        background_method=voi.description,
        background_mean=background,
        background_ml=float(voi.mask.sum()) * voxel_ml,
        tbr_max=max_value / background,
        tbr_mean=None if mean_value is None else mean_value / background,
        tbr_peak=peak / background,
        suv_max=max_value if calibrated else None,
        suv_mean=mean_value if calibrated else None,
        suv_peak=peak if calibrated else None,
        btv_ml=float(btv.sum()) * voxel_ml,
        search_region=search_name,
        btv_pet=btv_image,
        btv_mr=btv_mr,
        registration=registration,
        notes=tuple(notes),
        btv_candidate_ml=selection.candidate_ml,
        btv_excluded=selection.excluded,
    )
    logger.info(
        "pet analysed",
        tracer=tracer.value,
        units="SUVbw" if calibrated else "au",
        tbr_max=round(result.tbr_max, 3),
        btv_ml=round(result.btv_ml, 2),
        btv_candidate_ml=round(selection.candidate_ml, 2),
        btv_components_excluded=len(selection.excluded),
        search=search_name,
        registration_passed=None if registration is None else registration.passed,
    )
    return result


def thresholds_for(settings: PetSettings) -> Mapping[PetTracer, float]:
    """The configured TBR thresholds keyed by :class:`PetTracer`."""
    return {PetTracer(k): v for k, v in settings.tbr_thresholds.items()}


__all__ = [
    "ARBITRARY_UNITS",
    "PEAK_RADIUS_MM",
    "BackgroundVoi",
    "PetGeometryError",
    "PetMeasurements",
    "PetNotAnalysed",
    "PetSettings",
    "RegistrationQuality",
    "analyse_pet",
    "check_pet_geometry",
    "contralateral_background",
    "normalised_mutual_information",
    "peak_mean",
    "pet_head_mask",
    "register_pet_to_mr",
    "registration_quality",
    "thresholds_for",
]
