"""Overlap metrics for BraTS-style label maps."""

from __future__ import annotations

import numpy as np

#: BraTS evaluation regions as sets of label values (1 necrotic core, 2 oedema, 3 enhancing).
BRATS_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks; 1.0 when both are empty."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def brats_dice(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Dice of WT (1+2+3), TC (1+3) and ET (3) between two label maps."""
    return {
        name: dice(np.isin(prediction, labels), np.isin(reference, labels))
        for name, labels in BRATS_REGIONS.items()
    }


__all__ = ["BRATS_REGIONS", "brats_dice", "dice"]
