"""``[processing] tumour_brain_margin_mm``: labels in the scalp go, a cortical tumour that the
brain mask cuts by a voxel or two stays."""

from __future__ import annotations

import numpy as np

from rgcds.config import ProcessingSettings
from rgcds.pipeline.stages import restrict_to_brain

SPACING = (2.0, 2.0, 2.0)


def _brain() -> np.ndarray:
    brain = np.zeros((40, 40, 40), dtype=bool)
    brain[5:35, 5:35, 5:35] = True
    return brain


def test_a_label_in_the_scalp_is_removed_and_the_tumour_kept() -> None:
    brain = _brain()
    labels = np.zeros(brain.shape, dtype=np.uint8)
    labels[15:25, 15:25, 15:25] = 2  # the tumour, inside the brain
    labels[18:20, 18:20, 0:2] = 3  # 8-10 mm outside the brain: scalp
    out, removed = restrict_to_brain(labels, brain, SPACING, 5.0)
    assert out[15:25, 15:25, 15:25].tolist() == labels[15:25, 15:25, 15:25].tolist()
    assert not out[:, :, 0:2].any()
    assert removed == 8 * 0.008  # 8 voxels of 8 mm³


def test_a_cortical_tumour_spilling_over_the_mask_is_kept() -> None:
    brain = _brain()
    labels = np.zeros(brain.shape, dtype=np.uint8)
    labels[15:25, 15:25, 3:12] = 3  # 2 voxels (4 mm) over the mask's edge at x = 5
    out, removed = restrict_to_brain(labels, brain, SPACING, 5.0)
    assert np.array_equal(out, labels) and removed == 0.0


def test_nothing_to_remove_without_tumour_or_mask() -> None:
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    out, removed = restrict_to_brain(labels, np.ones_like(labels, dtype=bool), SPACING, 5.0)
    assert removed == 0.0 and not out.any()
    labels[2, 2, 2] = 1
    out, removed = restrict_to_brain(labels, np.zeros_like(labels, dtype=bool), SPACING, 5.0)
    assert removed == 0.0 and out[2, 2, 2] == 1


def test_the_default_margin_is_5_mm_and_none_keeps_everything() -> None:
    assert ProcessingSettings().tumour_brain_margin_mm == 5.0
    assert ProcessingSettings(tumour_brain_margin_mm=None).tumour_brain_margin_mm is None
