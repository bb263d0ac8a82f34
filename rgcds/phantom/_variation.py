"""Per-subject anatomy: a smooth diffeomorphic deformation of the template's head.

Each subject's anatomy is the template anatomy (:func:`rgcds.phantom._template.anatomy`)
pulled back through one random transform, composed of

* a scaling of about +-10 % per axis around the brain's centre (head and brain size and shape),
* a stationary velocity field (smooth random noise, a few mm) integrated by scaling and
  squaring, so the deformation is diffeomorphic (no folding: the truth follows it exactly),
* a ventricle term: a velocity pointing away from the ventricles' centre, weighted by a
  smoothed ventricle mask, that enlarges or shrinks them (about -20 % to +50 % in volume).

The tumour and its mass effect (:mod:`rgcds.phantom._tumour`) are added afterwards, on the
deformed anatomy. Everything that describes the anatomy (tissue fractions, masks, the hull
distance) moves with the same transform.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from rgcds.phantom._head import HEAD_CLASSES
from rgcds.phantom._template import Anatomy, FloatArray, anatomy
from rgcds.templates import signed_distance

#: Lattice spacing (mm) of the velocity field.
_LATTICE_MM = 8.0
#: Scaling-and-squaring steps.
_SQUARINGS = 6


@dataclass(frozen=True)
class VariationDraw:
    """The random parameters of one subject's anatomy.

    Attributes
    ----------
    scale : tuple of float
        Scale factors along x, y, z (about 0.9-1.1).
    warp_mm : float
        Root-mean-square displacement of the random smooth deformation (mm).
    ventricle_gain : float
        Relative change of the ventricles' linear size (negative shrinks them).
    """

    scale: tuple[float, float, float]
    warp_mm: float
    ventricle_gain: float


def draw_variation(rng: np.random.Generator) -> VariationDraw:
    """Draw one subject's anatomical variation."""
    common = float(rng.normal(0.0, 0.04))
    scale = tuple(float(np.clip(1.0 + common + rng.normal(0.0, 0.035), 0.9, 1.1))
                  for _ in range(3))
    return VariationDraw(
        scale=(scale[0], scale[1], scale[2]),
        warp_mm=float(rng.uniform(2.0, 4.0)),
        ventricle_gain=float(rng.uniform(-0.07, 0.15)),
    )


def _velocity(
    anat: Anatomy, draw: VariationDraw, rng: np.random.Generator, lattice_shape: tuple[int, ...],
    lattice_spacing: float,
) -> FloatArray:
    """The velocity field (mm, shape ``(3, *lattice_shape)``, components z, y, x)."""
    noise = rng.standard_normal((3, *lattice_shape)).astype(np.float32)
    v = np.stack([ndimage.gaussian_filter(c, 24.0 / lattice_spacing) for c in noise])
    rms = float(np.sqrt((v**2).sum(axis=0).mean()))
    v *= np.float32(draw.warp_mm / max(rms, 1e-6))
    # Ventricles: CSF deep inside the brain.
    g = anat.grid
    deep = (anat.csf > 0.5) & (anat.hull_distance < -18.0) & anat.brain_mask
    if deep.any() and draw.ventricle_gain != 0.0:
        weight = ndimage.gaussian_filter(deep.astype(np.float32), 6.0 / g.spacing)
        weight /= max(float(weight.max()), 1e-6)
        centre = np.array(ndimage.center_of_mass(deep))  # z, y, x voxel
        zyx = np.indices(deep.shape, dtype=np.float32)
        radial = (zyx - centre.reshape(3, 1, 1, 1).astype(np.float32)) * np.float32(g.spacing)
        # Backward map: a velocity towards the centre samples nearer it, enlarging them.
        v_vent = -draw.ventricle_gain * radial * weight
        factor = [ls / s for ls, s in zip(lattice_shape, deep.shape, strict=True)]
        v += np.stack([ndimage.zoom(c, factor, order=1) for c in v_vent]).astype(np.float32)
    return v


def _exponentiate(v: FloatArray, spacing: float) -> FloatArray:
    """Displacement (mm) of the exponential of a stationary velocity field (mm)."""
    u = v / np.float32(2**_SQUARINGS)
    grid = np.indices(v.shape[1:], dtype=np.float32)
    for _ in range(_SQUARINGS):
        coords = grid + u / np.float32(spacing)
        u = u + np.stack([ndimage.map_coordinates(c, coords, order=1, mode="nearest") for c in u])
    return np.asarray(u, dtype=np.float32)


def vary_anatomy(anat: Anatomy, draw: VariationDraw, rng: np.random.Generator) -> Anatomy:
    """Return ``anat`` deformed by one subject's transform (see the module docstring)."""
    g = anat.grid
    lattice_spacing = max(_LATTICE_MM, g.spacing)
    lattice_shape = tuple(max(4, int(np.ceil(n * g.spacing / lattice_spacing))) for n in g.shape)
    v = _velocity(anat, draw, rng, lattice_shape, lattice_spacing)
    u_lat = _exponentiate(v, lattice_spacing)
    factor = [n / ls for n, ls in zip(g.shape, lattice_shape, strict=True)]
    u = [ndimage.zoom(c, factor, order=1, grid_mode=True, mode="nearest") for c in u_lat]
    u = [c[: g.shape[0], : g.shape[1], : g.shape[2]] for c in u]

    # Backward map: output voxel -> template voxel. Scaling about the brain's centre.
    centre = np.array(ndimage.center_of_mass(anat.brain_mask), dtype=np.float32)  # z, y, x
    sz, sy, sx = draw.scale[2], draw.scale[1], draw.scale[0]
    zz, yy, xx = np.indices(g.shape, dtype=np.float32)
    src = [
        centre[0] + (zz - centre[0]) / np.float32(sz) + u[0] / np.float32(g.spacing),
        centre[1] + (yy - centre[1]) / np.float32(sy) + u[1] / np.float32(g.spacing),
        centre[2] + (xx - centre[2]) / np.float32(sx) + u[2] / np.float32(g.spacing),
    ]
    del zz, yy, xx, u

    def warp(a: FloatArray) -> FloatArray:
        out = ndimage.map_coordinates(a, src, order=1, mode="constant", cval=0.0)
        return np.asarray(out, dtype=np.float32)

    fields = {name: warp(getattr(anat, name)) for name in ("gm", "wm", "csf", *HEAD_CLASSES)}
    brain = warp(anat.brain_mask.astype(np.float32)) > 0.5
    hull = warp((anat.hull_distance < 0).astype(np.float32)) > 0.5
    head = warp(anat.head_mask.astype(np.float32)) > 0.5
    changes: dict[str, object] = dict(fields)
    changes.update(brain_mask=brain, head_mask=head,
                   hull_distance=signed_distance(hull, g.spacing))
    return replace(anat, **changes)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=4)
def subject_anatomy(seed: int, size: str, stream: int) -> tuple[Anatomy, VariationDraw]:
    """One subject's deformed anatomy and its parameters (cached)."""
    from rgcds.phantom.simulate import rng_stream

    rng = rng_stream(seed, stream)
    draw = draw_variation(rng)
    return vary_anatomy(anatomy(size), draw, rng), draw


__all__ = ["VariationDraw", "draw_variation", "subject_anatomy", "vary_anatomy"]
