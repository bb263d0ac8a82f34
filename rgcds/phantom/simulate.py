# (SimpleITK ships no type information.)
"""Template-space simulation of one glioblastoma subject (no DICOM).

Signal model: each voxel is a mixture of tissue classes (grey matter, white matter, CSF,
bone, fat, soft tissue, and the three tumour sub-regions) with per-sequence class intensities
that reproduce the usual contrasts (MPRAGE T1: WM > GM > CSF, fat bright; T2 TSE: CSF
brightest, GM > WM, fat bright; FLAIR: CSF dark, GM > WM; [11C]methionine PET: cortex SUV
about 1.3, white matter about 0.85). Glioblastoma: enhancing rim bright on T1c and dark
necrosis; the tumour is hypo-/iso-intense on T1 without contrast; oedema is T2/FLAIR bright
and grades into normal tissue; necrosis is T2 bright and FLAIR intermediate; MET uptake is
high in enhancing tumour, raised in the non-enhancing tumour next to the core and low in
necrosis. Each subject gets ±3 % class-intensity jitter and a smooth 2 % tissue texture.

MR images are in arbitrary units with normal white matter near 1 (T1/T1c), PET in SUVbw
after a 5 mm FWHM point-spread blur.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import structlog
from scipy import ndimage

from rgcds.exceptions import RgcdsError
from rgcds.phantom._head import HEAD_CLASSES
from rgcds.phantom._template import SIZE_SPACING_MM, Anatomy, FloatArray, Grid
from rgcds.phantom._tumour import (
    LABEL_ENHANCING,
    LABEL_NECROSIS,
    LABEL_OEDEMA,
    TumourModel,
    UInt8Array,
    build_tumour,
)
from rgcds.phantom._variation import VariationDraw, subject_anatomy
from rgcds.phantom.clinical import (
    BaselineDraw,
    ClinicalVariables,
    TumourParameters,
    draw_baseline,
    draw_survival,
)

logger = structlog.get_logger(__name__)

#: Sequence roles in acquisition order.
MR_ROLES: tuple[str, ...] = ("T1", "T2", "FLAIR", "T1c")
ROLES: tuple[str, ...] = (*MR_ROLES, "PET")

#: Class intensities per sequence (MR: arbitrary units, WM ~ 1 on T1; PET: SUV).
_CLASS_INTENSITY: dict[str, dict[str, float]] = {
    #         gm    wm    csf   bone  fat   soft  ncr   ed    et
    "T1": dict(gm=0.66, wm=1.00, csf=0.16, bone=0.03, fat=1.30, soft=0.50,
               ncr=0.28, ed=0.72, et=0.62,
               dura=0.35, vessel=0.30, marrow=1.15, eye=0.18, lens=0.75),
    "T1c": dict(gm=0.68, wm=1.00, csf=0.17, bone=0.03, fat=1.30, soft=0.60,
                ncr=0.26, ed=0.74, et=1.60,
                dura=0.95, vessel=1.40, marrow=1.18, eye=0.19, lens=0.78),
    "T2": dict(gm=0.66, wm=0.44, csf=1.50, bone=0.03, fat=0.95, soft=0.45,
               ncr=1.35, ed=1.22, et=0.90,
               dura=0.25, vessel=0.08, marrow=0.85, eye=1.55, lens=0.30),
    "FLAIR": dict(gm=0.80, wm=0.58, csf=0.07, bone=0.03, fat=0.90, soft=0.50,
                  ncr=0.60, ed=1.50, et=1.10,
                  dura=0.35, vessel=0.10, marrow=0.80, eye=0.08, lens=0.35),
    "PET": dict(gm=1.35, wm=0.85, csf=0.30, bone=0.55, fat=0.40, soft=1.00,
                ncr=0.60, ed=0.90, et=4.00,
                dura=0.80, vessel=1.00, marrow=1.60, eye=0.30, lens=0.30),
}  # fmt: skip

_TISSUES: tuple[str, ...] = ("gm", "wm", "csf", *HEAD_CLASSES)
_PET_FWHM_MM = 5.0
#: Rician noise standard deviation relative to white matter, per MR sequence.
NOISE_FRACTION: dict[str, float] = {"T1": 0.025, "T1c": 0.025, "T2": 0.02, "FLAIR": 0.03}

_STREAM_CLINICAL = 1
_STREAM_TUMOUR = 2
_STREAM_OUTCOME = 3
_STREAM_APPEARANCE = 4
_STREAM_AUGMENT = 5
_STREAM_ANATOMY = 9


class PhantomError(RgcdsError, ValueError):
    """A phantom was requested with invalid parameters (for example an unknown size)."""


def rng_stream(seed: int, stream: int) -> np.random.Generator:
    """Return an independent, reproducible random generator for one part of a phantom.

    Parameters
    ----------
    seed : int
        The phantom seed (non-negative).
    stream : int
        Stream number (clinical, tumour, outcome, appearance, augmentation, DICOM, ...).

    Returns
    -------
    numpy.random.Generator
        A PCG64 generator.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, stream, 0x52474344]))


def check_args(seed: int, size: str) -> None:
    """Validate a seed and size.

    Raises
    ------
    PhantomError
        If the seed is negative or the size unknown.
    """
    if not isinstance(seed, int) or seed < 0:
        raise PhantomError(f"Phantom seed must be a non-negative integer, got {seed!r}.")
    if size not in SIZE_SPACING_MM:
        raise PhantomError(f"Unknown phantom size {size!r}; use one of {sorted(SIZE_SPACING_MM)}.")


@dataclass(frozen=True, eq=False)
class SubjectVolumes:
    """A simulated subject in template (MNI, LPS) space.

    Attributes
    ----------
    seed : int
        Phantom seed.
    size : str
        ``"small"`` (2 mm grid) or ``"full"`` (1 mm grid).
    t1, t1c, t2, flair : SimpleITK.Image
        MR images (float32, arbitrary units, white matter ~ 1 on T1).
    pet : SimpleITK.Image
        [11C]methionine uptake in SUVbw (float32), blurred by a 5 mm FWHM PSF.
    labels : SimpleITK.Image
        BraTS labels (uint8): 1 necrotic core, 2 oedema, 3 enhancing tumour.
    brain_mask : SimpleITK.Image
        Subject brain mask (uint8), after the mass effect, tumour included.
    gm, wm, csf : SimpleITK.Image
        Tissue volume fractions (float32) after the mass effect.
    clinical : ClinicalVariables
        Patient, markers, outcome and tumour parameters.
    """

    seed: int
    size: str
    t1: sitk.Image
    t1c: sitk.Image
    t2: sitk.Image
    flair: sitk.Image
    pet: sitk.Image
    labels: sitk.Image
    brain_mask: sitk.Image
    gm: sitk.Image
    wm: sitk.Image
    csf: sitk.Image
    clinical: ClinicalVariables


@dataclass(frozen=True, eq=False)
class CleanSubject:
    """Noise-free template-space arrays (internal; what the DICOM writer resamples)."""

    seed: int
    size: str
    grid: Grid
    images: dict[str, FloatArray]  # role -> array; PET in SUV, PSF-blurred
    tumour: TumourModel
    clinical: ClinicalVariables
    anatomy: Anatomy  # the subject's (deformed) normal anatomy
    variation: VariationDraw

    @property
    def labels(self) -> UInt8Array:
        """BraTS labels."""
        return self.tumour.labels


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], sigma: float
) -> FloatArray:
    white = rng.standard_normal(shape, dtype=np.float32)
    smooth = ndimage.gaussian_filter(white, sigma=sigma)
    smooth /= max(float(smooth.std()), 1e-6)
    return np.asarray(smooth, dtype=np.float32)


def _render(
    grid: Grid, tumour: TumourModel, baseline: BaselineDraw, rng: np.random.Generator,
    anat: Anatomy,
) -> dict[str, FloatArray]:
    labels = tumour.labels
    tissue = {"gm": tumour.gm, "wm": tumour.wm, "csf": tumour.csf, **anat.head_tissues()}
    # Soft tumour indicators (partial volume at the label borders).
    sigma = 0.6 / grid.spacing
    soft_ind = {
        k: np.asarray(ndimage.gaussian_filter((labels == v).astype(np.float32), sigma))
        for k, v in (("ncr", LABEL_NECROSIS), ("ed", LABEL_OEDEMA), ("et", LABEL_ENHANCING))
    }
    tumour_total = soft_ind["ncr"] + soft_ind["ed"] + soft_ind["et"]
    normal_w = np.clip(1.0 - tumour_total, 0.0, 1.0)
    brain_frac = np.maximum(tumour.gm + tumour.wm + tumour.csf, 1e-3)
    prox = np.exp(-tumour.core_distance / 10.0).astype(np.float32)
    het = tumour.heterogeneity
    texture = 1.0 + 0.02 * _smooth_noise(rng, grid.shape, 1.0 / grid.spacing)

    images: dict[str, FloatArray] = {}
    for role in ROLES:
        table = dict(_CLASS_INTENSITY[role])
        for name in table:
            table[name] *= float(1.0 + rng.normal(0.0, 0.03))
        if role == "T1c":
            table["et"] = baseline.enhancement_ratio * table["wm"]
        if role == "PET":
            table["et"] = baseline.pet_suv_enhancing
        normal = sum((tissue[c] * table[c] for c in _TISSUES), np.zeros(grid.shape, np.float32))
        local_brain = (
            tumour.gm * table["gm"] + tumour.wm * table["wm"] + tumour.csf * table["csf"]
        ) / brain_frac
        if role == "PET":
            ed = local_brain + baseline.pet_suv_infiltration * np.exp(-tumour.core_distance / 6.0)
            et = table["et"] * (1.0 + 0.12 * het)
        else:
            ed = local_brain + (table["ed"] - local_brain) * (0.70 + 0.30 * prox)
            ed = ed * (1.0 + 0.05 * het)
            et = table["et"] * (1.0 + 0.10 * het)
        ncr = table["ncr"] * (1.0 + 0.08 * het)
        img = normal * normal_w + soft_ind["ncr"] * ncr + soft_ind["ed"] * ed + soft_ind["et"] * et
        if role == "PET":
            img = ndimage.gaussian_filter(img, sigma=_PET_FWHM_MM / 2.3548 / grid.spacing)
        else:
            img = img * texture
        images[role] = np.asarray(np.clip(img, 0.0, None), dtype=np.float32)
    return images


@functools.lru_cache(maxsize=2)
def simulate_clean(seed: int, size: str = "small") -> CleanSubject:
    """Simulate one subject without noise or bias field (cached per seed and size).

    Parameters
    ----------
    seed : int
        Phantom seed.
    size : {"small", "full"}
        Simulation grid: 2 mm or 1 mm.

    Returns
    -------
    CleanSubject
        Arrays on the simulation grid. Do not modify them (they are cached).
    """
    check_args(seed, size)
    anat, variation = subject_anatomy(seed, size, _STREAM_ANATOMY)
    baseline = draw_baseline(rng_stream(seed, _STREAM_CLINICAL))
    tumour = build_tumour(anat, baseline, rng_stream(seed, _STREAM_TUMOUR))
    vv = anat.grid.voxel_volume_ml
    counts = np.bincount(tumour.labels.ravel(), minlength=4)
    ncr, ed, et = (float(counts[k] * vv) for k in (LABEL_NECROSIS, LABEL_OEDEMA, LABEL_ENHANCING))
    days, event = draw_survival(rng_stream(seed, _STREAM_OUTCOME), baseline, ncr + et)
    params = TumourParameters(
        hemisphere=baseline.hemisphere,
        lobe=baseline.lobe,
        centre_template_mm=tuple(round(c, 2) for c in tumour.centre),  # type: ignore[arg-type]
        target_whole_tumour_ml=round(baseline.whole_tumour_ml, 3),
        necrosis_ml=round(ncr, 3),
        enhancing_ml=round(et, 3),
        oedema_ml=round(ed, 3),
        whole_tumour_ml=round(ncr + ed + et, 3),
        core_ml=round(ncr + et, 3),
        irregularity=round(baseline.irregularity, 4),
        mass_effect_mm=round(tumour.mass_effect_mm, 3),
        enhancement_ratio=round(baseline.enhancement_ratio, 4),
        pet_suv_enhancing=round(baseline.pet_suv_enhancing, 4),
        pet_suv_infiltration=round(baseline.pet_suv_infiltration, 4),
    )
    clinical = ClinicalVariables(
        seed=seed,
        age_years=baseline.age_years,
        sex=baseline.sex,
        weight_kg=baseline.weight_kg,
        height_m=baseline.height_m,
        idh_mutant=baseline.idh_mutant,
        mgmt_methylated=baseline.mgmt_methylated,
        egfr_amplified=baseline.egfr_amplified,
        overall_survival_days=days,
        death_observed=event,
        tumour=params,
    )
    images = _render(anat.grid, tumour, baseline, rng_stream(seed, _STREAM_APPEARANCE), anat)
    return CleanSubject(
        seed=seed, size=size, grid=anat.grid, images=images, tumour=tumour, clinical=clinical,
        anatomy=anat, variation=variation,
    )


def bias_field(
    rng: np.random.Generator, points: tuple[FloatArray, FloatArray, FloatArray], amplitude: float
) -> FloatArray:
    """Smooth multiplicative bias field: exp of a random quadratic polynomial of position.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random stream.
    points : tuple of numpy.ndarray
        Broadcastable physical ``(z, y, x)`` coordinates in mm.
    amplitude : float
        Standard deviation of each polynomial coefficient (log scale, per 100 mm).

    Returns
    -------
    numpy.ndarray
        Field with values around 1 (clipped to 0.7-1.3).
    """
    z, y, x = (np.asarray(p, dtype=np.float32) / 100.0 for p in points)
    c = rng.normal(0.0, amplitude, 9)
    log_b = (
        c[0] * x + c[1] * y + c[2] * z
        + c[3] * x * x + c[4] * y * y + c[5] * z * z
        + c[6] * x * y + c[7] * y * z + c[8] * x * z
    )  # fmt: skip
    return np.asarray(np.clip(np.exp(log_b), 0.7, 1.3), dtype=np.float32)


def rician(rng: np.random.Generator, signal: FloatArray, sigma: float) -> FloatArray:
    """Return a Rician-distributed magnitude image of ``signal`` with noise ``sigma``."""
    real = signal + rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    imag = rng.normal(0.0, sigma, signal.shape).astype(np.float32)
    return np.asarray(np.sqrt(real * real + imag * imag), dtype=np.float32)


def augment_images(
    images: dict[str, FloatArray], grid: Grid, rng: np.random.Generator
) -> None:
    """Add, in place, a bias field and Rician noise to the MR images and noise to the PET.

    Shared by :func:`simulate_subject` and :func:`rgcds.phantom.postop.simulate_postop`
    (each with its own random stream).
    """
    axes = grid.axes()
    for role in MR_ROLES:
        biased = images[role] * bias_field(rng, axes, 0.08)
        images[role] = rician(rng, biased, NOISE_FRACTION[role])
    pet = images["PET"]
    noisy = pet + rng.normal(0.0, 1.0, pet.shape).astype(np.float32) * 0.06 * np.sqrt(pet)
    images["PET"] = np.asarray(np.clip(noisy, 0.0, None), dtype=np.float32)


def simulate_subject(seed: int, size: str = "small", *, augment: bool = True) -> SubjectVolumes:
    """Simulate one glioblastoma subject in template space, without writing DICOM.

    Parameters
    ----------
    seed : int
        Non-negative seed; the same seed gives the same subject.
    size : {"small", "full"}, optional
        ``"small"``: 2 mm grid (fast, for tests and cohorts); ``"full"``: 1 mm grid.
    augment : bool, optional
        If True (default) the MR images get a smooth multiplicative bias field and Rician
        noise, and the PET Gaussian noise. If False they are the clean signal model; anatomy,
        tumour, mass effect and clinical variables are identical either way.

    Returns
    -------
    SubjectVolumes
        Images, labels, masks and clinical variables.

    Raises
    ------
    PhantomError
        If the seed or size is invalid.
    """
    clean = simulate_clean(seed, size)
    grid = clean.grid
    images = dict(clean.images)
    if augment:
        augment_images(images, grid, rng_stream(seed, _STREAM_AUGMENT))
    t = clean.tumour
    return SubjectVolumes(
        seed=seed,
        size=size,
        t1=grid.to_image(images["T1"]),
        t1c=grid.to_image(images["T1c"]),
        t2=grid.to_image(images["T2"]),
        flair=grid.to_image(images["FLAIR"]),
        pet=grid.to_image(images["PET"]),
        labels=grid.to_image(t.labels),
        brain_mask=grid.to_image(t.brain_mask.astype(np.uint8)),
        gm=grid.to_image(t.gm),
        wm=grid.to_image(t.wm),
        csf=grid.to_image(t.csf),
        clinical=clean.clinical,
    )


def suv_decay(seconds: float, half_life_s: float) -> float:
    """Return the decay factor ``exp(-ln 2 * t / T1/2)``."""
    return math.exp(-math.log(2.0) * seconds / half_life_s)
