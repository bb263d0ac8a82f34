"""Small four-channel brain-like cases for the nnU-Net agreement test (numpy + SimpleITK only).

Each case is an ellipsoidal "brain" (zero outside, as in skull-stripped BraTS data) with
grey/white texture, a tumour of three nested tissues (oedema 1, necrosis 2, enhancing rim 3
in nnU-Net's BraTS numbering) and per-channel contrasts; the volume has a zero margin so that
nnU-Net's crop to the non-zero box does something.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

CHANNELS = {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}
# Mean intensity of background brain, oedema, necrosis, enhancing per channel.
_CONTRAST = np.array([
    [600, 450, 300, 650],
    [600, 500, 250, 1300],
    [500, 900, 1100, 800],
    [500, 1000, 400, 900],
], dtype=np.float32)


def make_case(seed: int, shape: tuple[int, int, int], spacing: tuple[float, float, float]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image (4, Z, Y, X) float32, labels (Z, Y, X) uint8)`` for a seed.

    ``spacing`` is along Z, Y, X in mm; the anatomy is defined in mm, so a thick-slice
    case shows the same brain with fewer slices.
    """
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in
                               zip(shape, spacing, strict=True)], indexing="ij")
    extent = np.array(shape) * np.array(spacing) / 2
    radii = extent * rng.uniform(0.72, 0.85, 3)
    brain = (zz / radii[0]) ** 2 + (yy / radii[1]) ** 2 + (xx / radii[2]) ** 2 <= 1
    centre = rng.uniform(-0.35, 0.35, 3) * radii
    d = np.sqrt((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2)
    size = float(min(radii)) * rng.uniform(0.35, 0.5)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[d < size] = 1
    labels[d < 0.6 * size] = 3
    labels[d < 0.4 * size] = 2
    labels[~brain] = 0
    texture = np.sin(zz / 7 + rng.uniform(0, 6)) * np.cos(yy / 9) * np.sin(xx / 5)
    image = np.zeros((4, *shape), dtype=np.float32)
    for c in range(4):
        tissue = _CONTRAST[c][labels]
        value = tissue * (1 + 0.08 * texture) + rng.normal(0, 20, shape)
        image[c] = np.where(brain, np.maximum(value, 1.0), 0.0)
    return image, labels


def write_raw_dataset(folder: Path, n_cases: int, shape: tuple[int, int, int],
                      spacing: tuple[float, float, float], regions: bool) -> Path:
    """An nnU-Net raw dataset (``imagesTr``, ``labelsTr``, ``dataset.json``); returns it."""
    (folder / "imagesTr").mkdir(parents=True, exist_ok=True)
    (folder / "labelsTr").mkdir(parents=True, exist_ok=True)
    for i in range(n_cases):
        image, labels = make_case(1000 + i, shape, spacing)
        for c in range(4):
            img = sitk.GetImageFromArray(image[c])
            img.SetSpacing(tuple(reversed(spacing)))
            sitk.WriteImage(img, str(folder / "imagesTr" / f"case_{i:03d}_{c:04d}.nii.gz"))
        lab = sitk.GetImageFromArray(labels)
        lab.SetSpacing(tuple(reversed(spacing)))
        sitk.WriteImage(lab, str(folder / "labelsTr" / f"case_{i:03d}.nii.gz"))
    if regions:
        labels_json: dict[str, object] = {"background": 0, "whole tumor": [1, 2, 3],
                                          "tumor core": [2, 3], "enhancing tumor": [3]}
    else:
        labels_json = {"background": 0, "edema": 1, "necrosis": 2, "enhancing tumor": 3}
    dataset: dict[str, object] = {
        "channel_names": CHANNELS, "labels": labels_json, "numTraining": n_cases,
        "file_ending": ".nii.gz", "name": folder.name,
    }
    if regions:
        dataset["regions_class_order"] = [1, 2, 3]
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    return folder
