# (SimpleITK ships no type information.)
"""Glioblastoma geometry: location, irregular core, necrosis, white-matter oedema, mass effect.

All work happens in template space on the simulation grid, inside a box around the tumour.
Random shape fields are drawn on a fixed 4 mm lattice in physical coordinates, so that the
``small`` and ``full`` simulations of one seed get the same tumour shape (up to resolution).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage

from rgcds.phantom._template import Anatomy, BoolArray, FloatArray, signed_distance
from rgcds.phantom.clinical import BaselineDraw

UInt8Array = npt.NDArray[np.uint8]

#: BraTS labels.
LABEL_NECROSIS = 1
LABEL_OEDEMA = 2
LABEL_ENHANCING = 3

_LATTICE_MM = 4.0
_LATTICE_HALF = 24  # lattice points each side: +-96 mm
_BOX_HALF_MM = 84.0
_FMM_SPACING_MM = 2.0
_FMM_STOP = 150.0

#: Lobe boxes in MNI RAS mm: (y_min, y_max, z_min, z_max, min |x|).
_LOBE_BOXES: dict[str, tuple[float, float, float, float, float]] = {
    "frontal": (5.0, 60.0, -10.0, 60.0, 12.0),
    "temporal": (-50.0, 5.0, -35.0, 0.0, 30.0),
    "parietal": (-75.0, -20.0, 20.0, 65.0, 12.0),
    "occipital": (-95.0, -60.0, -10.0, 35.0, 8.0),
}


@dataclass(frozen=True, eq=False)
class TumourModel:
    """A tumour inserted into a (mass-effect warped) anatomy.

    Attributes
    ----------
    labels : numpy.ndarray
        BraTS labels on the simulation grid (uint8).
    gm, wm, csf : numpy.ndarray
        Tissue fractions after the mass effect.
    brain_mask : numpy.ndarray
        Brain mask after the mass effect, including the tumour.
    core_distance : numpy.ndarray
        Distance (mm) from the tumour core (necrosis + enhancing), 0 inside, capped at 100.
    heterogeneity : numpy.ndarray
        Smooth zero-mean unit-variance noise used for tumour texture.
    centre : tuple of float
        Tumour centre (template LPS mm).
    mass_effect_mm : float
        Peak displacement.
    """

    labels: UInt8Array
    gm: FloatArray
    wm: FloatArray
    csf: FloatArray
    brain_mask: BoolArray
    core_distance: FloatArray
    heterogeneity: FloatArray
    centre: tuple[float, float, float]
    mass_effect_mm: float


class _LatticeNoise:
    """Smooth Gaussian noise fields on a fixed physical lattice around a centre."""

    def __init__(self, rng: np.random.Generator, centre: npt.NDArray[np.float64]) -> None:
        self._rng = rng
        self._centre = centre

    def field(self, sigma_mm: float) -> npt.NDArray[np.float32]:
        n = 2 * _LATTICE_HALF + 1
        white = self._rng.standard_normal((n, n, n)).astype(np.float32)
        smooth = ndimage.gaussian_filter(white, sigma=sigma_mm / _LATTICE_MM, mode="wrap")
        smooth -= smooth.mean()
        smooth /= max(float(smooth.std()), 1e-6)
        return np.asarray(smooth, dtype=np.float32)

    def sample(
        self,
        lattice: npt.NDArray[np.float32],
        points_zyx: tuple[FloatArray, FloatArray, FloatArray],
    ) -> FloatArray:
        """Sample a lattice field at physical points given as broadcastable (z, y, x) arrays."""
        z, y, x = np.broadcast_arrays(*points_zyx)
        coords = [
            (z - self._centre[2]) / _LATTICE_MM + _LATTICE_HALF,
            (y - self._centre[1]) / _LATTICE_MM + _LATTICE_HALF,
            (x - self._centre[0]) / _LATTICE_MM + _LATTICE_HALF,
        ]
        out = ndimage.map_coordinates(lattice, coords, order=1, mode="nearest")
        return np.asarray(out, dtype=np.float32)


def _choose_centre(
    anat: Anatomy, baseline: BaselineDraw, core_radius: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Rejection-sample a white-matter centre in the chosen lobe and hemisphere."""
    g = anat.grid
    y0, y1, z0, z1, xmin = _LOBE_BOXES[baseline.lobe]
    n = 4000
    xr = rng.uniform(xmin, 70.0, n)  # |x| in MNI mm
    yr = rng.uniform(y0, y1, n)
    zr = rng.uniform(z0, z1, n)
    sign = 1.0 if baseline.hemisphere == "left" else -1.0  # LPS: +x is the patient's left
    pts = np.stack([sign * xr, -yr, zr], axis=1)  # LPS
    idx = np.rint((pts - np.array(g.origin)) / g.spacing).astype(int)
    shape = np.array(g.shape[::-1])  # x, y, z
    inside = np.all((idx >= 0) & (idx < shape), axis=1)
    idx = np.clip(idx, 0, shape - 1)
    wm = anat.wm[idx[:, 2], idx[:, 1], idx[:, 0]]
    depth = -anat.hull_distance[idx[:, 2], idx[:, 1], idx[:, 0]]
    for margin in (core_radius + 12.0, core_radius + 6.0, core_radius, 0.6 * core_radius, 10.0):
        ok = inside & (wm > 0.6) & (depth >= margin)
        if ok.any():
            return np.asarray(pts[int(np.argmax(ok))], dtype=np.float64)
    return np.array([sign * 28.0, -10.0, 25.0])  # deep white matter, corona radiata


def _box(anat: Anatomy, centre: npt.NDArray[np.float64]) -> tuple[slice, slice, slice]:
    g = anat.grid
    lo = np.floor((centre - _BOX_HALF_MM - np.array(g.origin)) / g.spacing).astype(int)
    hi = np.ceil((centre + _BOX_HALF_MM - np.array(g.origin)) / g.spacing).astype(int) + 1
    shape = g.shape[::-1]
    sl = [slice(max(0, int(lo[i])), min(int(shape[i]), int(hi[i]))) for i in range(3)]
    return sl[2], sl[1], sl[0]


def _k_smallest(values: FloatArray, eligible: BoolArray, k: int) -> BoolArray:
    """Boolean mask of the ``k`` smallest values among eligible voxels (ties by index)."""
    flat = np.where(eligible, values, np.inf).ravel()
    k = int(min(k, int(eligible.sum())))
    out = np.zeros(flat.shape, dtype=bool)
    if k > 0:
        out[np.argpartition(flat, k - 1)[:k]] = True
    return out.reshape(values.shape)


def _largest_component(mask: BoolArray) -> BoolArray:
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    return np.asarray(labels == (int(np.argmax(sizes)) + 1))


def _fast_marching(speed: FloatArray, seeds: BoolArray, spacing: float) -> FloatArray:
    """Arrival time of a front starting at ``seeds`` moving with ``speed`` (mm / unit)."""
    image = sitk.GetImageFromArray(speed.astype(np.float32))
    image.SetSpacing((spacing,) * 3)
    fmm = sitk.FastMarchingImageFilter()
    zz, yy, xx = np.nonzero(seeds)
    fmm.SetTrialPoints([[int(x), int(y), int(z)] for z, y, x in zip(zz, yy, xx, strict=True)])
    fmm.SetStoppingValue(_FMM_STOP)
    arrival = sitk.GetArrayFromImage(fmm.Execute(image)).astype(np.float64)
    return np.asarray(np.minimum(arrival, 1e9), dtype=np.float32)


def _boundary(mask: BoolArray) -> BoolArray:
    return np.asarray(mask & ~ndimage.binary_erosion(mask))


def build_tumour(anat: Anatomy, baseline: BaselineDraw, rng: np.random.Generator) -> TumourModel:
    """Insert a glioblastoma into the anatomy.

    Parameters
    ----------
    anat : Anatomy
        Normal anatomy on the simulation grid.
    baseline : BaselineDraw
        Target volumes, location and shape parameters.
    rng : numpy.random.Generator
        The subject's tumour random stream.

    Returns
    -------
    TumourModel
        Labels and the warped anatomy.
    """
    g = anat.grid
    vv = g.voxel_volume_ml
    v_wt = baseline.whole_tumour_ml
    v_ed = v_wt * baseline.oedema_fraction
    v_core = v_wt - v_ed
    v_ncr = v_core * baseline.necrosis_fraction
    r_core = (3.0 * v_core * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)

    centre = _choose_centre(anat, baseline, r_core, rng)
    noise = _LatticeNoise(rng, centre)
    f_core = noise.field(7.0)
    f_necrosis = noise.field(6.0)
    f_speed = noise.field(5.0)
    f_texture = noise.field(3.0)
    mass_effect = float(np.clip(0.22 * r_core, 1.5, 5.0) * rng.uniform(0.7, 1.0))

    box = _box(anat, centre)
    z, y, x = g.axes()
    z, y, x = z[box[0]], y[:, box[1]], x[:, :, box[2]]
    dz, dy, dx = z - centre[2], y - centre[1], x - centre[0]
    r = np.sqrt(dz**2 + dy**2 + dx**2).astype(np.float32)

    # Mass effect: backward warp, radial push peaking at the core radius and fading by ~3R.
    rr = r / np.float32(r_core)
    u = mass_effect * rr * np.exp(0.5 * (1.0 - rr**2))
    scale = u / np.maximum(r, 1e-3)
    src = [
        (z - dz * scale - g.origin[2]) / g.spacing,
        (y - dy * scale - g.origin[1]) / g.spacing,
        (x - dx * scale - g.origin[0]) / g.spacing,
    ]
    src = [np.broadcast_to(c, r.shape) for c in src]

    def warp(a: FloatArray) -> FloatArray:
        out = a.copy()
        out[box] = ndimage.map_coordinates(a, src, order=1, mode="nearest")
        return out

    gm, wm, csf = warp(anat.gm), warp(anat.wm), warp(anat.csf)
    brain = warp(anat.brain_mask.astype(np.float32)) > 0.5

    gm_b, wm_b, csf_b, brain_b = gm[box], wm[box], csf[box], brain[box]
    tissue_ok = brain_b & (csf_b < 0.5)

    # Core: the k smallest values of an irregular radial field.
    field = rr + baseline.irregularity * noise.sample(f_core, (z, y, x))
    core = _k_smallest(field, tissue_ok, round(v_core / vv))
    core = _largest_component(core)

    # Necrosis: deep inside the core, leaving an irregular enhancing rim of >= rim mm.
    rim = max(float(rng.uniform(2.0, 4.5)), g.spacing)
    depth = -signed_distance(core, g.spacing)
    nec_field = rr + 0.6 * baseline.irregularity * noise.sample(f_necrosis, (z, y, x))
    necrosis = _k_smallest(nec_field, core & (depth >= rim - 1e-3), round(v_ncr / vv))

    # Oedema: fast marching from the core, fast along white matter, stopped by CSF.
    factor = max(1, round(_FMM_SPACING_MM / g.spacing))
    speed = 0.03 + 1.0 * wm_b + 0.25 * gm_b
    speed = speed * np.exp(0.4 * noise.sample(f_speed, (z, y, x)))
    speed = np.where(csf_b > 0.5, 0.003, speed)
    speed = np.where(brain_b, speed, 1e-4).astype(np.float32)
    core_bnd = _boundary(core)
    if factor > 1:
        crop = tuple(slice(0, (s // factor) * factor) for s in speed.shape)
        sp = speed[crop]
        nz, ny, nx = sp.shape
        coarse = sp.reshape(nz // factor, factor, ny // factor, factor, nx // factor, factor)
        seeds_c = np.asarray(core_bnd[crop].reshape(coarse.shape).any(axis=(1, 3, 5)), dtype=bool)
        arrival_c = _fast_marching(coarse.mean(axis=(1, 3, 5)), seeds_c, g.spacing * factor)
        coords = (np.indices(speed.shape, dtype=np.float32) - (factor - 1) / 2.0) / factor
        arrival = ndimage.map_coordinates(arrival_c, list(coords), order=1, mode="nearest")
    else:
        arrival = _fast_marching(speed, core_bnd, g.spacing)
    oedema = _k_smallest(np.asarray(arrival, dtype=np.float32), tissue_ok & ~core, round(v_ed / vv))

    labels_b = np.zeros(r.shape, dtype=np.uint8)
    labels_b[oedema] = LABEL_OEDEMA
    labels_b[core] = LABEL_ENHANCING
    labels_b[necrosis] = LABEL_NECROSIS
    labels = np.zeros(g.shape, dtype=np.uint8)
    labels[box] = labels_b

    core_distance = np.full(g.shape, 100.0, dtype=np.float32)
    core_distance[box] = np.clip(signed_distance(core, g.spacing), 0.0, 100.0)
    heterogeneity = np.zeros(g.shape, dtype=np.float32)
    heterogeneity[box] = noise.sample(f_texture, (z, y, x))
    brain |= labels > 0
    return TumourModel(
        labels=labels,
        gm=gm,
        wm=wm,
        csf=csf,
        brain_mask=brain,
        core_distance=core_distance,
        heterogeneity=heterogeneity,
        centre=(float(centre[0]), float(centre[1]), float(centre[2])),
        mass_effect_mm=mass_effect,
    )
