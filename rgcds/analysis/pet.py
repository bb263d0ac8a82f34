# SimpleITK ships no type hints: its calls are untyped and return Any.
# mypy: disallow-untyped-calls=False, warn-return-any=False
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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import structlog
from numpy.typing import NDArray
from scipy import ndimage

from rgcds.analysis.btv import BtvComponent, distance_mm, select_btv
from rgcds.exceptions import GeometryError
from rgcds.imaging.registration import RegistrationResult, register_rigid
from rgcds.imaging.resample import GridGeometry, resample_onto
from rgcds.settings.pet import PetSettings
from rgcds.study.enums import PetTracer
from rgcds.study.suv import SuvResult

logger = structlog.get_logger(__name__)

#: Volume of the PERCIST SUVpeak sphere (ml) and its radius (mm).
PEAK_VOLUME_ML = 1.0
PEAK_RADIUS_MM = (3.0 * 1000.0 * PEAK_VOLUME_ML / (4.0 * math.pi)) ** (1.0 / 3.0)
#: Histogram bins of the normalised mutual information.
NMI_BINS = 32
#: NMI is computed on the brain dilated by this margin (brain, skull and scalp edges).
NMI_HEAD_MARGIN_MM = 15.0
#: Units label when the PET is not SUV calibrated.
ARBITRARY_UNITS = "arbitrary units (not SUV calibrated; ratios only)"


# --- errors and results -------------------------------------------------------------------


class PetGeometryError(GeometryError):
    """The PET volume cannot be analysed: a single slice or a broken grid."""


@dataclass(frozen=True)
class RegistrationQuality:
    """How well the PET was registered to the MR.

    Attributes
    ----------
    mattes_mi
        Final Mattes mutual information metric of the optimiser (negative; lower is better).
    nmi
        Normalised mutual information (H(A) + H(B)) / H(A, B) of MR and resampled PET on
        the brain dilated by 15 mm (brain, skull and scalp edges), 32 bins (1: independent,
        2: identical).
    threshold
        The NMI threshold used.
    passed
        ``nmi >= threshold``.
    note
        A sentence for the report.
    """

    mattes_mi: float
    nmi: float
    threshold: float
    passed: bool
    note: str


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


def _mask_array(image: sitk.Image) -> NDArray[np.bool_]:
    return np.asarray(sitk.GetArrayFromImage(image)) > 0


def _onto_pet(
    mask: sitk.Image, pet: sitk.Image, transform_pet_to_mask: sitk.Transform | None
) -> NDArray[np.bool_]:
    grid = GridGeometry.of(pet)
    if transform_pet_to_mask is None and GridGeometry.of(mask) == grid:
        return _mask_array(mask)
    binary = sitk.Cast(mask > 0, sitk.sitkUInt8)
    return _mask_array(resample_onto(binary, grid, transform=transform_pet_to_mask, label=True))


def _physical_x(pet: sitk.Image) -> NDArray[np.float64]:
    """LPS x (right-to-left) of every voxel centre, as a (z, y, x) array."""
    size = pet.GetSize()
    d = np.asarray(pet.GetDirection(), dtype=np.float64).reshape(3, 3)
    sp = pet.GetSpacing()
    i = np.arange(size[0]) * d[0, 0] * sp[0]
    j = np.arange(size[1]) * d[0, 1] * sp[1]
    k = np.arange(size[2]) * d[0, 2] * sp[2]
    return pet.GetOrigin()[0] + k[:, None, None] + j[None, :, None] + i[None, None, :]


def _mirror(mask: NDArray[np.bool_], pet: sitk.Image, x_mid: float) -> NDArray[np.bool_]:
    """Mirror ``mask`` across the plane LPS x = ``x_mid`` (nearest neighbour)."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(pet)
    mirror = sitk.AffineTransform(3)
    mirror.SetMatrix((-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    mirror.SetTranslation((2.0 * x_mid, 0.0, 0.0))
    out = sitk.Resample(image, image, mirror, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return _mask_array(out)


@dataclass(frozen=True)
class BackgroundVoi:
    """The background VOI on the PET grid.

    Attributes
    ----------
    mask
        Boolean (z, y, x) array on the PET grid.
    midline_x_mm
        The LPS x of the mirror plane.
    tumour_side
        ``"left"`` or ``"right"`` (patient side of the tumour; LPS +x is left).
    description
        A sentence for the report.
    """

    mask: NDArray[np.bool_] = field(repr=False)
    midline_x_mm: float
    tumour_side: str
    description: str


def contralateral_background(
    pet: sitk.Image,
    brain: NDArray[np.bool_],
    tumour: NDArray[np.bool_],
    settings: PetSettings | None = None,
) -> BackgroundVoi:
    """Build the contralateral mirrored background VOI (see the module docstring).

    Parameters
    ----------
    pet
        The PET image (its grid).
    brain, tumour
        Boolean (z, y, x) masks on the PET grid; ``tumour`` must not be empty.
    settings
        Radius, exclusion margin and minimum volume.

    Returns
    -------
    BackgroundVoi

    Raises
    ------
    ValueError
        If the brain or tumour mask is empty, or the contralateral hemisphere is.
    """
    s = settings or PetSettings()
    if not brain.any() or not tumour.any():
        raise ValueError("The brain and tumour masks must not be empty.")
    spacing = tuple(reversed(pet.GetSpacing()))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    x = _physical_x(pet)
    xb = x[brain]
    x_mid = 0.5 * (float(xb.min()) + float(xb.max()))
    tumour_x = float(x[tumour].mean())
    tumour_side = "left" if tumour_x > x_mid else "right"
    contralateral = brain & ((x < x_mid) if tumour_side == "left" else (x > x_mid))
    distance = distance_mm(tumour, spacing)
    region = distance <= s.background_radius_mm
    excluded = distance <= s.background_exclusion_mm
    voi = _mirror(region, pet, x_mid) & contralateral & ~excluded
    if voi.sum() * voxel_ml >= s.background_min_ml:
        description = (
            f"mean of a contralateral VOI: the tumour region dilated by "
            f"{s.background_radius_mm:g} mm mirrored across the brain mid-plane, within the "
            f"brain, excluding tumour + {s.background_exclusion_mm:g} mm "
            f"({voi.sum() * voxel_ml:.1f} ml, grey and white matter)"
        )
    else:
        voi = contralateral & ~excluded
        if not voi.any():
            raise ValueError("The contralateral hemisphere of the brain mask is empty.")
        description = (
            "mean of the whole contralateral hemisphere excluding tumour + "
            f"{s.background_exclusion_mm:g} mm (the mirrored VOI was smaller than "
            f"{s.background_min_ml:g} ml)"
        )
    return BackgroundVoi(voi, x_mid, tumour_side, description)


def _ball(radius_mm: float, spacing_zyx: tuple[float, ...]) -> NDArray[np.bool_]:
    half = [math.floor(radius_mm / s) for s in spacing_zyx]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    r2 = sum((g * s) ** 2 for g, s in zip(grids, spacing_zyx, strict=True))
    return np.asarray(r2 <= radius_mm**2 + 1e-9)


def peak_mean(
    values: NDArray[np.floating], centres: NDArray[np.bool_], spacing_zyx: tuple[float, ...]
) -> tuple[float, tuple[int, int, int]]:
    """The highest mean of ``values`` within a 1 cm³ sphere centred on a voxel of ``centres``.

    Parameters
    ----------
    values
        (z, y, x) uptake.
    centres
        Allowed sphere centres (non-empty).
    spacing_zyx
        Voxel spacing in mm, array order.

    Returns
    -------
    tuple
        The peak mean and the (z, y, x) index of its centre. The sphere is the voxels whose
        centres lie within :data:`PEAK_RADIUS_MM` (6.2 mm); outside the image counts as 0.
    """
    ball = _ball(PEAK_RADIUS_MM, spacing_zyx)
    half = [b // 2 for b in ball.shape]
    idx = np.argwhere(centres)
    lo = np.maximum(idx.min(axis=0) - half, 0)
    hi = np.minimum(idx.max(axis=0) + np.asarray(half) + 1, values.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    kernel = ball.astype(np.float64) / ball.sum()
    means = ndimage.correlate(values[box].astype(np.float64), kernel, mode="constant", cval=0.0)
    means[~centres[box]] = -np.inf
    flat = int(np.argmax(means))
    local = np.unravel_index(flat, means.shape)
    where = tuple(int(a + int(b)) for a, b in zip(local, lo, strict=True))
    return float(means[local]), (where[0], where[1], where[2])


def _hotspot_region(
    values: NDArray[np.floating], brain: NDArray[np.bool_], spacing: tuple[float, ...]
) -> NDArray[np.bool_]:
    smooth = ndimage.gaussian_filter(values.astype(np.float32), 1.0)
    smooth[~brain] = -np.inf
    peak = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    seed = np.zeros(values.shape, dtype=bool)
    seed[peak] = True
    return distance_mm(seed, spacing) <= 15.0


def pet_head_mask(pet: sitk.Image) -> sitk.Image:
    """An approximate brain mask from the PET alone (when no MR mask can be used).

    Otsu threshold of the smoothed PET, largest component, holes filled, eroded by 8 mm to
    remove most of the scalp. Approximate: used only when the registration failed.
    """
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(pet, sitk.sitkFloat32), 3.0)
    head = sitk.OtsuThreshold(smooth, 0, 1)
    head = sitk.RelabelComponent(sitk.ConnectedComponent(head), sortByObjectSize=True) == 1
    head = sitk.BinaryFillhole(head)
    distance = sitk.SignedMaurerDistanceMap(
        head, insideIsPositive=True, squaredDistance=False, useImageSpacing=True
    )
    return sitk.Cast(distance >= 8.0, sitk.sitkUInt8)


# --- registration quality -----------------------------------------------------------------


def normalised_mutual_information(
    a: NDArray[np.floating], b: NDArray[np.floating], bins: int = NMI_BINS
) -> float:
    """(H(A) + H(B)) / H(A, B) of two samples (1: independent, 2: identical up to binning)."""
    if a.size < 2:
        return 1.0
    joint, _, _ = np.histogram2d(a.ravel(), b.ravel(), bins=bins)
    p = joint / joint.sum()
    pa, pb = p.sum(axis=1), p.sum(axis=0)

    def entropy(q: NDArray[np.float64]) -> float:
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    h_joint = entropy(p)
    return (entropy(pa) + entropy(pb)) / h_joint if h_joint > 0 else 1.0


def registration_quality(
    mr: sitk.Image,
    pet: sitk.Image,
    result: RegistrationResult,
    brain_mask: sitk.Image | None = None,
    *,
    threshold: float | None = None,
) -> RegistrationQuality:
    """Score a PET-to-MR rigid registration.

    Parameters
    ----------
    mr
        The fixed MR image.
    pet
        The moving PET image.
    result
        From :func:`rgcds.imaging.register_rigid` (fixed MR, moving PET).
    brain_mask
        Brain mask on the MR grid; NMI is computed on it dilated by 15 mm (on all overlapping
        voxels when ``None``, where the threshold does not apply as calibrated).
    threshold
        NMI pass threshold (default :attr:`PetSettings.nmi_threshold`, 1.05). Calibrated on
        phantom T1 vs [11C]MET PET (2 mm MR grid, 2.5 mm PET, 8 seeds): a correct
        registration scores 1.10-1.13, a 3 mm shift 1.06-1.08, 5 mm 1.04-1.06, 5 degrees
        1.06-1.08, 10 mm 1.02-1.03, 15 mm + 10 degrees 1.01-1.02 — so misregistrations of
        about 5 mm or more fail. A heuristic, not a clinical validation: recalibrate on
        local data.

    Returns
    -------
    RegistrationQuality
    """
    limit = PetSettings().nmi_threshold if threshold is None else threshold
    grid = GridGeometry.of(mr)
    moved = resample_onto(pet, grid, transform=result.transform, default=float("nan"))
    a = np.asarray(sitk.GetArrayFromImage(sitk.Cast(mr, sitk.sitkFloat32)))
    b = np.asarray(sitk.GetArrayFromImage(moved))
    keep = np.isfinite(b)
    if brain_mask is not None:
        distance = sitk.SignedMaurerDistanceMap(
            sitk.Cast(brain_mask > 0, sitk.sitkUInt8),
            insideIsPositive=False,
            squaredDistance=False,
            useImageSpacing=True,
        )
        keep &= np.asarray(sitk.GetArrayFromImage(distance)) <= NMI_HEAD_MARGIN_MM
    nmi = normalised_mutual_information(a[keep], b[keep]) if keep.sum() > 100 else 1.0
    passed = nmi >= limit
    mi = float(result.metric_value)
    mi_text = f"; Mattes MI {mi:.3f}" if np.isfinite(mi) else ""
    note = (
        f"PET-to-MR registration passed (NMI {nmi:.3f} >= {limit:.2f}{mi_text})."
        if passed
        else f"PET-to-MR registration failed the quality check (NMI {nmi:.3f} < {limit:.2f}); "
        "the PET was analysed on its own grid only, without MR masks."
    )
    return RegistrationQuality(float(result.metric_value), float(nmi), limit, passed, note)


def register_pet_to_mr(
    mr: sitk.Image, pet: sitk.Image, brain_mask: sitk.Image | None = None
) -> tuple[RegistrationResult, RegistrationQuality]:
    """Rigidly register the PET (moving) to the MR (fixed) and score the result.

    Returns
    -------
    tuple
        The registration (its transform maps MR points to PET points) and its quality.
    """
    # No metric mask: the brain alone carries too little structure for MET (on the phantom
    # a brain-masked registration drifted by 20-30 mm; the whole head converges to < 0.5 mm).
    result = register_rigid(mr, pet, initializer="moments")
    return result, registration_quality(mr, pet, result, brain_mask)


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
