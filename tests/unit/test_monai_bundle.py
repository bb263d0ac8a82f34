"""The MONAI bundle replay's pieces, without MONAI (the agreement with MONAI is in tests/peers)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from rgcds.inference.monai_bundle import (
    _torch_linspace,
    apply_orientation,
    importance_map,
    orientation_transform,
    ras_affine,
    resample_affine,
    spacing_grid,
    undo_orientation,
    window_starts,
)
from rgcds.inference.monai_card import MonaiSpec


def test_window_starts_end_flush_with_the_image() -> None:
    assert window_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]
    assert window_starts(32, 32, 32) == [0]


def test_gaussian_importance_is_clamped_and_peaks_at_one() -> None:
    weights = importance_map((8, 8, 6), "gaussian", 0.125)
    assert weights.shape == (8, 8, 6) and weights.max() <= 1.0
    assert weights.min() >= 1e-3
    assert np.all(importance_map((4, 4, 4), "constant", 0.125) == 1.0)


def test_linspace_rounds_as_pytorch_does() -> None:
    values = _torch_linspace(7)
    # torch.linspace(-1, 1, 7, dtype=torch.float64)[3] is 5.551115123125783e-17 (fused
    # 1 - step * 3), not 0: the bit MONAI's grid carries.
    assert values[0] == -1.0 and values[-1] == 1.0 and values[3] == 5.551115123125783e-17


def test_orientation_round_trip_restores_the_array() -> None:
    data = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    affine = ras_affine((1.0, 2.0, 3.0), (0, 0, 1, 1, 0, 0, 0, 1, 0), (0.0, 0.0, 0.0))
    ornt = orientation_transform(affine, "RAS")
    out, new_affine = apply_orientation(data, affine, ornt)
    assert out.shape[0] == 2 and sorted(out.shape[1:]) == [3, 4, 5]
    assert np.all(np.diag(new_affine[:3, :3]) > 0)  # now R, A, S along the axes
    assert np.array_equal(undo_orientation(out, ornt), data)


def test_spacing_to_the_same_grid_is_the_identity() -> None:
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    new, shape = spacing_grid(affine, (10, 12, 8), (1.5, 1.5, 1.5))
    assert shape == (10, 12, 8) and np.allclose(new, affine)
    data = np.random.default_rng(0).random((1, 10, 12, 8)).astype(np.float32)
    assert np.array_equal(resample_affine(data, affine, new, shape, "bilinear", "border"), data)


def test_an_axis_within_tolerance_of_the_target_keeps_its_own_spacing() -> None:
    affine = np.diag([0.99999996, 2.0, 1.0004, 1.0])
    new, _ = spacing_grid(affine, (10, 10, 10), (1.0, 1.0, 1.0))
    assert new[0, 0] == 0.99999996 and new[1, 1] == 1.0 and new[2, 2] == 1.0004


def test_halving_the_spacing_interpolates_between_voxels() -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    new, shape = spacing_grid(affine, (4, 4, 4), (1.0, 1.0, 1.0))
    assert shape == (7, 7, 7)
    data = np.zeros((1, 4, 4, 4), dtype=np.float32)
    data[0, 1] = 10.0
    out = resample_affine(data, affine, new, shape, "bilinear", "border")
    assert out[0, 2, 3, 3] == pytest.approx(10.0) and out[0, 1, 3, 3] == pytest.approx(5.0)


def test_the_card_section_needs_one_discrete_step() -> None:
    base = {"bundle_name": "b", "bundle_version": "1", "channel_names": ["T1c"],
            "output_names": ["a", "b"], "roi_size": (8, 8, 8), "source_sha256": "0" * 64}
    MonaiSpec(**base, postprocessing=["softmax", "invert", "argmax"])
    with pytest.raises(ValidationError):
        MonaiSpec(**base, postprocessing=["softmax", "invert"])
    with pytest.raises(ValidationError):
        MonaiSpec(**base, postprocessing=["sigmoid", "sigmoid", "threshold"])
