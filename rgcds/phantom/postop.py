# (SimpleITK and rt-utils ship no type information.)
"""Post-operative glioblastoma phantom: resection cavity, residual tumour, MR + MET-PET/CT.

:func:`simulate_postop` starts from the pre-operative simulation of the same seed
(:func:`rgcds.phantom.simulate.simulate_clean`: anatomy, tumour, patient) and simulates the
situation after resection; :func:`rgcds.phantom.postop_study.write_postop_study` writes it
as two DICOM studies of one patient: a post-operative MR study (T1, T2, FLAIR, T1c;
optionally an RT Structure Set with the CTV) and, 1-10 days later, a [11C]methionine PET/CT
study (low-dose CT + PET sharing one frame of reference). Everything is deterministic per
seed; the post-operative draws use their own random streams (numbers 21-28 of
:func:`rgcds.phantom.simulate.rng_stream`).

Post-operative anatomy
----------------------
- **Resection cavity** (label 1): the pre-operative tumour core (necrosis + enhancing rim),
  filled with CSF-like fluid: dark on T1/T1c, bright on T2, dark-ish on FLAIR (a little
  brighter than CSF: proteinaceous fluid), low MET uptake (SUV about 0.25).
- **Surgical margin**: a 1-2 mm shell around the cavity with thin linear enhancement on T1c
  (1.3-1.6 x white matter, partial volume) and mild MET uptake, TBR 1.10-1.25 against normal
  contralateral brain, i.e. below the 1.3 MET threshold. Not labelled.
- **Residual tumour** in half of the patients (Bernoulli 0.5): a nodular enhancing residual
  (label 3, 0.5-8 ml, log-uniform) grown from a point on the cavity margin, plus an
  infiltrative non-enhancing residual within 4-9 mm of the nodule (label 2 on MR: FLAIR
  hyperintense). MET TBR before the 5 mm PSF: nodule 1.9-3.0, infiltrative 1.6-2.0.
  ``residual`` (the biological residual) is the nodule plus the infiltrative part;
  ``residual_ml`` its volume.
- **Oedema** (label 2): the part of the pre-operative oedema nearest the cavity (30-65 % of
  its volume) plus the surroundings of a residual; MR appearance as before, MET as normal brain.
- **Extra-cerebral physiological MET uptake**: diploic bone marrow of the skull (SUV 1.4-2.0)
  and clivus, scalp skin (1.2-1.6), parotid (2.5-3.8) and submandibular (2.2-3.4) glands and
  nasal mucosa (1.8-2.6), the glands as ellipsoids at fixed template positions outside the
  brain hull. Normal brain as in the pre-operative phantom (cortex about 1.35, white matter
  0.85).
- **CTV** (ESTRO-EANO 2023): (cavity + residual enhancement) + 15 mm, clipped to the brain,
  by :func:`rgcds.imaging.ctv.derive_ctv`.

Outcome model (time zero: the post-operative MR)
------------------------------------------------
Two latent Weibull proportional-hazards times, ``S(t) = exp(-(t / scale)^k * exp(lp))``:

- recurrence: shape 1.3, median 270 days at ``lp = 0``;
  ``lp_ttr = 0.70 * residual_present + 0.30 * log1p(residual_ml) + 0.20 * (age - 60) / 10
  - 0.50 * mgmt_methylated - 0.60 * idh_mutant + 0.10 * egfr_amplified``;
- death: shape 1.5, median 540 days at ``lp = 0``;
  ``lp_os = 0.45 * residual_present + 0.25 * log1p(residual_ml) + 0.35 * (age - 60) / 10
  - 0.55 * mgmt_methylated - 0.80 * idh_mutant + 0.10 * egfr_amplified``.

Independent administrative censoring ``C ~ U(250, 1800)`` days (about 25 % of OS censored).
``os_days = min(T_death, C)``;
``ttr_days = min(T_recurrence, T_death, C)`` with ``ttr_event`` true only when recurrence
comes first (death without recurrence censors TTR), so ``ttr_days <= os_days``. ``lp_ttr``
and ``lp_os`` are the true linear predictors (oracle risk scores for a C-index). The effect
sizes are invented, not clinical facts; IDH and EGFR come from the pre-operative draws
(:mod:`rgcds.phantom.clinical`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage

from rgcds.imaging.ctv import derive_ctv
from rgcds.phantom._postop_model import (
    _BOX_PAD_MM,
    _CLASS,
    _CLIVUS,
    _FLUID,
    _GLANDS,
    _HU,
    _PET_FWHM_MM,
    _box,
    _draw,
    _ellipsoid,
    _geometry,
    _outcome,
)
from rgcds.phantom._postop_model import STREAM_APPEARANCE as _STREAM_APPEARANCE
from rgcds.phantom._postop_model import STREAM_AUGMENT as _STREAM_AUGMENT
from rgcds.phantom._postop_model import STREAM_CLINICAL as _STREAM_CLINICAL
from rgcds.phantom._postop_model import STREAM_OUTCOME as _STREAM_OUTCOME
from rgcds.phantom._postop_model import STREAM_SHAPE as _STREAM_SHAPE
from rgcds.phantom._template import BoolArray, FloatArray, Grid
from rgcds.phantom.clinical import ClinicalVariables
from rgcds.phantom.simulate import (
    MR_ROLES,
    augment_images,
    check_args,
    rng_stream,
    simulate_clean,
)

#: Post-operative segmentation labels.
LABEL_CAVITY = 1
LABEL_OEDEMA = 2
LABEL_RESIDUAL_ENHANCING = 3


@dataclass(frozen=True)
class PostopClinical:
    """Patient and post-operative outcome of a post-operative phantom.

    Attributes
    ----------
    seed : int
        Phantom seed.
    age_years : float
        Age at surgery (years).
    sex : str
        ``"M"`` or ``"F"``.
    weight_kg : float
        Body weight (for SUVbw).
    mgmt_methylated : bool
        MGMT promoter methylation.
    residual_present : bool
        Whether biological residual tumour was left (about half of the seeds).
    residual_ml : float
        Biological residual tumour volume (enhancing + infiltrative), 0 when absent.
    cavity_ml : float
        Resection cavity volume.
    ttr_days, ttr_event : float, bool
        Time to recurrence and whether recurrence was observed.
    os_days, os_event : float, bool
        Overall survival and whether death was observed.
    lp_ttr, lp_os : float
        True linear predictors (log hazard ratios) of the outcome model.
    """

    seed: int
    age_years: float
    sex: str
    weight_kg: float
    mgmt_methylated: bool
    residual_present: bool
    residual_ml: float
    cavity_ml: float
    ttr_days: float
    ttr_event: bool
    os_days: float
    os_event: bool
    lp_ttr: float
    lp_os: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        return asdict(self)


@dataclass(frozen=True, eq=False)
class PostopSubject:
    """A simulated post-operative subject in template space (LPS, identity direction).

    Attributes
    ----------
    seed : int
        Phantom seed.
    size : str
        ``"small"`` (2 mm) or ``"full"`` (1 mm); the grid of :func:`simulate_subject`.
    t1, t1c, t2, flair : SimpleITK.Image
        MR images (float32, white matter ~ 1 on T1).
    pet : SimpleITK.Image
        MET uptake in SUVbw (float32), 5 mm FWHM PSF, plus noise when augmented.
    labels : SimpleITK.Image
        uint8: 1 resection cavity, 2 oedema/FLAIR hyperintensity, 3 residual enhancing tumour.
    residual : SimpleITK.Image
        uint8 biological residual tumour (enhancing + infiltrative with MET uptake); all zero
        when ``clinical.residual_present`` is False.
    ctv : SimpleITK.Image
        uint8 ESTRO-EANO CTV: (cavity + residual enhancement) + 15 mm, clipped to the brain.
    brain_mask : SimpleITK.Image
        uint8 brain mask (cavity included).
    clinical : PostopClinical
        Patient and outcome.
    """

    seed: int
    size: str
    t1: sitk.Image
    t1c: sitk.Image
    t2: sitk.Image
    flair: sitk.Image
    pet: sitk.Image
    labels: sitk.Image
    residual: sitk.Image
    ctv: sitk.Image
    brain_mask: sitk.Image
    clinical: PostopClinical


@dataclass(frozen=True, eq=False)
class _PostopClean:
    """Noise-free post-operative arrays on the simulation grid (internal, cached)."""

    seed: int
    size: str
    grid: Grid
    images: dict[str, FloatArray]  # T1, T2, FLAIR, T1c (MR units), PET (SUV, blurred), CT (HU)
    labels: npt.NDArray[np.uint8]
    residual: BoolArray
    margin: BoolArray
    ctv: npt.NDArray[np.uint8]
    brain_mask: BoolArray
    reference_suv: float
    contralateral: BoolArray
    preop: ClinicalVariables
    clinical: PostopClinical


@functools.lru_cache(maxsize=2)
def postop_clean(seed: int, size: str) -> _PostopClean:
    """Noise-free post-operative arrays of ``seed`` on the simulation grid (cached)."""
    check_args(seed, size)
    pre = simulate_clean(seed, size)
    anat = pre.anatomy
    grid = pre.grid
    sp = grid.spacing
    vv = grid.voxel_volume_ml
    t = pre.tumour
    draw = _draw(rng_stream(seed, _STREAM_CLINICAL))

    # Geometry, inside a box around the whole tumour.
    box = _box(t.labels > 0, math.ceil(_BOX_PAD_MM / sp))
    parts = _geometry(
        t.labels[box],
        t.core_distance[box],
        t.brain_mask[box],
        t.csf[box],
        draw,
        rng_stream(seed, _STREAM_SHAPE),
        sp,
    )
    cavity, oedema, nodule, infiltrative, margin = (np.zeros(grid.shape, bool) for _ in range(5))
    for full, local in zip((cavity, oedema, nodule, infiltrative, margin), parts, strict=True):
        full[box] = local
    residual = nodule | infiltrative
    labels = np.zeros(grid.shape, np.uint8)
    labels[oedema] = LABEL_OEDEMA
    labels[cavity] = LABEL_CAVITY
    labels[nodule] = LABEL_RESIDUAL_ENHANCING
    residual_ml = round(float(residual.sum()) * vv, 3)
    cavity_ml = round(float(cavity.sum()) * vv, 3)

    # Extra-cerebral glands and clivus (outside the brain hull only).
    outside = np.clip((anat.hull_distance - 2.0) / 2.0, 0.0, 1.0).astype(np.float32)
    glands: dict[str, FloatArray] = {}
    for name, (centre, radii) in _GLANDS.items():
        kind = name.rsplit("_", 1)[0] if name.startswith(("parotid", "submand")) else name
        ind = _ellipsoid(grid, centre, radii) * outside
        glands[kind] = np.maximum(glands.get(kind, np.zeros_like(ind)), ind)
    clivus = _ellipsoid(grid, *_CLIVUS) * outside
    gland_total = np.clip(sum(glands.values(), np.zeros(grid.shape, np.float32)), 0.0, 1.0)
    keep = 1.0 - np.maximum(gland_total, clivus)
    tissue = {
        "gm": t.gm,
        "wm": t.wm,
        "csf": t.csf,
        **{name: value * keep for name, value in anat.head_tissues().items()},
        "gland": gland_total,
    }
    tissue["bone"] = tissue["bone"] + clivus * 0.4
    tissue["marrow"] = tissue["marrow"] + clivus * 0.6
    skin = (anat.hull_distance > 10.5).astype(np.float32) * tissue["soft"]

    # Tumour indicators with partial volume at the label borders.
    sigma = 0.6 / sp
    ind = {
        k: np.asarray(ndimage.gaussian_filter(m.astype(np.float32), sigma))
        for k, m in (("cav", cavity), ("ed", oedema), ("et", nodule))
    }
    normal_w = np.clip(1.0 - ind["cav"] - ind["ed"] - ind["et"], 0.0, 1.0)
    brain_frac = np.maximum(t.gm + t.wm + t.csf, 1e-3)
    het = t.heterogeneity
    rng = rng_stream(seed, _STREAM_APPEARANCE)
    white = rng.standard_normal(grid.shape, dtype=np.float32)
    texture_n = ndimage.gaussian_filter(white, 1.0 / sp)
    texture = 1.0 + 0.02 * texture_n / max(float(texture_n.std()), 1e-6)
    margin_w = np.float32(min(1.0, draw.margin_thickness_mm / max(2.0, sp)))
    base = pre.clinical.tumour

    images: dict[str, FloatArray] = {}
    for role in MR_ROLES:
        table = {k: v * float(1.0 + rng.normal(0.0, 0.03)) for k, v in _CLASS[role].items()}
        table["gland"] = table["soft"] * 1.1
        if role == "T1c":
            table["et"] = base.enhancement_ratio * table["wm"]
        normal = sum((tissue[c] * table[c] for c in tissue), np.zeros(grid.shape, np.float32))
        local_brain = (t.gm * table["gm"] + t.wm * table["wm"] + t.csf * table["csf"]) / brain_frac
        ed = (local_brain + (table["ed"] - local_brain) * 0.75) * (1.0 + 0.05 * het)
        et = table["et"] * (1.0 + 0.10 * het)
        img = normal * normal_w + ind["cav"] * _FLUID[role] + ind["ed"] * ed + ind["et"] * et
        if role == "T1c":
            mw = margin.astype(np.float32) * margin_w
            img = img * (1.0 - mw) + mw * (draw.margin_enhancement * table["wm"])
        images[role] = np.asarray(np.clip(img * texture, 0.0, None), dtype=np.float32)

    # MET-PET (SUV).
    pet_table = dict(gm=1.35, wm=0.85, csf=0.30, bone=0.50, marrow=draw.marrow_suv, fat=0.40,
                     soft=1.00, dura=0.80, vessel=1.00, eye=0.30, lens=0.30)  # fmt: skip
    pet_table = {k: v * float(1.0 + rng.normal(0.0, 0.03)) for k, v in pet_table.items()}
    pet = sum((tissue[c] * pet_table[c] for c in pet_table), np.zeros(grid.shape, np.float32))
    pet = pet + skin * np.float32(draw.scalp_suv - pet_table["soft"])
    for kind, gland in glands.items():
        pet = pet + gland * np.float32(draw.gland_suv[kind])
    x_axis = grid.axes()[2]
    side = np.sign(float(base.centre_template_mm[0]))
    contralateral = t.brain_mask & (t.csf < 0.5) & (x_axis * side < -5.0)
    reference = float(pet[contralateral].mean())
    pet = pet * normal_w + ind["cav"] * 0.25 + ind["ed"] * (pet * 0.95)
    pet = np.where(margin, np.float32(draw.margin_tbr * reference), pet)
    pet = np.where(infiltrative, draw.infiltrative_tbr * reference * (1.0 + 0.08 * het), pet)
    pet = np.where(nodule, draw.nodule_tbr * reference * (1.0 + 0.10 * het), pet)
    pet = ndimage.gaussian_filter(pet.astype(np.float32), _PET_FWHM_MM / 2.3548 / sp)
    images["PET"] = np.asarray(np.clip(pet, 0.0, None), dtype=np.float32)

    # CT (HU).
    air = np.clip(1.0 - sum(tissue.values(), np.zeros(grid.shape, np.float32)), 0.0, 1.0)
    hu = sum((tissue[c] * np.float32(_HU[c]) for c in tissue), air * np.float32(_HU["air"]))
    hu = hu * normal_w + ind["cav"] * _HU["fluid"] + ind["ed"] * _HU["ed"] + ind["et"] * _HU["et"]
    images["CT"] = np.asarray(hu, dtype=np.float32)

    # CTV on the simulation grid.
    brain_img = grid.to_image(t.brain_mask.astype(np.uint8))
    ctv = derive_ctv(
        brain_img,
        cavity=grid.to_image(cavity.astype(np.uint8)),
        residual_enhancement=grid.to_image(nodule.astype(np.uint8)) if nodule.any() else None,
    ).ctv
    ctv_arr = sitk.GetArrayFromImage(ctv).astype(np.uint8)

    ttr, ttr_event, os_days, os_event, lp_ttr, lp_os = _outcome(
        rng_stream(seed, _STREAM_OUTCOME), pre.clinical, draw.residual_present, residual_ml
    )
    clinical = PostopClinical(
        seed=seed,
        age_years=float(pre.clinical.age_years),
        sex=pre.clinical.sex,
        weight_kg=pre.clinical.weight_kg,
        mgmt_methylated=pre.clinical.mgmt_methylated,
        residual_present=draw.residual_present,
        residual_ml=residual_ml,
        cavity_ml=cavity_ml,
        ttr_days=ttr,
        ttr_event=ttr_event,
        os_days=os_days,
        os_event=os_event,
        lp_ttr=lp_ttr,
        lp_os=lp_os,
    )
    return _PostopClean(
        seed=seed,
        size=size,
        grid=grid,
        images=images,
        labels=labels,
        residual=residual,
        margin=margin,
        ctv=ctv_arr,
        brain_mask=t.brain_mask,
        reference_suv=reference,
        contralateral=contralateral,
        preop=pre.clinical,
        clinical=clinical,
    )


#: The old private name (tests and benchmarks import it).
_postop_clean = postop_clean


def simulate_postop(seed: int, size: str = "small", *, augment: bool = True) -> PostopSubject:
    """Simulate one post-operative glioblastoma subject in template space (no DICOM).

    Parameters
    ----------
    seed : int
        Non-negative seed; the pre-operative subject of the same seed is the starting point.
    size : {"small", "full"}, optional
        ``"small"``: 2 mm grid (fast); ``"full"``: 1 mm grid.
    augment : bool, optional
        If True (default) MR images get a bias field and Rician noise and the PET Gaussian
        noise; anatomy, labels and outcome are identical either way.

    Returns
    -------
    PostopSubject
        Images, labels, residual, CTV, brain mask and clinical outcome.

    Raises
    ------
    PhantomError
        If the seed or size is invalid.
    """
    clean = postop_clean(seed, size)
    grid = clean.grid
    images = {role: clean.images[role] for role in (*MR_ROLES, "PET")}
    if augment:
        augment_images(images, grid, rng_stream(seed, _STREAM_AUGMENT))
    return PostopSubject(
        seed=seed,
        size=size,
        t1=grid.to_image(images["T1"]),
        t1c=grid.to_image(images["T1c"]),
        t2=grid.to_image(images["T2"]),
        flair=grid.to_image(images["FLAIR"]),
        pet=grid.to_image(images["PET"]),
        labels=grid.to_image(clean.labels),
        residual=grid.to_image(clean.residual.astype(np.uint8)),
        ctv=grid.to_image(clean.ctv),
        brain_mask=grid.to_image(clean.brain_mask.astype(np.uint8)),
        clinical=clean.clinical,
    )
