# (SimpleITK ships no type information.)
"""Domain-randomised training data for tumour segmentation (SynthSeg-style, for glioblastoma).

A segmenter trained on one generator's intensities learns that generator, not the tumour. Here
every training sample is synthesised from a *label map* (tissue volume fractions of a full-head
anatomy, deformed per subject, with one or more tumours) with intensities drawn at random per
label and per channel, so that shape is the only thing the four channels share with a scanner
image. Following Billot et al. (SynthSeg, Medical Image Analysis 2023) and Hoopes et al.
(SynthStrip, NeuroImage 2022):

label map
    :func:`rgcds.phantom._variation.subject_anatomy` (scaling, diffeomorphic warp, ventricle
    size) plus :func:`rgcds.phantom._tumour.build_tumour` (irregular core, necrosis, oedema that
    spreads along white matter, mass effect) with randomised targets: whole tumour log-uniform
    1-150 cm3, irregularity 0.1-1.2 (multi-lobed), no necrosis in 20 %, a second and third
    focus in 15 %.
appearance, per channel
    a mean per label drawn uniformly in [0, 1] (any contrast ordering, including none a scanner
    makes; the tumour labels are kept apart from white matter in at least one channel), a
    per-label texture, a random bias field, gamma, Rician noise, blur, thick slices (1-6 mm
    along a random axis, box profile), motion-like ghosting in 20 %, and a random rigid pose
    (+-15 degrees) shared by the channels.

Samples are seeded: ``synth_sample(seed)`` is the same sample on every machine. The label
maps are the expensive part (seconds); :func:`randomise_appearance` re-draws only the
appearance, so a cached label map can serve many samples.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from rgcds.phantom._head import HEAD_CLASSES
from rgcds.phantom._template import FloatArray
from rgcds.phantom._tumour import (
    LABEL_ENHANCING,
    LABEL_NECROSIS,
    LABEL_OEDEMA,
    UInt8Array,
    build_tumour,
)
from rgcds.phantom._variation import subject_anatomy
from rgcds.phantom.clinical import BaselineDraw, draw_baseline
from rgcds.phantom.simulate import rician, rng_stream

#: The generator's version, recorded in the card of a model trained on it.
GENERATOR_VERSION = "rgcds-synth-1"
#: Channel order (what the 4-channel models read).
CHANNELS: tuple[str, ...] = ("T1", "T1c", "T2", "FLAIR")
#: Label-map classes: normal tissues, then the three tumour sub-regions.
CLASSES: tuple[str, ...] = ("gm", "wm", "csf", *HEAD_CLASSES, "ncr", "ed", "et")

_STREAM_ANATOMY = 61
_STREAM_TUMOUR = 62
_STREAM_APPEARANCE = 63
_MULTIFOCAL_P = 0.15
_LOBES = ("frontal", "temporal", "parietal", "occipital")


@dataclass(frozen=True, eq=False)
class LabelMap:
    """One subject's tissue fractions (float16 to keep caches small) and its truth.

    Attributes
    ----------
    fractions : numpy.ndarray
        ``(len(CLASSES), z, y, x)`` volume fractions.
    labels : numpy.ndarray
        BraTS labels (1 necrosis, 2 oedema, 3 enhancing), uint8.
    brain : numpy.ndarray
        Brain mask (tumour included).
    spacing : float
        Isotropic voxel size (mm).
    foci : int
        Number of tumours.
    """

    fractions: npt.NDArray[np.float16]
    labels: UInt8Array
    brain: np.ndarray
    spacing: float
    foci: int


@dataclass(frozen=True, eq=False)
class SynthSample:
    """A training sample: four channels, the truth and the brain mask (after the pose)."""

    channels: FloatArray  # (4, z, y, x), z-scored inside the brain
    labels: UInt8Array
    brain: np.ndarray
    parameters: dict[str, object]


def _tumour_draw(rng: np.random.Generator, volume_ml: float) -> BaselineDraw:
    """Tumour targets: the phantom's clinical draw with a wider range of shapes and sizes."""
    base = draw_baseline(rng)
    return dataclasses.replace(
        base,
        whole_tumour_ml=volume_ml,
        irregularity=float(rng.uniform(0.1, 1.2)),
        necrosis_fraction=0.0 if rng.random() < 0.2 else base.necrosis_fraction,
        oedema_fraction=float(np.clip(rng.uniform(0.2, 0.85), 0.0, 0.9)),
        lobe=str(rng.choice(_LOBES)),
        hemisphere=str(rng.choice(("left", "right"))),
    )


def label_map(seed: int, size: str = "small") -> LabelMap:
    """The label map of sample ``seed``: deformed full-head anatomy with one to three tumours."""
    anat, _ = subject_anatomy(seed, size, _STREAM_ANATOMY)
    rng = rng_stream(seed, _STREAM_TUMOUR)
    volume = float(math.exp(rng.uniform(math.log(1.0), math.log(150.0))))
    foci = 1 if rng.random() >= _MULTIFOCAL_P else int(rng.choice((2, 3)))
    tumour = build_tumour(anat, _tumour_draw(rng, volume), rng)
    labels = tumour.labels.copy()
    current = anat
    for _ in range(foci - 1):
        current = dataclasses.replace(current, gm=tumour.gm, wm=tumour.wm, csf=tumour.csf,
                                      brain_mask=tumour.brain_mask)
        extra = build_tumour(current, _tumour_draw(rng, float(rng.uniform(1.0, 20.0))), rng)
        # Precedence: enhancing over necrosis over oedema over background.
        order = {0: 0, LABEL_OEDEMA: 1, LABEL_NECROSIS: 2, LABEL_ENHANCING: 3}
        rank = np.vectorize(order.get, otypes=[np.int8])
        labels = np.where(rank(extra.labels) > rank(labels), extra.labels, labels)
        tumour = extra
    sigma = 0.6 / anat.grid.spacing
    soft = {k: ndimage.gaussian_filter((labels == v).astype(np.float32), sigma)
            for k, v in (("ncr", LABEL_NECROSIS), ("ed", LABEL_OEDEMA),
                         ("et", LABEL_ENHANCING))}
    normal_w = np.clip(1.0 - soft["ncr"] - soft["ed"] - soft["et"], 0.0, 1.0)
    tissue = {"gm": tumour.gm, "wm": tumour.wm, "csf": tumour.csf, **anat.head_tissues()}
    fractions = np.stack(
        [tissue[c] * normal_w for c in CLASSES[:-3]] + [soft["ncr"], soft["ed"], soft["et"]]
    ).astype(np.float16)
    brain = tumour.brain_mask | (labels > 0)
    return LabelMap(fractions, labels.astype(np.uint8), brain, anat.grid.spacing, foci)


def _means(rng: np.random.Generator) -> FloatArray:
    """Class means per channel, ``(4, len(CLASSES))``, with a visible tumour."""
    means = rng.uniform(0.0, 1.0, (len(CLASSES), len(CHANNELS))).T.astype(np.float32)
    wm = CLASSES.index("wm")
    for label in ("et", "ed"):
        k = CLASSES.index(label)
        if np.max(np.abs(means[:, k] - means[:, wm])) < 0.2:
            c = int(rng.integers(len(CHANNELS)))
            means[c, k] = float(np.clip(means[c, wm] + rng.choice((-1, 1)) * rng.uniform(0.2, 0.5),
                                        0.0, 1.2))
    return means


def _bias(rng: np.random.Generator, shape: tuple[int, ...]) -> FloatArray:
    coarse = rng.normal(0.0, rng.uniform(0.0, 0.3), (4, 4, 4)).astype(np.float32)
    field = ndimage.zoom(coarse, [s / 4 for s in shape], order=3, mode="nearest")
    return np.asarray(np.exp(field[: shape[0], : shape[1], : shape[2]]), dtype=np.float32)


def _thick(image: FloatArray, axis: int, factor: int) -> FloatArray:
    """Box-profile thick slices along ``axis`` (block mean), back on the grid (linear)."""
    if factor <= 1:
        return image
    n = image.shape[axis] // factor * factor
    moved = np.moveaxis(image, axis, 0)[:n]
    blocks = moved.reshape(n // factor, factor, *moved.shape[1:]).mean(axis=1)
    coords = (np.arange(moved.shape[0], dtype=np.float32) + 0.5) / factor - 0.5
    back = ndimage.map_coordinates(
        blocks, np.meshgrid(coords, *[np.arange(s, dtype=np.float32) for s in blocks.shape[1:]],
                            indexing="ij"), order=1, mode="nearest")
    out = np.moveaxis(image, axis, 0).copy()
    out[:n] = back
    return np.moveaxis(out, 0, axis)


def _pose(rng: np.random.Generator, shape: tuple[int, ...]) -> list[FloatArray]:
    """Sampling coordinates of a random rigid pose (+-15 degrees, +-8 voxels) about the centre."""
    a = np.radians(rng.uniform(-15.0, 15.0, 3))
    cx, sx = math.cos(a[0]), math.sin(a[0])
    cy, sy = math.cos(a[1]), math.sin(a[1])
    cz, sz = math.cos(a[2]), math.sin(a[2])
    rot = (np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
           @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
           @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]))
    centre = (np.array(shape, dtype=np.float64) - 1) / 2
    shift = rng.uniform(-8.0, 8.0, 3)
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    src = rot @ (grid - centre[:, None]) + centre[:, None] + shift[:, None]
    return [c.reshape(shape).astype(np.float32) for c in src]


def randomise_appearance(
    maps: LabelMap, rng: np.random.Generator, *, pose: bool = True, normalise: bool = True
) -> SynthSample:
    """One random appearance of a label map: four channels, labels and brain after the pose.

    ``normalise``: z-score each channel inside the brain (else the raw, non-negative signal).
    """
    shape = maps.labels.shape
    means = _means(rng)
    fractions = maps.fractions.astype(np.float32)
    texture = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32),
                                      rng.uniform(0.5, 1.5))
    texture /= max(float(texture.std()), 1e-6)
    params: dict[str, object] = {"foci": maps.foci}
    coords = _pose(rng, shape) if pose else None
    channels = []
    for c in range(len(CHANNELS)):
        img = np.tensordot(means[c], fractions, axes=1)
        img = img * (1.0 + rng.uniform(0.0, 0.08) * texture)
        img = img * _bias(rng, shape)
        gamma = float(np.exp(rng.normal(0.0, 0.25)))
        img = np.clip(img, 0.0, None) ** gamma
        img = ndimage.gaussian_filter(img, rng.uniform(0.0, 0.8))
        if rng.random() < 0.6:
            thickness_mm = float(rng.uniform(2.0, 6.0))
            img = _thick(img, int(rng.integers(3)), max(1, round(thickness_mm / maps.spacing)))
        if rng.random() < 0.2:
            axis = int(rng.integers(3))
            img = img + rng.uniform(0.05, 0.2) * np.roll(img, int(rng.integers(8, 20)), axis)
        img = rician(rng, img.astype(np.float32), float(rng.uniform(0.0, 0.05)))
        if coords is not None:
            img = ndimage.map_coordinates(img, coords, order=1, mode="constant", cval=0.0)
        channels.append(img.astype(np.float32))
    labels, brain = maps.labels, maps.brain
    if coords is not None:
        labels = ndimage.map_coordinates(labels, coords, order=0, mode="constant").astype(np.uint8)
        brain = ndimage.map_coordinates(brain.astype(np.uint8), coords, order=0,
                                        mode="constant") > 0
    stacked = np.stack(channels)
    inside = brain if brain.any() else np.ones(shape, bool)
    for c in range(len(CHANNELS) if normalise else 0):
        values = stacked[c][inside]
        stacked[c] = (stacked[c] - values.mean()) / max(float(values.std()), 1e-6)
    return SynthSample(stacked.astype(np.float32), labels, brain, params)


def synth_sample(
    seed: int, size: str = "small", *, pose: bool = True, normalise: bool = True
) -> SynthSample:
    """Sample ``seed``: its label map with a random appearance (both seeded by ``seed``)."""
    return randomise_appearance(label_map(seed, size), rng_stream(seed, _STREAM_APPEARANCE),
                                pose=pose, normalise=normalise)


__all__ = [
    "CHANNELS",
    "CLASSES",
    "GENERATOR_VERSION",
    "LabelMap",
    "SynthSample",
    "label_map",
    "randomise_appearance",
    "synth_sample",
]
