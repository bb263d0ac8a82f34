"""The segmentation quality gate: each check with a planted failure, and a clean pass."""

from __future__ import annotations

import numpy as np
import pytest

from rgcds.analysis.qc import check_segmentation, whole_tumour_dice
from rgcds.settings import QcSettings

SPACING = (2.0, 2.0, 2.0)  # 8 mm3 voxels: 125 voxels = 1 cm3
SETTINGS = QcSettings()


def _brain() -> np.ndarray:
    z, y, x = np.indices((60, 70, 60))
    return ((z - 30) / 28) ** 2 + ((y - 35) / 33) ** 2 + ((x - 30) / 28) ** 2 <= 1.0


def _ball(centre: tuple[int, int, int], radius: float, shape=(60, 70, 60)) -> np.ndarray:
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def _tumour(radius: float = 8.0) -> np.ndarray:
    labels = np.zeros((60, 70, 60), np.uint8)
    labels[_ball((30, 30, 22), radius)] = 2
    labels[_ball((30, 30, 22), radius * 0.6)] = 3
    labels[_ball((30, 30, 22), radius * 0.3)] = 1
    return labels


def test_a_plausible_tumour_passes() -> None:
    result = check_segmentation(_tumour(), _brain(), SPACING, SETTINGS, flip_dice=0.93)
    assert result.passed, result.reasons
    assert result.measures["components"] == 1
    assert 10 < result.measures["whole_tumour_ml"] < 25
    assert result.measures["outside_brain_fraction"] == 0.0


def test_no_tumour() -> None:
    result = check_segmentation(np.zeros((60, 70, 60), np.uint8), _brain(), SPACING, SETTINGS)
    assert not result.passed and "no tumour was found" in result.reason


def test_tumour_outside_the_brain() -> None:
    brain = _brain()
    brain[:, :, :16] = False  # the brain ends at x = 16 here
    labels = _tumour()
    labels[_ball((30, 30, 4), 4)] = 2  # a blob well outside it, in the "scalp"
    result = check_segmentation(labels, brain, SPACING, SETTINGS)
    assert not result.passed and "mm outside the brain mask" in result.reason
    # A tumour at the cortex that spills a voxel over the mask's edge passes.
    spill = _tumour()
    spill[_ball((30, 30, 17), 3)] = 2
    near = check_segmentation(spill, brain, SPACING, SETTINGS)
    assert near.passed, near.reasons
    assert near.measures["outside_brain_fraction"] == 0.0


def test_scattered_components() -> None:
    labels = _tumour(5.0)
    for k in range(5):
        labels[_ball((10 + 9 * k, 50, 40), 3.4)] = 2  # five more components of ~1.3 cm3
    strict = QcSettings(max_components=4)
    result = check_segmentation(labels, _brain(), SPACING, strict)
    assert not result.passed and "6 separate tumour components" in result.reason
    assert "(at most 4)" in result.reason
    assert check_segmentation(labels, _brain(), SPACING, SETTINGS).passed  # default 10
    small = QcSettings(max_components=4, min_component_ml=2.0)  # smaller foci not counted
    assert check_segmentation(labels, _brain(), SPACING, small).passed


def test_tumour_filling_the_brain() -> None:
    labels = np.where(_brain() & (np.indices((60, 70, 60))[2] < 30), 2, 0).astype(np.uint8)
    result = check_segmentation(labels, _brain(), SPACING, SETTINGS)
    assert not result.passed and "% of the brain" in result.reason


def test_mirrored_twin_disagrees() -> None:
    result = check_segmentation(_tumour(), _brain(), SPACING, SETTINGS, flip_dice=0.4)
    assert not result.passed and "mirrored images disagrees" in result.reason
    assert result.measures["flip_dice"] == 0.4


def test_several_failures_are_all_named() -> None:
    labels = np.where(_brain(), 2, 0).astype(np.uint8)
    result = check_segmentation(labels, _brain(), SPACING, SETTINGS, flip_dice=0.1)
    assert len(result.reasons) == 2  # the brain fraction and the mirrored twin
    assert "% of the brain (at most 18 %); the segmentation of the mirrored" in result.reason


def test_whole_tumour_dice() -> None:
    a = _tumour()
    assert whole_tumour_dice(a, a) == 1.0
    assert whole_tumour_dice(a, np.zeros_like(a)) == 0.0
    assert whole_tumour_dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert 0.0 < whole_tumour_dice(a, a[..., ::-1]) < 1.0


@pytest.mark.parametrize("bad", [{"max_components": 0}, {"min_flip_dice": 1.5}, {"x": 1}])
def test_bad_settings(bad: dict[str, object]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        QcSettings(**bad)  # type: ignore[arg-type]
