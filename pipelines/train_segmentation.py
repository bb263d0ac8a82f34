"""Train the reference tumour segmentation model (a small 3D U-Net) and ship it as ONNX.

Data come in the public BraTS layout: a folder of cases, each a folder ``<case>/`` holding
``<case>_t1.nii.gz``, ``<case>_t1ce.nii.gz``, ``<case>_t2.nii.gz``, ``<case>_flair.nii.gz``
and ``<case>_seg.nii.gz`` (labels 1 necrotic core, 2 oedema, 4 enhancing tumour). A case may
also hold ``<case>_brainmask.nii.gz`` (not part of BraTS); without it, the voxels where any
image is non-zero are the brain, which is right for BraTS's skull-stripped images.

``--phantoms N`` first writes N synthetic subjects from :func:`rgcds.phantom.simulate_subject`
(seeds 0..N-1) into that layout, and ``--test-phantoms M`` writes M held-out subjects
(seeds 100000..) the same way; training then reads the layout, so real BraTS data and
phantoms share every line after the writer.

``--kind postop`` (or ``--postop``) trains the post-operative model ``postop-unet-phantom``
instead: phantoms come from :func:`rgcds.phantom.simulate_postop` and the labels are
1 resection cavity, 2 oedema (FLAIR hyperintensity), 3 residual enhancing tumour (written as
4 in the label file, as BraTS writes enhancing tumour). About half of the post-operative
phantoms have no residual tumour; their label 3 is empty, which sampling and metrics allow
for. Inputs, normalisation, network, augmentation and training loop are the same; only the
phantom writer, the card text and segments, and the validation metrics differ (per label
Dice for cavity, oedema and whole lesion; residual Dice on the cases that have a residual,
and residual detection on all).

Everything is resampled to 2 mm isotropic in LPS orientation (array order z, y, x), and each
channel is z-score normalised inside the brain mask, as the card states. Training samples
64^3 patches (two thirds centred on tumour) with broad augmentation: rotations, scaling,
flips on all axes, per-channel bias field, gamma, intensity scale and shift, Gaussian noise,
blur, resampling to thick slices, and skull stripping at random (phantoms carry a skull).

Progress goes to ``<workdir>/train.log`` as JSON lines; checkpoints and partial metrics are
saved every few minutes, and ``--resume`` continues from the last one. At the end the best
checkpoint is exported to ONNX (opset 17, dynamic batch and spatial axes), its card is
written with the sha256, and Dice (WT, TC, ET) on the held-out cases, measured through
:func:`rgcds.inference.segment` with ONNX Runtime, goes into the card's validation metrics.

Example (phantoms, ~40 min on 2 CPU cores)::

    python -m pipelines.train_segmentation --phantoms 120 --test-phantoms 24 \\
        --data-dir /tmp/rgcds-train/data --workdir /tmp/rgcds-train --minutes 35

Post-operative model (writes ``models/postop-unet-phantom``)::

    python -m pipelines.train_segmentation --postop --phantoms 60 --test-phantoms 16 \\
        --data-dir /tmp/rgcds-postop/data --workdir /tmp/rgcds-postop --minutes 30

BraTS 2021 (see docs/models.md)::

    python -m pipelines.train_segmentation --data-dir /data/BraTS2021_Training_Data \\
        --test-dir /data/BraTS2021_holdout --workdir /data/run1 --minutes 600
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as _sitk
import yaml

sitk: Any = _sitk  # SimpleITK's functions are untyped

SPACING_MM = 2.0
CHANNELS: tuple[str, ...] = ("t1", "t1ce", "t2", "flair")
CARD_CHANNELS: tuple[str, ...] = ("T1", "T1c", "T2", "FLAIR")
MODEL_ID = "brats-unet-phantom"
TEST_SEED_BASE = 100_000
DEV_SEED_BASE = 50_000
PATCH = 48
#: Model id of the post-operative model (``--kind postop``).
POSTOP_MODEL_ID = "postop-unet-phantom"
#: BraTS file labels -> model labels (ET is 4 in BraTS files up to 2021, 3 in the model).
_BRATS_TO_MODEL = np.array([0, 1, 2, 3, 3], dtype=np.uint8)


# --------------------------------------------------------------------------------------
# BraTS layout: writing phantoms, reading cases


def _as_image(value: Any, reference: sitk.Image | None) -> sitk.Image:
    if isinstance(value, sitk.Image):
        return value
    array = np.asarray(value)
    image = sitk.GetImageFromArray(array)
    if reference is not None:
        image.CopyInformation(reference)
    else:
        image.SetSpacing((SPACING_MM,) * 3)
    return image


def _synth_subject(seed: int, size: str) -> Any:
    """A domain-randomised sample (:mod:`rgcds.phantom.synth`) shaped like a phantom subject."""
    from types import SimpleNamespace

    from rgcds.phantom.synth import CHANNELS as SYNTH_CHANNELS
    from rgcds.phantom.synth import synth_sample

    sample = synth_sample(seed, size, normalise=False)
    spacing = 2.0 if size == "small" else 1.0

    def image(array: np.ndarray) -> sitk.Image:
        out = sitk.GetImageFromArray(np.ascontiguousarray(array))
        out.SetSpacing((spacing,) * 3)
        return out

    named = dict(zip(SYNTH_CHANNELS, sample.channels, strict=True))
    return SimpleNamespace(
        t1=image(named["T1"]), t1c=image(named["T1c"]), t2=image(named["T2"]),
        flair=image(named["FLAIR"]), labels=image(sample.labels),
        brain_mask=image(sample.brain.astype(np.uint8)),
    )


def _simulate(kind: str, seed: int, size: str) -> Any:
    """The phantom subject of ``seed``: pre-operative, post-operative or domain-randomised."""
    if kind == "synth":
        return _synth_subject(seed, size)
    if kind == "postop":
        from rgcds.phantom import simulate_postop

        return simulate_postop(seed, size=size)
    try:
        from rgcds.phantom import simulate_subject
    except ImportError:  # the package may not re-export it yet
        from rgcds.phantom.simulate import simulate_subject
    return simulate_subject(seed, size=size)


def write_phantom_case(seed: int, root: Path, size: str = "small", kind: str = "preop") -> Path:
    """Simulate one phantom subject and write it as a BraTS-layout case.

    Parameters
    ----------
    seed
        The phantom's seed; the case is named ``phantom-<seed>``.
    root
        The data folder.
    size
        Phantom size (``small``: ~2 mm).
    kind
        ``preop`` (:func:`rgcds.phantom.simulate_subject`: 1 necrotic core, 2 oedema,
        3 enhancing tumour) or ``postop`` (:func:`rgcds.phantom.simulate_postop`: 1 resection
        cavity, 2 oedema, 3 residual enhancing tumour, often empty). Label 3 is written as 4.

    Returns
    -------
    Path
        The case folder.
    """
    case = f"phantom-{seed:06d}"
    folder = root / case
    if (folder / f"{case}_seg.nii.gz").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    subject = _simulate(kind, seed, size)
    t1 = _as_image(subject.t1, None)
    images = {"t1": t1, "t1ce": subject.t1c, "t2": subject.t2, "flair": subject.flair}
    for name, value in images.items():
        image = sitk.Cast(_as_image(value, t1), sitk.sitkFloat32)
        sitk.WriteImage(image, str(folder / f"{case}_{name}.nii.gz"))
    labels = sitk.GetArrayFromImage(_as_image(subject.labels, t1)).astype(np.uint8)
    brats = np.where(labels == 3, 4, labels).astype(np.uint8)  # BraTS files use 4 for ET
    seg = sitk.GetImageFromArray(brats)
    seg.CopyInformation(t1)
    mask = sitk.GetImageFromArray(
        sitk.GetArrayFromImage(_as_image(subject.brain_mask, t1)).astype(np.uint8)
    )
    mask.CopyInformation(t1)
    # The label file last: its presence marks a complete case.
    sitk.WriteImage(mask, str(folder / f"{case}_brainmask.nii.gz"))
    sitk.WriteImage(seg, str(folder / f"{case}_seg.nii.gz"))
    return folder


def _to_model_grid(image: sitk.Image, is_label: bool) -> sitk.Image:
    image = sitk.DICOMOrient(image, "LPS")
    spacing = image.GetSpacing()
    if all(abs(s - SPACING_MM) < 1e-3 for s in spacing):
        return image
    size = [max(1, round(n * s / SPACING_MM)) for n, s in zip(image.GetSize(), spacing,
                                                                  strict=True)]
    if not is_label:
        sigma = [max(0.0, (SPACING_MM / s - 1.0) * s / 2.0) for s in spacing]
        if any(v > 0 for v in sigma):
            image = sitk.SmoothingRecursiveGaussian(image, sigma)
    return sitk.Resample(
        image, size, sitk.Transform(), sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear,
        image.GetOrigin(), (SPACING_MM,) * 3, image.GetDirection(), 0.0,
        image.GetPixelID(),
    )


@dataclass(frozen=True)
class Case:
    """One case on the model grid: images (4, Z, Y, X), labels (model values), brain mask."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    brain: np.ndarray


def read_case(folder: Path) -> Case:
    """Read a BraTS-layout case onto the 2 mm LPS grid, cropped to the head."""
    name = folder.name
    arrays = []
    reference = None
    for channel in CHANNELS:
        image = sitk.Cast(sitk.ReadImage(str(folder / f"{name}_{channel}.nii.gz")),
                          sitk.sitkFloat32)
        image = _to_model_grid(image, is_label=False)
        reference = reference or image
        arrays.append(sitk.GetArrayFromImage(image))
    images = np.stack(arrays).astype(np.float32)
    np.maximum(images, 0.0, out=images)
    seg = _to_model_grid(sitk.ReadImage(str(folder / f"{name}_seg.nii.gz")), is_label=True)
    labels = _BRATS_TO_MODEL[np.clip(sitk.GetArrayFromImage(seg), 0, 4)]
    mask_file = folder / f"{name}_brainmask.nii.gz"
    if mask_file.is_file():
        brain = sitk.GetArrayFromImage(
            _to_model_grid(sitk.ReadImage(str(mask_file)), is_label=True)) > 0
    else:
        brain = np.any(images > 0, axis=0)
    head = np.any(images > 0, axis=0) | brain
    idx = np.argwhere(head)
    lo = np.maximum(idx.min(axis=0) - 2, 0)
    hi = idx.max(axis=0) + 3
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    return Case(name, np.ascontiguousarray(images[(slice(None), *box)]),
                np.ascontiguousarray(labels[box]), np.ascontiguousarray(brain[box]))


def list_cases(root: Path) -> list[Path]:
    """Case folders of a BraTS-layout data folder (those with a ``_seg`` file)."""
    return sorted(p for p in root.iterdir() if (p / f"{p.name}_seg.nii.gz").is_file())


# --------------------------------------------------------------------------------------
# Network


def build_unet(in_channels: int = 4, n_classes: int = 4, base: int = 16, levels: int = 4) -> Any:
    """A small 3D U-Net: ``levels`` resolutions, ``base * 2**i`` channels, instance norm."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.InstanceNorm3d(cout, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(cout, cout, 3, padding=1, bias=False),
            nn.InstanceNorm3d(cout, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        )

    class UNet3D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = [min(base * 2**i, 320) for i in range(levels)]
            self.down = nn.ModuleList(
                [block(in_channels, widths[0])]
                + [block(widths[i - 1], widths[i], stride=2) for i in range(1, levels)]
            )
            self.up = nn.ModuleList(
                [nn.ConvTranspose3d(widths[i], widths[i - 1], 2, stride=2)
                 for i in range(levels - 1, 0, -1)]
            )
            self.dec = nn.ModuleList(
                [block(2 * widths[i - 1], widths[i - 1]) for i in range(levels - 1, 0, -1)]
            )
            self.head = nn.Conv3d(widths[0], n_classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for layer in self.down:
                x = layer(x)
                skips.append(x)
            skips.pop()
            for up, dec in zip(self.up, self.dec, strict=True):
                x = dec(torch.cat([skips.pop(), up(x)], dim=1))
            out: torch.Tensor = self.head(x)
            return out

    return UNet3D()


# --------------------------------------------------------------------------------------
# Sampling and augmentation


class PatchSampler:
    """Draws augmented training patches from cases held in memory."""

    def __init__(self, cases: list[Case], rng: np.random.Generator, patch: int = PATCH,
                 tumour_fraction: float = 0.67, strip_fraction: float = 0.3) -> None:
        import torch

        self.torch = torch
        self.cases = cases
        self.rng = rng
        self.patch = patch
        self.tumour_fraction = tumour_fraction
        self.strip_fraction = strip_fraction
        self.stacks = []
        self.fg: list[list[np.ndarray]] = []
        self.samples: list[tuple[np.ndarray, np.ndarray]] = []
        for case in cases:
            stack = np.concatenate(
                [case.images, case.brain[None].astype(np.float32),
                 case.labels[None].astype(np.float32)]
            )
            self.stacks.append(torch.from_numpy(stack)[None])
            self.fg.append([np.argwhere(case.labels == k) for k in (1, 2, 3)])
            coords = np.argwhere(case.brain)
            pick = coords[rng.choice(len(coords), size=min(20000, len(coords)), replace=False)]
            self.samples.append((pick, case.images[:, pick[:, 0], pick[:, 1], pick[:, 2]]))

    def _bias(self, coords: np.ndarray, shape: tuple[int, ...], coef: np.ndarray) -> np.ndarray:
        # coords (..., 3) voxel -> [-1, 1]; quadratic polynomial field, exp of it.
        u = [2.0 * coords[..., i] / max(shape[i] - 1, 1) - 1.0 for i in range(3)]
        terms = [u[0], u[1], u[2], u[0] * u[1], u[0] * u[2], u[1] * u[2],
                 u[0] ** 2, u[1] ** 2, u[2] ** 2]
        field = sum(c * t for c, t in zip(coef, terms, strict=True))
        return np.exp(np.asarray(field, dtype=np.float32))

    def draw(self) -> tuple[np.ndarray, np.ndarray]:
        """One augmented patch: image ``(4, P, P, P)`` float32, labels ``(P, P, P)`` int64."""
        torch = self.torch
        rng = self.rng
        i = int(rng.integers(len(self.cases)))
        case = self.cases[i]
        shape = case.labels.shape
        present = [k for k in range(3) if len(self.fg[i][k])]
        if present and rng.random() < self.tumour_fraction:
            k = present[int(rng.integers(len(present)))]
            centre = self.fg[i][k][int(rng.integers(len(self.fg[i][k])))].astype(np.float64)
            centre += rng.uniform(-12, 12, 3)
        elif rng.random() < 0.3:  # anywhere in the head's box: background and skull too
            centre = rng.uniform(0, 1, 3) * (np.array(shape, dtype=np.float64) - 1)
        else:
            brain = self.samples[i][0]
            centre = brain[int(rng.integers(len(brain)))].astype(np.float64)
        # spatial: rotation (+-15 deg per axis), scale 0.85-1.2, flips on every axis
        angles = np.deg2rad(rng.uniform(-15, 15, 3)) if rng.random() < 0.5 else np.zeros(3)
        rot = _rotation(angles)
        scale = rng.uniform(0.85, 1.2) if rng.random() < 0.4 else 1.0
        flips = rng.random(3) < 0.5
        p = self.patch
        axis = np.arange(p, dtype=np.float64) - (p - 1) / 2.0
        grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)  # (p,p,p,3) zyx
        grid = grid * np.where(flips, -1.0, 1.0)
        src = grid @ (rot * scale).T + centre  # voxel coords zyx
        norm = np.empty_like(src)
        for a in range(3):
            norm[..., a] = 2.0 * src[..., a] / max(shape[a] - 1, 1) - 1.0
        g = torch.from_numpy(norm[..., ::-1].copy()).float()[None]  # grid_sample wants xyz
        stack = self.stacks[i]
        sampled = torch.nn.functional.grid_sample(
            stack[:, :5], g, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        lab = torch.nn.functional.grid_sample(
            stack[:, 5:], g, mode="nearest", padding_mode="zeros", align_corners=True)[0, 0]
        img = sampled[:4].numpy().copy()
        brain_patch = sampled[4].numpy() > 0.5
        labels = lab.numpy().astype(np.int64)

        s_coords, s_values = self.samples[i]
        s_values = s_values.copy()
        strip = rng.random() < self.strip_fraction
        if strip and rng.random() < 0.5:  # a brain extractor's mask is a voxel off either way
            from scipy import ndimage

            morph = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
            brain_patch = morph(brain_patch)
        for c in range(4):
            vals, ref = img[c], s_values[c]
            if rng.random() < 0.5:  # bias field
                coef = rng.normal(0, 0.12, 9)
                vals = vals * self._bias(src, shape, coef)
                ref = ref * self._bias(s_coords.astype(np.float64), shape, coef)
            if rng.random() < 0.4:  # gamma
                gamma = math.exp(rng.uniform(math.log(0.7), math.log(1.5)))
                top = max(float(np.percentile(ref, 99.5)), 1e-6)
                vals = top * np.power(np.clip(vals / top, 0, None), gamma)
                ref = top * np.power(np.clip(ref / top, 0, None), gamma)
            if strip:
                vals = np.where(brain_patch, vals, 0.0)
            mean, std = float(ref.mean()), max(float(ref.std()), 1e-6)
            vals = (vals - mean) / std
            if rng.random() < 0.3:  # residual scale and shift (mask / scanner differences)
                vals = vals * rng.uniform(0.85, 1.15) + rng.uniform(-0.15, 0.15)
            img[c] = vals
        if rng.random() < 0.2:  # blur
            from scipy.ndimage import gaussian_filter

            sigma = rng.uniform(0.4, 1.1)
            for c in range(4):
                img[c] = gaussian_filter(img[c], sigma)
        if rng.random() < 0.2:  # thick slices along one axis: down then up
            ax = int(rng.integers(3))
            factor = rng.uniform(1.5, 3.0)
            t = torch.from_numpy(img)[None]
            size = [p, p, p]
            size[ax] = max(4, round(p / factor))
            low = torch.nn.functional.interpolate(t, size=size, mode="trilinear")
            img = torch.nn.functional.interpolate(low, size=(p, p, p), mode="trilinear")[0].numpy()
        if rng.random() < 0.3:  # noise
            img = img + rng.normal(0, rng.uniform(0.02, 0.15), img.shape).astype(np.float32)
        return np.ascontiguousarray(img, dtype=np.float32), labels


def _rotation(angles: np.ndarray) -> np.ndarray:
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return np.asarray(rx @ ry @ rz)


# --------------------------------------------------------------------------------------
# Evaluation


#: The card's ``outside`` normalisation (``--outside``): kept or zero outside the brain.
OUTSIDE = {"value": "keep"}


def normalise_case(case: Case) -> np.ndarray:
    """Z-score each channel inside the brain mask (as the card's normalisation)."""
    from rgcds.inference.card import Normalisation
    from rgcds.inference.segment import normalise

    outside: Any = OUTSIDE["value"]
    spec = Normalisation(method="zscore", mask="brain", outside=outside)
    return normalise(case.images, spec, case.brain)


def torch_predict(model: Any, case: Case, patch: int = PATCH) -> np.ndarray:
    """Sliding-window prediction with the torch model, as ONNX inference will run it.

    The same patch size as in training matters: instance normalisation sees patch
    statistics, so a whole-volume pass would not predict what the exported model does.
    """
    import torch

    from rgcds.inference.sliding_window import sliding_window_inference

    def predictor(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model(torch.from_numpy(batch))
            probs: np.ndarray = torch.softmax(logits, dim=1).numpy()
        return probs

    probs = sliding_window_inference(normalise_case(case), predictor, (patch, patch, patch), 4,
                                     overlap=0.25, batch_size=4)
    labels: np.ndarray = np.argmax(probs, axis=0)
    return labels.astype(np.uint8)


def summarise(scores: list[dict[str, float]]) -> dict[str, float]:
    """Mean (and standard deviation) of per-case Dice."""
    out: dict[str, float] = {}
    for key in ("WT", "TC", "ET"):
        values = np.array([s[key] for s in scores])
        out[f"dice_{key.lower()}_mean"] = round(float(values.mean()), 4)
        out[f"dice_{key.lower()}_std"] = round(float(values.std()), 4)
    return out


#: Predicted residual enhancing tumour counts as "residual present" from this volume on.
RESIDUAL_DETECTION_ML = 0.1


def postop_scores(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Per-case scores of a post-operative label map against the reference.

    Parameters
    ----------
    prediction, reference
        Label maps on the 2 mm grid: 1 resection cavity, 2 oedema, 3 residual enhancing.

    Returns
    -------
    dict
        Dice of ``cavity`` (1), ``oedema`` (2), ``residual`` (3) and ``whole`` (1+2+3), and
        the residual volumes in ml (``residual_ref_ml``, ``residual_pred_ml``). The residual
        Dice is 1.0 when both are empty; :func:`summarise_postop` leaves those cases out.
    """
    from rgcds.inference.metrics import dice

    ml = SPACING_MM**3 / 1000.0
    return {
        "cavity": dice(prediction == 1, reference == 1),
        "oedema": dice(prediction == 2, reference == 2),
        "residual": dice(prediction == 3, reference == 3),
        "whole": dice(prediction > 0, reference > 0),
        "residual_ref_ml": float(np.count_nonzero(reference == 3)) * ml,
        "residual_pred_ml": float(np.count_nonzero(prediction == 3)) * ml,
    }


def summarise_postop(scores: list[dict[str, float]]) -> dict[str, float]:
    """Summary of :func:`postop_scores` over cases, as the card's validation metrics.

    Dice of cavity, oedema and whole lesion: mean and standard deviation over all cases.
    Residual Dice: over the cases whose reference has a residual (``n_with_residual``).
    Residual detection (predicted residual of at least ``RESIDUAL_DETECTION_ML``):
    sensitivity on cases with a residual, specificity on cases without.
    """
    out: dict[str, float] = {}
    for key in ("cavity", "oedema", "whole"):
        values = np.array([s[key] for s in scores])
        out[f"dice_{key}_mean"] = round(float(values.mean()), 4)
        out[f"dice_{key}_std"] = round(float(values.std()), 4)
    with_residual = [s for s in scores if s["residual_ref_ml"] > 0]
    without = [s for s in scores if s["residual_ref_ml"] == 0]
    if with_residual:
        values = np.array([s["residual"] for s in with_residual])
        out["dice_residual_mean"] = round(float(values.mean()), 4)
        out["dice_residual_std"] = round(float(values.std()), 4)
        out["residual_sensitivity"] = round(float(np.mean(
            [s["residual_pred_ml"] >= RESIDUAL_DETECTION_ML for s in with_residual])), 4)
    if without:
        out["residual_specificity"] = round(float(np.mean(
            [s["residual_pred_ml"] < RESIDUAL_DETECTION_ML for s in without])), 4)
    out["n_with_residual"] = float(len(with_residual))
    out["n_without_residual"] = float(len(without))
    return out


def _brats_scores(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    from rgcds.inference.metrics import brats_dice

    return brats_dice(prediction, reference)


# --------------------------------------------------------------------------------------
# Export and card


def export_onnx(model: Any, path: Path, patch: int = PATCH) -> None:
    """Export to ONNX, opset 17, dynamic batch and spatial axes."""
    import torch

    model.eval()
    dummy = torch.zeros(1, 4, patch, patch, patch)
    axes = {0: "batch", 2: "z", 3: "y", 4: "x"}
    tmp = path.with_suffix(".onnx.tmp")
    torch.onnx.export(
        model, (dummy,), str(tmp), input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": axes, "logits": axes}, opset_version=17, dynamo=False,
    )
    import onnx

    proto = onnx.load(str(tmp))
    onnx.checker.check_model(proto)
    tmp.replace(path)


def _generator_version() -> str:
    from rgcds.phantom.synth import GENERATOR_VERSION

    return GENERATOR_VERSION


def card_dict(sha256: str, args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
    """The card of the model of ``args.kind`` (validation filled in later)."""
    kind: SegmentationKind = KINDS[getattr(args, "kind", "preop")]
    return {
        "id": kind.model_id,
        "version": "1.0.0",
        "name": kind.title,
        "task": "segmentation",
        "description": (
            f"A small 3D U-Net (base {args.base} channels, {args.levels} levels, instance "
            f"norm) that segments {kind.what} from T1, T1c, T2 and "
            "FLAIR at 2 mm isotropic. TRAINED ON SYNTHETIC DATA ONLY (rgcds.phantom), for "
            "demonstration and testing of the rgcds pipeline; NOT FOR PATIENTS."
        ),
        "research_use_only": True,
        "intended_use": (
            "Demonstration and software testing of rgcds on synthetic phantom studies. Not a "
            "medical device; not validated on patient data; must not be used for diagnosis, "
            "treatment planning or any decision about a patient."
        ),
        "training_data": (
            f"{extra['n_train']} synthetic {kind.subjects} phantoms from rgcds.phantom."
            f"{kind.simulator} (size 'small', seeds 0..{extra['n_train'] - 1}), written to "
            "and read from the BraTS layout; augmented with rotations, scaling, flips, bias "
            "field, gamma, intensity scale/shift, noise, blur, thick-slice resampling and "
            "random skull stripping. No patient data."
            + (f" Generator {_generator_version()}: every sample's intensities drawn at random "
               "per label and per channel (rgcds.phantom.synth)." if kind.simulator
               == "synth_sample" else "")
        ),
        "authors": ["rgcds developers"],
        "license": "Apache-2.0",
        "weights": {"file": "model.onnx", "format": "onnx", "sha256": sha256, "opset": 17},
        "inputs": {
            "tensor_name": "image",
            "channels": list(CARD_CHANNELS),
            "axis_order": "CZYX",
            "spacing_mm": [SPACING_MM] * 3,
            "orientation": "LPS",
            "normalisation": {"method": "zscore", "mask": "brain",
                              "outside": getattr(args, "outside", "keep")},
            "patch_size": [args.patch] * 3,
            "divisible_by": 2 ** (args.levels - 1),
        },
        "outputs": {
            "tensor_name": "logits",
            "mode": "softmax",
            "logits": True,
            "classes": [
                {"index": i, "label": i, "name": name}
                for i, name in enumerate(("background", *kind.classes))
            ],
            "segments": kind.segments,
        },
    }


SEGMENTS: list[dict[str, Any]] = [
    {
        "label": 1, "name": "Necrotic core",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "6574001", "scheme": "SCT", "meaning": "Necrosis"},
        "color_rgb": [255, 0, 0],
    },
    {
        "label": 2, "name": "Oedema",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "79654002", "scheme": "SCT", "meaning": "Edema"},
        "color_rgb": [0, 255, 0],
    },
    {
        "label": 3, "name": "Enhancing tumour",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "C113842", "scheme": "NCIt", "meaning": "Enhancing Lesion"},
        "color_rgb": [255, 255, 0],
    },
]


POSTOP_SEGMENTS: list[dict[str, Any]] = [
    {
        # No SNOMED CT concept for a post-surgical cavity is in the DICOM segmentation
        # context groups; "Body cavity" (CID 7192) is the nearest standard concept.
        "label": 1, "name": "Resection cavity",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "91806002", "scheme": "SCT", "meaning": "Body cavity"},
        "color_rgb": [0, 128, 255],
    },
    {
        "label": 2, "name": "Oedema",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "79654002", "scheme": "SCT", "meaning": "Edema"},
        "color_rgb": [0, 255, 0],
    },
    {
        "label": 3, "name": "Residual enhancing tumour",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "C113842", "scheme": "NCIt", "meaning": "Enhancing Lesion"},
        "color_rgb": [255, 255, 0],
    },
]


@dataclass(frozen=True)
class SegmentationKind:
    """What differs between the pre-operative and the post-operative model.

    Attributes
    ----------
    model_id
        The card's id (and default model folder name).
    title, what, subjects, simulator
        Card wording: name, what it segments, what the phantoms are, the simulator.
    classes
        Names of output classes 1..3.
    segments
        Coded segment definitions of labels 1..3.
    score
        Per-case scores of a prediction against a reference label map.
    summarise
        Per-case scores to the card's validation metrics.
    selection
        Keys of the summary whose mean chooses the best checkpoint on dev cases.
    notes
        The card's validation notes.
    """

    model_id: str
    title: str
    what: str
    subjects: str
    simulator: str
    classes: tuple[str, str, str]
    segments: list[dict[str, Any]]
    score: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    summarise: Callable[[list[dict[str, float]]], dict[str, float]]
    selection: tuple[str, ...]
    notes: str


_SYNTHETIC_NOTE = "Synthetic data: these figures say nothing about performance on patients."
_METHOD_NOTE = "sliding window (card patch size, overlap 0.5), no TTA, ONNX Runtime CPU."

KINDS: dict[str, SegmentationKind] = {
    "preop": SegmentationKind(
        model_id=MODEL_ID,
        title="BraTS-style 3D U-Net trained on synthetic phantoms",
        what="glioblastoma into necrotic core, oedema and enhancing tumour",
        subjects="glioblastoma",
        simulator="simulate_subject",
        classes=("necrotic core", "oedema", "enhancing tumour"),
        segments=SEGMENTS,
        score=_brats_scores,
        summarise=summarise,
        selection=("dice_wt_mean", "dice_tc_mean", "dice_et_mean"),
        notes=("Dice per case, mean and standard deviation; WT = labels 1+2+3, TC = 1+3, "
               f"ET = 3; {_METHOD_NOTE} {_SYNTHETIC_NOTE}"),
    ),
    "postop": SegmentationKind(
        model_id=POSTOP_MODEL_ID,
        title="Post-operative glioblastoma 3D U-Net trained on synthetic phantoms",
        what=("post-operative glioblastoma into resection cavity, oedema (FLAIR "
              "hyperintensity) and residual enhancing tumour"),
        subjects="post-operative glioblastoma",
        simulator="simulate_postop",
        classes=("resection cavity", "oedema", "residual enhancing tumour"),
        segments=POSTOP_SEGMENTS,
        score=postop_scores,
        summarise=summarise_postop,
        selection=("dice_cavity_mean", "dice_whole_mean", "dice_residual_mean"),
        notes=(
            "Dice per case, mean and standard deviation; cavity = label 1, oedema = 2, whole "
            "= 1+2+3 (all cases); residual = label 3 on the n_with_residual cases whose "
            "reference has a residual enhancing tumour (the others have an empty label 3 and "
            "are left out of its Dice). residual_sensitivity / residual_specificity: a "
            f"predicted residual of at least {RESIDUAL_DETECTION_ML} ml counts as detected, "
            "on cases with / without a residual. "
            f"{_METHOD_NOTE} {_SYNTHETIC_NOTE}"
        ),
    ),
}

# The domain-randomised model: the pre-operative task, another generator.
KINDS["synth"] = dataclasses.replace(
    KINDS["preop"],
    model_id="brats-unet-synth",
    title="BraTS-style 3D U-Net trained on domain-randomised synthetic images",
    subjects="domain-randomised glioblastoma label maps (rgcds.phantom.synth)",
    simulator="synth_sample",
    notes=("Dice per case, mean and standard deviation; WT = labels 1+2+3, TC = 1+3, "
           f"ET = 3; {_METHOD_NOTE} Trained on rgcds.phantom.synth (random intensity per "
           f"label and channel; generator version in the card). {_SYNTHETIC_NOTE}"),
)

# --------------------------------------------------------------------------------------
# Main


class _Log:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: str, **fields: Any) -> None:
        record = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  "event": event, **fields}
        line = json.dumps(record)
        with self.path.open("a") as handle:
            handle.write(line + "\n")
        print(line, flush=True)


def _dice_loss(logits: Any, target: Any, n_classes: int) -> Any:
    import torch

    probs = torch.softmax(logits, dim=1)
    onehot = torch.nn.functional.one_hot(target, n_classes).permute(0, 4, 1, 2, 3).float()
    dims = (0, 2, 3, 4)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + 1e-5) / (denom + 1e-5)
    return 1.0 - dice[1:].mean()


def _load_cases(folders: list[Path], log: _Log, what: str) -> list[Case]:
    cases = []
    started = time.time()
    for folder in folders:
        cases.append(read_case(folder))
    log("cases_loaded", what=what, n=len(cases), seconds=round(time.time() - started, 1))
    return cases


def generate(args: argparse.Namespace, log: _Log) -> None:
    """Write the requested phantoms into the BraTS layout (skipping those already there)."""
    for what, root, seeds in (
        ("test", args.test_dir, range(TEST_SEED_BASE, TEST_SEED_BASE + args.test_phantoms)),
        ("dev", args.dev_dir, range(DEV_SEED_BASE, DEV_SEED_BASE + args.dev_phantoms)),
        ("train", args.data_dir, range(args.phantoms)),
    ):
        if not seeds:
            continue
        started = time.time()
        # Held-out sets may come from another generator (--eval-kind): a model trained on
        # domain-randomised samples is chosen and scored on phantoms it never saw the like of.
        kind = args.kind if what == "train" else (getattr(args, "eval_kind", None) or args.kind)
        for n, seed in enumerate(seeds, 1):
            write_phantom_case(seed, root, kind=kind)
            if n % 10 == 0:
                log("phantoms_written", what=what, n=n, seconds=round(time.time() - started, 1))
        log("phantoms_done", what=what, n=len(seeds), seconds=round(time.time() - started, 1))


def train(args: argparse.Namespace, log: _Log) -> Path:
    """Train; return the path of the best checkpoint."""
    import torch

    kind: SegmentationKind = KINDS[args.kind]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)
    train_cases = _load_cases(list_cases(args.data_dir), log, "train")
    dev_cases = _load_cases(list_cases(args.dev_dir), log, "dev") if args.dev_dir.is_dir() \
        else []
    sampler = PatchSampler(train_cases, rng, args.patch, strip_fraction=args.strip_fraction)
    model = build_unet(base=args.base, levels=args.levels)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ckpt = args.workdir / "last.pt"
    best_path = args.workdir / "best.pt"
    state: dict[str, Any] = {"iteration": 0, "elapsed": 0.0, "best": -1.0, "history": []}
    if args.resume and ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        state = saved["state"]
        log("resumed", iteration=state["iteration"], elapsed=state["elapsed"])
    budget = args.minutes * 60.0
    n_params = sum(p.numel() for p in model.parameters())
    log("train_start", n_train=len(train_cases), n_dev=len(dev_cases), params=n_params,
        budget_s=budget)
    ce = torch.nn.CrossEntropyLoss()
    start = time.time() - state["elapsed"]
    last_eval = time.time()
    losses: list[float] = []
    while True:
        elapsed = time.time() - start
        if elapsed >= budget:
            break
        # cosine-ish decay on elapsed time with a short warm-up
        frac = elapsed / budget
        lr = args.lr * min(1.0, (state["iteration"] + 1) / 50) * (0.05 + 0.95 * 0.5 *
                                                                 (1 + math.cos(math.pi * frac)))
        for group in optimiser.param_groups:
            group["lr"] = lr
        model.train()
        batch = [sampler.draw() for _ in range(args.batch)]
        x = torch.from_numpy(np.stack([b[0] for b in batch]))
        y = torch.from_numpy(np.stack([b[1] for b in batch]))
        logits = model(x)
        loss = ce(logits, y) + _dice_loss(logits, y, 4)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.item()))
        state["iteration"] += 1
        if state["iteration"] % 25 == 0:
            log("train", iteration=state["iteration"], loss=round(float(np.mean(losses)), 4),
                lr=round(lr, 6), elapsed=round(time.time() - start, 1))
            losses = []
        final = time.time() - start >= budget
        if time.time() - last_eval >= args.eval_every * 60 or final:
            state["elapsed"] = time.time() - start
            metrics: dict[str, float] = {}
            if dev_cases:
                model.eval()
                scores = [kind.score(torch_predict(model, c, args.patch), c.labels)
                          for c in dev_cases]
                metrics = kind.summarise(scores)
            score = float(np.mean([metrics.get(k, 0.0)
                                   for k in kind.selection])) if metrics else 0.0
            state["history"].append({"iteration": state["iteration"],
                                     "elapsed": round(state["elapsed"], 1), **metrics})
            shape_args = {"base": args.base, "levels": args.levels, "patch": args.patch}
            payload = {"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                       "state": state, "args": shape_args}
            torch.save(payload, ckpt)
            if score >= state["best"] or not best_path.is_file():
                state["best"] = score
                torch.save({"model": model.state_dict(), "state": state, "args": shape_args},
                           best_path)
            (args.workdir / "partial_metrics.json").write_text(
                json.dumps(state["history"], indent=1))
            log("checkpoint", iteration=state["iteration"], dev=metrics, best=state["best"],
                elapsed=round(state["elapsed"], 1))
            last_eval = time.time()
    log("train_end", iteration=state["iteration"], elapsed=round(time.time() - start, 1))
    return Path(best_path)


def ship(args: argparse.Namespace, checkpoint: Path, log: _Log) -> Path:
    """Export the checkpoint to ONNX in the model folder and write its card."""
    import torch

    from rgcds.inference.card import sha256_file

    saved = torch.load(checkpoint, weights_only=False)
    model = build_unet(base=saved["args"]["base"], levels=saved["args"]["levels"])
    model.load_state_dict(saved["model"])
    args.base, args.levels = saved["args"]["base"], saved["args"]["levels"]
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "model.onnx"
    args.patch = saved["args"].get("patch", args.patch)
    export_onnx(model, onnx_path, args.patch)
    card = card_dict(sha256_file(onnx_path), args,
                     {"n_train": len(list_cases(args.data_dir))})
    card["training_data"] += (
        f" Trained for {saved['state']['iteration']} iterations "
        f"({saved['state']['elapsed'] / 60:.1f} min on {args.threads} CPU threads)."
    )
    (args.out / "model.yaml").write_text(yaml.safe_dump(card, sort_keys=False, width=100))
    log("exported", onnx=str(onnx_path), mbytes=round(onnx_path.stat().st_size / 1e6, 2))
    return Path(onnx_path)


def evaluate(args: argparse.Namespace, log: _Log) -> dict[str, float]:
    """Dice on the held-out cases through rgcds.inference (ONNX Runtime); into the card."""
    from rgcds.inference import load_card, segment, select_backend

    kind: SegmentationKind = KINDS[args.kind]
    card = load_card(args.out)
    backend = select_backend(card, "onnxruntime", threads=args.threads)
    folders = list_cases(args.test_dir)
    scores = []
    for folder in folders:
        case = read_case(folder)
        labels = segment(case.images, card, backend, brain_mask=case.brain, overlap=0.5)
        score = kind.score(labels, case.labels)
        scores.append(score)
        log("test_case", case=case.name, **{k: round(v, 4) for k, v in score.items()})
    metrics = kind.summarise(scores)
    log("test_summary", n=len(scores), **metrics)
    data = yaml.safe_load((args.out / "model.yaml").read_text())
    seeds = sorted(int(f.name.split("-")[-1]) for f in folders if f.name.startswith("phantom-"))
    data["validation"] = {
        "dataset": (
            f"{len(scores)} held-out synthetic phantoms (rgcds.phantom.{kind.simulator}, size "
            f"'small', seeds {seeds[0] if seeds else '?'}..{seeds[-1] if seeds else '?'}), "
            "never seen in training or model selection"
        ),
        "n_cases": len(scores),
        "metrics": metrics,
        "notes": kind.notes,
    }
    (args.out / "model.yaml").write_text(yaml.safe_dump(data, sort_keys=False, width=100))
    load_card(args.out)  # the written card must pass its own schema
    return metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="training cases in the BraTS layout (written first if --phantoms)")
    parser.add_argument("--test-dir", type=Path, default=None,
                        help="held-out cases (BraTS layout); default <workdir>/test")
    parser.add_argument("--dev-dir", type=Path, default=None,
                        help="model-selection cases (BraTS layout); default <workdir>/dev")
    parser.add_argument("--workdir", type=Path, required=True, help="checkpoints and log")
    parser.add_argument("--out", type=Path, default=None,
                        help="model folder to write model.onnx and model.yaml into; default "
                        "models/<model id> of the repository")
    parser.add_argument("--kind", choices=sorted(KINDS), default="preop",
                        help="preop: tumour model brats-unet-phantom; postop: post-operative "
                        "model postop-unet-phantom (phantoms from simulate_postop)")
    parser.add_argument("--postop", dest="kind", action="store_const", const="postop",
                        help="same as --kind postop")
    parser.add_argument("--eval-kind", choices=sorted(KINDS), default=None,
                        help="generator of the dev and test phantoms (default: --kind)")
    parser.add_argument("--phantoms", type=int, default=0, help="phantoms to generate")
    parser.add_argument("--test-phantoms", type=int, default=0,
                        help=f"held-out phantoms to generate (seeds {TEST_SEED_BASE}..)")
    parser.add_argument("--dev-phantoms", type=int, default=0,
                        help=f"model-selection phantoms to generate (seeds {DEV_SEED_BASE}..)")
    parser.add_argument("--minutes", type=float, default=35.0, help="training wall-time budget")
    parser.add_argument("--eval-every", type=float, default=5.0, help="minutes between checks")
    parser.add_argument("--base", type=int, default=8)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch", type=int, default=PATCH, help="training and inference patch")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strip-fraction", type=float, default=0.3,
                        help="share of patches with zero outside a (jittered) brain mask")
    parser.add_argument("--outside", choices=["keep", "zero"], default="keep",
                        help="the card's normalisation outside the brain mask (training, "
                        "evaluation and the shipped card)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stage", choices=["all", "generate", "train", "ship", "evaluate"],
                        default="all")
    args = parser.parse_args(argv)
    args.test_dir = args.test_dir or args.workdir / "test"
    args.dev_dir = args.dev_dir or args.workdir / "dev"
    args.out = args.out or root / "models" / KINDS[args.kind].model_id
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the stages named by ``--stage``."""
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    OUTSIDE["value"] = args.outside
    log = _Log(args.workdir / "train.log")
    log("start", argv=sys.argv[1:] if argv is None else argv)
    if args.stage in ("all", "generate"):
        generate(args, log)
    if args.stage in ("all", "train"):
        best = train(args, log)
    else:
        best = args.workdir / "best.pt"
    if args.stage in ("all", "ship"):
        ship(args, best, log)
    if args.stage in ("all", "evaluate"):
        evaluate(args, log)
    log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
