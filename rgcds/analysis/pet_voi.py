# SimpleITK ships no type hints: its calls are untyped and return Any.
"""The PET-grid masks, the contralateral background VOI and the SUVpeak sphere.

Split from :mod:`rgcds.analysis.pet` (see its docstring for the method), which re-exports
these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray
from scipy import ndimage

from rgcds.analysis.btv import distance_mm
from rgcds.imaging.resample import GridGeometry, resample_onto
from rgcds.settings.pet import PetSettings

#: Volume of the PERCIST SUVpeak sphere (ml) and its radius (mm).
PEAK_VOLUME_ML = 1.0
PEAK_RADIUS_MM = (3.0 * 1000.0 * PEAK_VOLUME_ML / (4.0 * math.pi)) ** (1.0 / 3.0)


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
    x_mm = pet.GetOrigin()[0] + k[:, None, None] + j[None, :, None] + i[None, None, :]
    result: NDArray[np.float64] = x_mm
    return result


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
    result: sitk.Image = sitk.Cast(distance >= 8.0, sitk.sitkUInt8)
    return result


__all__ = [
    "PEAK_RADIUS_MM",
    "PEAK_VOLUME_ML",
    "BackgroundVoi",
    "contralateral_background",
    "peak_mean",
    "pet_head_mask",
]
