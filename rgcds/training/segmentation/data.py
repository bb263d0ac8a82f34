"""The BraTS layout: constants of the model grid, writing phantoms, reading cases."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as _sitk

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
