# mypy: disable-error-code="no-untyped-call"
# (SimpleITK ships no type information.)
"""The anatomy the phantom is built on, on simulation grids derived from the brain template.

The template (MNI ICBM152 2009a, from the ``nilearn`` wheel) and its loader live in
:mod:`rgcds.templates`, which production brain extraction uses too; the names this module used
to define there (``Grid``, ``template_t1``, ``template_brain_mask``, ...) are re-exported.
Coordinates are DICOM/ITK patient coordinates (LPS), identity direction, arrays ``(z, y, x)``.

The nilearn template is skull-stripped. For realistic MR images the phantom adds a simple
synthetic head around it (extra-cerebral CSF, inner and outer skull table, diploic marrow,
galea, subcutaneous fat and skin), built from the distance to a smoothed brain hull.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rgcds.templates import (
    BoolArray,
    FloatArray,
    Grid,
    _mask_from_tissue,
    _template_array,
    fill_holes,
    signed_distance,
)

#: Padding (mm) added around the template box so that the synthetic head fits.
_PAD_MM = 20

#: Synthetic head layers: (class, inner distance mm, outer distance mm) from the brain hull.
_HEAD_LAYERS: tuple[tuple[str, float, float], ...] = (
    ("csf", 0.0, 1.5),
    ("bone", 1.5, 3.0),
    ("fat", 3.0, 5.0),  # diploic marrow: fatty, behaves like fat on MR
    ("bone", 5.0, 6.5),
    ("soft", 6.5, 8.0),  # galea / temporalis muscle
    ("fat", 8.0, 11.0),
    ("soft", 11.0, 12.5),  # skin
)

#: Simulation grid spacing (mm) per size.
SIZE_SPACING_MM: dict[str, int] = {"small": 2, "full": 1}


@dataclass(frozen=True, eq=False)
class Anatomy:
    """Normal anatomy on a simulation grid: tissue fractions that sum to at most one.

    Attributes
    ----------
    grid : Grid
        The simulation grid.
    gm, wm, csf, bone, fat, soft : numpy.ndarray
        Tissue volume fractions (float32, ``(z, y, x)``); the remainder is air.
    brain_mask : numpy.ndarray
        Template brain mask (GM + WM + ventricles and enclosed CSF), boolean.
    hull_distance : numpy.ndarray
        Signed distance (mm) to the smoothed brain hull, negative inside.
    """

    grid: Grid
    gm: FloatArray
    wm: FloatArray
    csf: FloatArray
    bone: FloatArray
    fat: FloatArray
    soft: FloatArray
    brain_mask: BoolArray
    hull_distance: FloatArray


def _block_mean(array: FloatArray, factor: int) -> FloatArray:
    if factor == 1:
        return array
    nz, ny, nx = array.shape
    view = array.reshape(nz // factor, factor, ny // factor, factor, nx // factor, factor)
    return np.asarray(view.mean(axis=(1, 3, 5)), dtype=np.float32)


def _layer_fraction(distance: FloatArray, inner: float, outer: float, width: float) -> FloatArray:
    """Partial-volume fraction of the shell ``inner < d <= outer`` for a box voxel of ``width``."""
    lo = np.maximum(distance - width / 2, inner)
    hi = np.minimum(distance + width / 2, outer)
    return np.asarray(np.clip((hi - lo) / width, 0.0, 1.0), dtype=np.float32)


@functools.lru_cache(maxsize=2)
def anatomy(size: str) -> Anatomy:
    """Return the normal anatomy on the simulation grid of ``size`` (cached).

    Parameters
    ----------
    size : {"small", "full"}
        ``"small"``: 2 mm grid; ``"full"``: 1 mm grid.

    Returns
    -------
    Anatomy
        Tissue fractions of the template brain plus the synthetic head.
    """
    factor = SIZE_SPACING_MM[size]
    gm1, origin = _template_array("gm")
    wm1, _ = _template_array("wm")
    pad = _PAD_MM
    shape = np.array(gm1.shape) + 2 * pad
    shape = ((shape + factor - 1) // factor) * factor
    extra = shape - np.array(gm1.shape) - 2 * pad

    def padded(a: FloatArray) -> FloatArray:
        widths = [(pad, pad + int(e)) for e in extra]
        return _block_mean(np.pad(np.clip(a, 0.0, 1.0), widths), factor)

    gm = padded(gm1)
    wm = padded(wm1)
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    spacing = float(factor)
    mask = _mask_from_tissue(gm + wm, spacing)
    # Brain hull: smoothed mask; inside it everything that is not GM/WM is CSF.
    hull = ndimage.gaussian_filter(mask.astype(np.float32), sigma=3.0 / spacing) > 0.5
    hull_c = fill_holes(hull | mask)
    csf = np.asarray(np.where(hull_c, np.clip(1.0 - gm - wm, 0.0, 1.0), 0.0), dtype=np.float32)
    hull_distance = signed_distance(hull_c, spacing)
    # Maurer distances run between voxel centres; the hull surface lies half a voxel inside.
    shell_d = np.asarray(np.where(hull_c, -1.0, hull_distance - spacing / 2), dtype=np.float32)
    classes: dict[str, FloatArray] = {
        "csf": np.zeros_like(gm),
        "bone": np.zeros_like(gm),
        "fat": np.zeros_like(gm),
        "soft": np.zeros_like(gm),
    }
    for name, inner, outer in _HEAD_LAYERS:
        classes[name] += _layer_fraction(shell_d, inner, outer, spacing)
    outside = 1.0 - np.clip(gm + wm + csf, 0.0, 1.0)
    for name in classes:
        classes[name] *= outside
    # Neck: below the cerebellum the synthetic head is left open (soft tissue column).
    grid_origin = (
        origin[0] - pad + (factor - 1) / 2,
        origin[1] - pad + (factor - 1) / 2,
        origin[2] - pad + (factor - 1) / 2,
    )
    grid = Grid(
        (float(grid_origin[0]), float(grid_origin[1]), float(grid_origin[2])),
        spacing,
        (int(gm.shape[0]), int(gm.shape[1]), int(gm.shape[2])),
    )
    return Anatomy(
        grid=grid,
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        csf=np.asarray(csf + classes["csf"], dtype=np.float32),
        bone=classes["bone"],
        fat=classes["fat"],
        soft=classes["soft"],
        brain_mask=mask,
        hull_distance=hull_distance,
    )


__all__ = [
    "SIZE_SPACING_MM",
    "Anatomy",
    "BoolArray",
    "FloatArray",
    "Grid",
    "anatomy",
    "signed_distance",
]
