# (SimpleITK ships no type information.)
"""The anatomy the phantom is built on, on simulation grids derived from the template.

The template (MNI ICBM152 2009a, from the ``nilearn`` wheel) and its loader live in
:mod:`rgcds.templates`, which production brain extraction uses too; the names this module used
to define there (``Grid``, ``template_t1``, ``template_brain_mask``, ...) are re-exported.
Coordinates are DICOM/ITK patient coordinates (LPS), identity direction, arrays ``(z, y, x)``.

The nilearn template is skull-stripped; the head around the brain (scalp, skull, marrow, fat,
muscle, globes and lenses, sinuses, dura, venous sinuses, upper neck) comes from the full-head
T1 and T2 of the same template (:mod:`rgcds.phantom._head`). Each subject's anatomy is then
deformed (:mod:`rgcds.phantom._variation`), so no two subjects share the template's shape.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from rgcds.phantom._head import HEAD_CLASSES, head_tissues
from rgcds.templates import (
    BoolArray,
    FloatArray,
    Grid,
    _mask_from_tissue,
    _template_array,
    fill_holes,
    signed_distance,
)

#: Padding (mm) added around the template box.
_PAD_MM = 20
#: Extra padding (mm) below the template box, filled by extruding its lowest slice: the neck
#: down to where a 3D sagittal acquisition's field of view ends.
_NECK_MM = 40

#: Simulation grid spacing (mm) per size.
SIZE_SPACING_MM: dict[str, int] = {"small": 2, "full": 1}


@dataclass(frozen=True, eq=False)
class Anatomy:
    """Normal anatomy on a simulation grid: tissue fractions that sum to at most one.

    Attributes
    ----------
    grid : Grid
        The simulation grid.
    gm, wm, csf : numpy.ndarray
        Brain tissue volume fractions (float32, ``(z, y, x)``); ``csf`` includes the
        subarachnoid space outside the hull.
    dura, vessel, bone, marrow, fat, eye, lens, soft : numpy.ndarray
        The head's other tissues (:data:`rgcds.phantom._head.HEAD_CLASSES`); the remainder of
        each voxel is air.
    brain_mask : numpy.ndarray
        Brain mask (GM + WM + ventricles and enclosed CSF), boolean.
    hull_distance : numpy.ndarray
        Signed distance (mm) to the smoothed brain hull, negative inside.
    head_mask : numpy.ndarray
        Everything inside the skin, boolean.
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
    dura: FloatArray
    vessel: FloatArray
    marrow: FloatArray
    eye: FloatArray
    lens: FloatArray
    head_mask: BoolArray

    def head_tissues(self) -> dict[str, FloatArray]:
        """The non-brain tissue fractions by class name."""
        return {name: getattr(self, name) for name in HEAD_CLASSES}


def _block_mean(array: FloatArray, factor: int) -> FloatArray:
    if factor == 1:
        return array
    nz, ny, nx = array.shape
    view = array.reshape(nz // factor, factor, ny // factor, factor, nx // factor, factor)
    return np.asarray(view.mean(axis=(1, 3, 5)), dtype=np.float32)


@functools.lru_cache(maxsize=2)
def anatomy(size: str) -> Anatomy:
    """Return the template's full-head anatomy on the simulation grid of ``size`` (cached).

    Parameters
    ----------
    size : {"small", "full"}
        ``"small"``: 2 mm grid; ``"full"``: 1 mm grid.

    Returns
    -------
    Anatomy
        Tissue fractions of the template brain and head (undeformed: each subject's anatomy
        is :func:`rgcds.phantom._variation.subject_anatomy`).
    """
    factor = SIZE_SPACING_MM[size]
    gm1, origin = _template_array("gm")
    wm1, _ = _template_array("wm")
    head1, head_mask1, hull1 = head_tissues()
    pad = _PAD_MM
    neck = _NECK_MM
    shape = np.array(gm1.shape) + 2 * pad + np.array([neck, 0, 0])
    shape = ((shape + factor - 1) // factor) * factor
    extra = shape - np.array(gm1.shape) - 2 * pad - np.array([neck, 0, 0])
    below = pad + neck

    def padded(a: FloatArray) -> FloatArray:
        # The neck: the lowest template slice extruded downwards; the rest of the pad is air.
        a = np.clip(a, 0.0, 1.0).astype(np.float32)
        a = np.concatenate([np.repeat(a[:1], neck, axis=0), a], axis=0)
        widths = [(pad, pad + int(extra[0])), (pad, pad + int(extra[1])),
                  (pad, pad + int(extra[2]))]
        return _block_mean(np.pad(a, widths), factor)

    gm = padded(gm1)
    wm = padded(wm1)
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    spacing = float(factor)
    hull_f = np.asarray(hull1, dtype=np.float32)
    hull_f[0] = 0.0  # the brain ends at the template's lowest slice; below it is the cord
    hull = padded(hull_f) > 0.5
    mask = _mask_from_tissue(gm + wm, spacing) & hull
    hull_c = fill_holes(hull | mask)
    csf_in = np.where(hull_c, np.clip(1.0 - gm - wm, 0.0, 1.0), 0.0)
    tissues = {name: padded(head1[name]) for name in HEAD_CLASSES}
    csf_out = padded(head1["csf_shell"])
    # The cord and its CSF below the brain: the extruded brain fractions outside the hull.
    cord = np.where(hull_c, 0.0, gm + wm)
    cord_csf = np.where(hull_c, 0.0, np.clip(padded(np.where(hull1, 1.0, 0.0).astype(
        np.float32)) - gm - wm, 0.0, 1.0))
    outside = np.clip(1.0 - np.where(hull_c, 1.0, cord + cord_csf), 0.0, 1.0)
    for name in tissues:
        tissues[name] = np.asarray(tissues[name] * outside, dtype=np.float32)
    csf = np.asarray(csf_in + csf_out * outside + cord_csf, dtype=np.float32)
    head_mask = padded(np.asarray(head_mask1, dtype=np.float32)) > 0.5
    grid_origin = (
        origin[0] - pad + (factor - 1) / 2,
        origin[1] - pad + (factor - 1) / 2,
        origin[2] - below + (factor - 1) / 2,
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
        csf=csf,
        bone=tissues["bone"],
        fat=tissues["fat"],
        soft=tissues["soft"],
        brain_mask=mask,
        hull_distance=signed_distance(hull_c, spacing),
        dura=tissues["dura"],
        vessel=tissues["vessel"],
        marrow=tissues["marrow"],
        eye=tissues["eye"],
        lens=tissues["lens"],
        head_mask=head_mask,
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
