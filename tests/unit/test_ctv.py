"""CTV derivation (ESTRO-EANO 2023: cavity + residual enhancement + 15 mm, within the brain)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from numpy.typing import NDArray

from rgcds.analysis.ctv import (
    RtStructNotSupportedError,
    derive_ctv,
    rasterise_roi,
    select_ctv_roi,
)
from rgcds.analysis.pet import PetSettings
from rgcds.exceptions import DicomInputError

SPACING = (1.0, 1.5, 3.0)  # x, y, z: anisotropic
SIZE = (90, 60, 30)


def _distance_to_centre() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(SIZE, SPACING, strict=True)]
    x, y, z = axes
    d = np.sqrt(z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2)
    return d, np.broadcast_to(x[None, None, :], d.shape)


def _image(array: NDArray[np.generic]) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(SPACING)
    image.SetOrigin(tuple(-(n - 1) / 2.0 * s for n, s in zip(SIZE, SPACING, strict=True)))
    return image


def test_margin_grows_a_sphere_cavity_by_15_mm() -> None:
    d, _ = _distance_to_centre()
    cavity = d <= 10.0
    brain = np.ones_like(cavity)
    result = derive_ctv(_image(brain), cavity=_image(cavity))
    ctv = sitk.GetArrayFromImage(result.ctv) > 0
    tolerance = max(SPACING)  # within a voxel
    assert ctv[d <= 25.0 - tolerance].all()
    assert not ctv[d > 25.0 + tolerance].any()
    assert result.margin_mm == 15.0
    assert result.gtv_ml == pytest.approx(cavity.sum() * np.prod(SPACING) / 1000.0)


def test_ctv_is_clipped_to_the_brain() -> None:
    d, x = _distance_to_centre()
    cavity = d <= 8.0
    brain = x <= 12.0  # the brain ends 12 mm from the cavity centre
    result = derive_ctv(_image(brain), cavity=_image(cavity), margin_mm=15.0)
    ctv = sitk.GetArrayFromImage(result.ctv) > 0
    assert not (ctv & ~brain).any()
    assert ctv[(d <= 20.0) & brain].all()
    assert any("barriers" in n for n in result.notes)


def test_residual_enhancement_joins_the_gtv() -> None:
    d, x = _distance_to_centre()
    cavity = d <= 6.0
    residual = (np.abs(x - 30.0) <= 2.0) & (d <= 33.0)
    brain = np.ones_like(cavity)
    result = derive_ctv(_image(brain), cavity=_image(cavity), residual_enhancement=_image(residual))
    ctv = sitk.GetArrayFromImage(result.ctv) > 0
    near = (np.abs(x - 40.0) <= 1.0) & (d <= 41.0)  # about 8-10 mm beyond the residual
    assert near.any() and ctv[residual].all() and ctv[near].all()
    assert result.ctv_ml > result.gtv_ml


def test_derive_ctv_needs_a_gtv() -> None:
    brain = _image(np.ones((SIZE[2], SIZE[1], SIZE[0])))
    with pytest.raises(ValueError, match="needs a resection cavity"):
        derive_ctv(brain)
    with pytest.raises(ValueError, match="empty"):
        derive_ctv(brain, cavity=_image(np.zeros((SIZE[2], SIZE[1], SIZE[0]))))


def test_select_ctv_roi_by_patterns() -> None:
    names = ["Brainstem", "PTV_60", "CTV_opt", "ctv 1", "GTV", "CTV"]
    assert select_ctv_roi(names) == "CTV"
    assert select_ctv_roi(["GTV", "CTV_boost", "PTV"]) == "CTV_boost"
    assert select_ctv_roi(["GTV", "PTV"]) is None
    assert select_ctv_roi(["Zielvolumen"], patterns=[r"ziel"]) == "Zielvolumen"
    assert select_ctv_roi(["CTV"], patterns=PetSettings().ctv_roi_patterns) == "CTV"


def test_rtstruct_rasterisation_is_a_clear_todo() -> None:
    with pytest.raises(RtStructNotSupportedError, match="rt-utils") as info:
        rasterise_roi("rs.dcm", "CTV", _image(np.ones((2, 2, 2))))
    assert isinstance(info.value, DicomInputError)
