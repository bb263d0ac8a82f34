"""Model pieces of the post-operative phantom (:mod:`rgcds.phantom.postop`): its random
streams, tissue tables, per-patient draws, outcome model and resection geometry.

The stream numbers are public: :mod:`rgcds.phantom.postop` draws the anatomy, appearance and
outcome from them and :mod:`rgcds.phantom.postop_study` the DICOM geometry, dates and noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from rgcds.phantom._template import BoolArray, FloatArray, Grid
from rgcds.phantom._tumour import LABEL_ENHANCING, LABEL_NECROSIS
from rgcds.phantom._tumour import LABEL_OEDEMA as _PREOP_OEDEMA
from rgcds.phantom.clinical import ClinicalVariables
from rgcds.phantom.simulate import _CLASS_INTENSITY, MR_ROLES

#: Random streams of the post-operative phantom (:func:`rgcds.phantom.simulate.rng_stream`).
STREAM_CLINICAL = 21
STREAM_SHAPE = 22
STREAM_APPEARANCE = 23
STREAM_OUTCOME = 24
STREAM_AUGMENT = 25
STREAM_GEOMETRY = 26
STREAM_DICOM = 27
STREAM_NOISE = 28

_PET_FWHM_MM = 5.0
_BOX_PAD_MM = 40.0

#: MR class intensities of the new post-operative classes (white matter ~ 1 on T1).
_FLUID = {"T1": 0.18, "T1c": 0.19, "T2": 1.45, "FLAIR": 0.20}
#: MR class intensities of the normal tissues: the pre-operative phantom's.
_CLASS = {role: _CLASS_INTENSITY[role] for role in MR_ROLES}
#: CT numbers (HU) per class.
_HU = dict(gm=40.0, wm=30.0, csf=5.0, bone=1000.0, marrow=450.0, fat=-100.0, soft=45.0,
           gland=35.0, fluid=8.0, ed=22.0, et=40.0, air=-1000.0, dura=50.0, vessel=45.0,
           eye=10.0, lens=90.0)  # fmt: skip

#: Extra-cerebral MET-avid structures: name -> (LPS centre mm, radii mm), x mirrored if "+-".
_GLANDS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "parotid_left": ((50.0, 15.0, -54.0), (9.0, 13.0, 17.0)),
    "parotid_right": ((-50.0, 15.0, -54.0), (9.0, 13.0, 17.0)),
    "submandibular_left": ((30.0, -5.0, -76.0), (8.0, 11.0, 8.0)),
    "submandibular_right": ((-30.0, -5.0, -76.0), (8.0, 11.0, 8.0)),
    "nasal_mucosa": ((0.0, -50.0, -45.0), (10.0, 20.0, 15.0)),
}
_CLIVUS = ((0.0, 3.0, -42.0), (6.0, 7.0, 12.0))


@dataclass(frozen=True)
class _PostopDraw:
    residual_present: bool
    nodule_ml: float
    infiltration_mm: float
    oedema_keep: float
    margin_thickness_mm: float
    margin_enhancement: float
    margin_tbr: float
    nodule_tbr: float
    infiltrative_tbr: float
    marrow_suv: float
    scalp_suv: float
    gland_suv: dict[str, float]


def _draw(rng: np.random.Generator) -> _PostopDraw:
    present = bool(rng.random() < 0.5)
    return _PostopDraw(
        residual_present=present,
        nodule_ml=float(math.exp(rng.uniform(math.log(0.5), math.log(8.0)))),
        infiltration_mm=float(rng.uniform(4.0, 9.0)),
        oedema_keep=float(rng.uniform(0.30, 0.65)),
        margin_thickness_mm=float(rng.uniform(1.0, 2.0)),
        margin_enhancement=float(rng.uniform(1.30, 1.60)),
        margin_tbr=float(rng.uniform(1.10, 1.25)),
        nodule_tbr=float(rng.uniform(1.9, 3.0)),
        infiltrative_tbr=float(rng.uniform(1.6, 2.0)),
        marrow_suv=float(rng.uniform(1.4, 2.0)),
        scalp_suv=float(rng.uniform(1.2, 1.6)),
        gland_suv={
            "parotid": float(rng.uniform(2.5, 3.8)),
            "submandibular": float(rng.uniform(2.2, 3.4)),
            "nasal_mucosa": float(rng.uniform(1.8, 2.6)),
        },
    )


def _edt_outside(mask: BoolArray, spacing: float) -> FloatArray:
    """Euclidean distance (mm) from ``mask`` for voxels outside it (0 inside)."""
    if not mask.any():
        return np.full(mask.shape, 1e3, dtype=np.float32)
    return np.asarray(ndimage.distance_transform_edt(~mask, sampling=spacing), dtype=np.float32)


def _box(mask: BoolArray, pad_vox: int) -> tuple[slice, slice, slice]:
    idx = np.nonzero(mask)
    return tuple(  # type: ignore[return-value]
        slice(max(0, int(i.min()) - pad_vox), min(n, int(i.max()) + pad_vox + 1))
        for i, n in zip(idx, mask.shape, strict=True)
    )


def _ellipsoid(
    grid: Grid, centre: tuple[float, float, float], radii: tuple[float, float, float]
) -> FloatArray:
    """Soft (1 mm edge) ellipsoid indicator on the grid; ``centre``/``radii`` as ``(x, y, z)``."""
    z, y, x = grid.axes()
    r = np.sqrt(
        ((x - centre[0]) / radii[0]) ** 2
        + ((y - centre[1]) / radii[1]) ** 2
        + ((z - centre[2]) / radii[2]) ** 2
    )
    edge = 1.0 / min(radii)
    return np.asarray(np.clip((1.0 - r) / edge + 0.5, 0.0, 1.0), dtype=np.float32)


def _weibull(rng: np.random.Generator, shape: float, median: float, lp: float) -> float:
    scale = median / math.log(2.0) ** (1.0 / shape)
    u = float(rng.random())
    return float(scale * (-math.log(1.0 - u) / math.exp(lp)) ** (1.0 / shape))


def _outcome(
    rng: np.random.Generator, pre: ClinicalVariables, present: bool, residual_ml: float
) -> tuple[float, bool, float, bool, float, float]:
    age10 = (pre.age_years - 60.0) / 10.0
    lp_ttr = (
        0.70 * present
        + 0.30 * math.log1p(residual_ml)
        + 0.20 * age10
        - 0.50 * pre.mgmt_methylated
        - 0.60 * pre.idh_mutant
        + 0.10 * pre.egfr_amplified
    )
    lp_os = (
        0.45 * present
        + 0.25 * math.log1p(residual_ml)
        + 0.35 * age10
        - 0.55 * pre.mgmt_methylated
        - 0.80 * pre.idh_mutant
        + 0.10 * pre.egfr_amplified
    )
    t_rec = _weibull(rng, 1.3, 270.0, lp_ttr)
    t_death = _weibull(rng, 1.5, 540.0, lp_os)
    censor = float(rng.uniform(250.0, 1800.0))
    os_days = float(max(1, round(min(t_death, censor))))
    ttr_days = float(max(1, round(min(t_rec, t_death, censor))))
    return (
        min(ttr_days, os_days),
        bool(t_rec <= min(t_death, censor)),
        os_days,
        bool(t_death <= censor),
        round(lp_ttr, 6),
        round(lp_os, 6),
    )


def _geometry(
    clean_labels: npt.NDArray[np.uint8],
    core_distance: FloatArray,
    brain: BoolArray,
    csf: FloatArray,
    draw: _PostopDraw,
    rng: np.random.Generator,
    spacing: float,
) -> tuple[BoolArray, BoolArray, BoolArray, BoolArray, BoolArray]:
    """Cavity, oedema, nodule, infiltrative residual and margin shell (inside a box)."""
    vv = spacing**3 / 1000.0
    core = (clean_labels == LABEL_NECROSIS) | (clean_labels == LABEL_ENHANCING)
    cavity = core.copy()
    d_cav = _edt_outside(cavity, spacing)
    tissue = brain & (csf < 0.5) & ~cavity
    nodule = np.zeros_like(cavity)
    infiltrative = np.zeros_like(cavity)
    if draw.residual_present:
        candidates = np.argwhere(tissue & (d_cav > 0) & (d_cav <= spacing * 1.75))
        seed_pt = candidates[int(rng.integers(len(candidates)))].astype(np.float32)
        shape = cavity.shape
        zz, yy, xx = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
        dist = (
            np.sqrt((zz - seed_pt[0]) ** 2 + (yy - seed_pt[1]) ** 2 + (xx - seed_pt[2]) ** 2)
            * spacing
        )
        noise = ndimage.gaussian_filter(
            rng.standard_normal(shape).astype(np.float32), 3.0 / spacing
        )
        noise /= max(float(noise.std()), 1e-6)
        field = dist / 10.0 + 0.25 * noise
        allowed = tissue & (d_cav <= 12.0)
        n_target = max(4, round(draw.nodule_ml / vv))
        values = np.where(allowed, field, np.inf).ravel()
        n_target = min(n_target, int(np.isfinite(values).sum()))
        order = np.argpartition(values, n_target - 1)[:n_target]
        nodule.ravel()[order] = True
        d_nod = _edt_outside(nodule, spacing)
        infiltrative = (
            tissue & ~nodule & (d_nod <= draw.infiltration_mm) & (d_cav <= 20.0) & (d_cav > 0)
        )
    else:
        d_nod = np.full(cavity.shape, 1e3, dtype=np.float32)
    preop_ed = (clean_labels == _PREOP_OEDEMA) & ~cavity
    if preop_ed.any():
        limit = float(np.quantile(core_distance[preop_ed], draw.oedema_keep))
        oedema = preop_ed & (core_distance <= limit)
    else:
        oedema = np.zeros_like(cavity)
    oedema |= infiltrative
    oedema |= tissue & (d_nod <= draw.infiltration_mm + 4.0)
    oedema &= ~nodule & ~cavity
    margin = tissue & ~nodule & (d_cav > 0) & (d_cav <= max(2.0, spacing) * 1.01)
    return cavity, oedema, nodule, infiltrative, margin
