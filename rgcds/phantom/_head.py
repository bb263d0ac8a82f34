# (SimpleITK ships no type information.)
"""The tissues outside the brain: a label-driven full head from the full-head template.

The skull-stripped nilearn template gives grey and white matter; the full-head T1 and T2 of the
same template (MNI ICBM152 2009a, from the ``raidionicsrads`` wheel, same 1 mm grid) give where
the head is and what kind of tissue lies outside the brain. Each voxel outside the brain hull
gets volume fractions of:

``csf``     the subarachnoid space just outside the hull,
``dura``    a 1 mm layer outside it (enhances on T1c),
``vessel``  the superior sagittal and transverse sinuses (flow voids on T2, bright on T1c),
``bone``    cortical bone: dark on every MR sequence (template voxels dark on T1 and T2 near
            the brain),
``marrow``  diploic marrow inside skull at least 4 mm thick (fatty: bright on T1),
``fat``     subcutaneous and orbital fat (template voxels bright on T1),
``eye``     the vitreous of the globes (fluid: T2 bright, T1 dark),
``lens``    the lenses at the front of the globes,
``soft``    muscle, skin and the other soft tissues (the rest of the head),
``air``     the remainder: sinuses, mastoid air, airway and outside the head (implicit).

The template is a population average, so its tissue borders are blurred; the classes are
therefore drawn from smooth memberships, and per-subject variation comes from
:mod:`rgcds.phantom._variation`. Everything here is on the unpadded 1 mm template grid,
arrays ``(z, y, x)`` in LPS.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from rgcds.templates import (
    BoolArray,
    FloatArray,
    _mask_from_tissue,
    _template_array,
    fill_holes,
    signed_distance,
)

#: Non-brain tissue classes, in the order the renderers mix them.
HEAD_CLASSES: tuple[str, ...] = (
    "dura", "vessel", "bone", "marrow", "fat", "eye", "lens", "soft",
)  # fmt: skip

#: Globe geometry: vitreous radius and lens radii (mm, lateral, antero-posterior, vertical).
_GLOBE_RADIUS_MM = 11.5
_LENS_RADII_MM = (4.5, 2.0, 4.5)
#: Search box for each globe centre (LPS mm): |x|, y, z ranges.
_GLOBE_SEARCH = ((22.0, 50.0), (-85.0, -40.0), (-55.0, -20.0))


def _smooth_step(x: FloatArray, lo: float, hi: float) -> FloatArray:
    """0 below ``lo``, 1 above ``hi``, a smooth ramp between."""
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t), dtype=np.float32)


def _shell(distance: FloatArray, inner: float, outer: float) -> FloatArray:
    """Partial-volume fraction of the shell ``inner < d <= outer`` for a 1 mm voxel."""
    lo = np.maximum(distance - 0.5, inner)
    hi = np.minimum(distance + 0.5, outer)
    return np.asarray(np.clip(hi - lo, 0.0, 1.0), dtype=np.float32)


def _axes(shape: tuple[int, ...], origin: tuple[float, float, float]) -> tuple[FloatArray, ...]:
    nz, ny, nx = shape
    z = (origin[2] + np.arange(nz, dtype=np.float32)).reshape(nz, 1, 1)
    y = (origin[1] + np.arange(ny, dtype=np.float32)).reshape(1, ny, 1)
    x = (origin[0] + np.arange(nx, dtype=np.float32)).reshape(1, 1, nx)
    return z, y, x


def _globe_centres(
    t1: FloatArray, t2: FloatArray, origin: tuple[float, float, float]
) -> list[tuple[float, float, float]]:
    """Centres (LPS mm, x y z) of the two globes: the most fluid-like spot in each orbit."""
    score = ndimage.gaussian_filter(t2, 3.0) - 0.6 * ndimage.gaussian_filter(t1, 3.0)
    z, y, x = _axes(t1.shape, origin)
    (ax0, ax1), (y0, y1), (z0, z1) = _GLOBE_SEARCH
    centres = []
    for side in (-1.0, 1.0):
        region = (side * x >= ax0) & (side * x <= ax1) & (y >= y0) & (y <= y1)
        region = region & (z >= z0) & (z <= z1)
        masked = np.where(region, score, -np.inf)
        k, j, i = np.unravel_index(int(np.argmax(masked)), masked.shape)
        centres.append((float(x[0, 0, i]), float(y[0, j, 0]), float(z[k, 0, 0])))
    return centres


def _ellipsoid(
    axes: tuple[FloatArray, ...], centre: tuple[float, float, float],
    radii: tuple[float, float, float],
) -> FloatArray:
    """Soft (1 mm ramp) indicator of an axis-aligned ellipsoid."""
    z, y, x = axes
    r = np.sqrt(((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
                + ((z - centre[2]) / radii[2]) ** 2)
    edge = (1.0 - r) * min(radii) + 0.5
    return np.asarray(np.clip(edge, 0.0, 1.0), dtype=np.float32)


@functools.lru_cache(maxsize=1)
def head_tissues() -> tuple[dict[str, FloatArray], BoolArray, BoolArray]:
    """Return the non-brain tissue fractions, the head mask and the brain hull (1 mm, cached).

    Returns
    -------
    tuple
        ``(fractions, head, hull)``: fractions per :data:`HEAD_CLASSES` (float32, zero
        inside the hull), the head mask (everything that is not air outside the head) and the
        smoothed brain hull (GM, WM and the CSF they enclose).
    """
    gm, origin = _template_array("gm")
    wm, _ = _template_array("wm")
    t1, _ = _template_array("head_t1")
    t2, _ = _template_array("head_t2")
    gm = np.clip(gm, 0.0, 1.0)
    wm = np.clip(wm, 0.0, 1.0)
    brain = _mask_from_tissue(gm + wm, 1.0)
    hull = ndimage.gaussian_filter(brain.astype(np.float32), sigma=3.0) > 0.5
    hull = fill_holes(hull | brain)

    t1s = ndimage.gaussian_filter(t1, 0.7)
    t2s = ndimage.gaussian_filter(t2, 0.7)
    # The head: brighter than the background on either sequence, holes (sinuses) filled.
    head = (ndimage.gaussian_filter(np.maximum(t1, t2), 1.5) > 20.0) | hull
    labels, n = ndimage.label(head)
    if n > 1:
        sizes = ndimage.sum(head, labels, index=np.arange(1, n + 1))
        head = labels == (int(np.argmax(sizes)) + 1)
    head = fill_holes(np.asarray(head))
    d_hull = signed_distance(hull, 1.0)
    d_head = signed_distance(head, 1.0)  # negative inside the head
    axes = _axes(t1.shape, origin)
    outside = np.where(hull, np.float32(0.0), np.float32(1.0)) * head

    # Layers just outside the hull: CSF (0-1.2 mm), dura (1.2-2.2 mm).
    d_out = np.where(hull, -1.0, d_hull - 0.5).astype(np.float32)
    csf_shell = _shell(d_out, 0.0, 1.2)
    dura = _shell(d_out, 1.2, 2.2)
    rest = np.clip(outside - csf_shell - dura, 0.0, 1.0)

    # Globes and lenses (geometry; the averaged template blurs them away).
    eye = np.zeros_like(t1)
    lens = np.zeros_like(t1)
    for cx, cy, cz in _globe_centres(t1, t2, origin):
        globe = _ellipsoid(axes, (cx, cy, cz), (_GLOBE_RADIUS_MM,) * 3)
        lens_c = (cx, cy - (_GLOBE_RADIUS_MM - _LENS_RADII_MM[1] - 0.5), cz)
        lens_i = _ellipsoid(axes, lens_c, _LENS_RADII_MM)
        lens = np.maximum(lens, lens_i)
        eye = np.maximum(eye, globe - lens_i)
    eye = np.clip(eye, 0.0, 1.0) * rest
    lens = np.clip(lens, 0.0, 1.0) * rest
    rest = np.clip(rest - eye - lens, 0.0, 1.0)

    # Venous sinuses: superior sagittal (midline, along the vertex) and transverse (occiput).
    z, y, x = axes
    near = (d_out > 0.5) & (d_out < 7.0)
    sss = near & (np.abs(x) < 4.0) & (z > -5.0)
    transverse = near & (np.abs(z - (-8.0)) < 4.0) & (y > 70.0)
    vessel = ndimage.gaussian_filter((sss | transverse).astype(np.float32), 0.7) * rest
    rest = np.clip(rest - vessel, 0.0, 1.0)

    # The template's own contrast outside the brain: dark = bone or air, bright T1 = fat.
    brightest = np.maximum(t1s, t2s)
    dark = 1.0 - _smooth_step(brightest, 24.0, 40.0)
    air = dark * (1.0 - _smooth_step(brightest, 12.0, 20.0)) * (d_out > 4.0)
    air = np.where(d_head > -2.0, 0.0, air)  # the skin is never air
    # The blurred edge of the head is skin, never bone.
    skin = _smooth_step(d_head, -5.0, -2.0)
    dark = dark * (1.0 - skin)
    air = air * (1.0 - skin)
    bone = np.clip(dark - air, 0.0, 1.0)  # skull near the brain, facial bones further out
    light = 1.0 - dark
    # Between the hull and the inner table: cerebrospinal fluid, not scalp.
    inner = 1.0 - _smooth_step(d_out, 3.0, 5.0)
    csf_more = light * inner
    fat = _smooth_step(t1s, 45.0, 60.0) * light * (1.0 - inner)
    soft = np.clip(light - csf_more - fat, 0.0, 1.0)
    bone, fat, soft, air, csf_more = (rest * c for c in (bone, fat, soft, air, csf_more))
    csf_shell = csf_shell + csf_more

    # Diploic marrow: the inner part of skull at least 4 mm thick is fatty.
    skull = (bone > 0.5) & (d_out < 14.0)
    depth = -signed_distance(skull, 1.0)
    marrow = np.where(skull & (depth >= 1.5), 0.7 * bone, 0.0).astype(np.float32)
    marrow = ndimage.gaussian_filter(marrow, 0.6)
    marrow = np.minimum(marrow, bone)
    bone = bone - marrow

    fractions = {
        "dura": dura,
        "vessel": np.asarray(vessel, dtype=np.float32),
        "bone": np.asarray(bone, dtype=np.float32),
        "marrow": np.asarray(marrow, dtype=np.float32),
        "fat": np.asarray(fat, dtype=np.float32),
        "eye": np.asarray(eye, dtype=np.float32),
        "lens": np.asarray(lens, dtype=np.float32),
        "soft": np.asarray(soft, dtype=np.float32),
        "csf_shell": csf_shell,
    }
    return fractions, np.asarray(head, dtype=bool), np.asarray(hull, dtype=bool)


__all__ = ["HEAD_CLASSES", "head_tissues"]
