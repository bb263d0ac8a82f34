"""Amino-acid PET measurements on analytic phantoms: TBR, SUV, SUVpeak, BTV, background."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from numpy.typing import NDArray
from pydantic import ValidationError

from rgcds.analysis.pet import (
    ARBITRARY_UNITS,
    PEAK_RADIUS_MM,
    PetGeometryError,
    PetMeasurements,
    PetNotAnalysed,
    PetSettings,
    RegistrationQuality,
    analyse_pet,
    contralateral_background,
    normalised_mutual_information,
    registration_quality,
)
from rgcds.exceptions import DicomInputError
from rgcds.imaging.registration import RegistrationResult
from rgcds.study.enums import PetQuantity, PetTracer
from rgcds.study.suv import SuvResult

SPACING = 2.0
SIZE = (80, 80, 60)  # x, y, z voxels: 160 x 160 x 120 mm
CENTRE = (35.0, 0.0, 0.0)  # tumour centre, LPS: +x is the patient's left
RADIUS = 15.0
SUV = SuvResult(PetQuantity.SUVBW, 1.0, "test values are SUVbw")


def _coords(
    size: tuple[int, int, int] = SIZE, spacing: float = SPACING
) -> tuple[NDArray[np.float64], ...]:
    """Physical (z, y, x) coordinates of voxel centres of a grid centred on 0."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * spacing for n in reversed(size)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    return z, y, x


def _image(
    array: NDArray[np.generic], size: tuple[int, int, int] = SIZE, spacing: float = SPACING
) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((spacing,) * 3)
    image.SetOrigin(tuple(-(n - 1) / 2.0 * spacing for n in size))
    return image


def _scene(shift_x: float = 0.0) -> tuple[sitk.Image, sitk.Image, sitk.Image, NDArray[np.bool_]]:
    z, y, x = _coords()
    brain = (x / 70.0) ** 2 + (y / 70.0) ** 2 + (z / 50.0) ** 2 <= 1.0
    sphere = (x - CENTRE[0] - shift_x) ** 2 + (y - CENTRE[1]) ** 2 + (
        z - CENTRE[2]
    ) ** 2 <= RADIUS**2
    pet = np.where(brain, 1.0, 0.0).astype(np.float32)
    pet[sphere] = 2.6
    return _image(pet), _image(brain.astype(np.uint8)), _image(sphere.astype(np.uint8)), sphere


def _measure(**kwargs: object) -> PetMeasurements:
    pet, brain, tumour, _ = _scene()
    params: dict[str, object] = dict(
        tracer=PetTracer.MET, suv=SUV, brain_mask=brain, tumour_mask=tumour
    )
    params.update(kwargs)
    result = analyse_pet(pet, **params)  # type: ignore[arg-type]
    assert isinstance(result, PetMeasurements), result
    return result


def test_tbr_and_btv_of_an_analytic_sphere() -> None:
    result = _measure()
    sphere_ml = 4.0 / 3.0 * math.pi * RADIUS**3 / 1000.0
    assert result.btv_ml == pytest.approx(sphere_ml, rel=0.05)
    assert result.tbr_max == pytest.approx(2.6, rel=0.02)
    assert result.tbr_mean == pytest.approx(2.6, rel=0.02)
    assert result.background_mean == pytest.approx(1.0, rel=1e-6)
    assert result.suv_max == pytest.approx(2.6, rel=1e-6)
    assert result.suv_mean == pytest.approx(2.6, rel=1e-6)
    assert result.suv_peak == pytest.approx(2.6, rel=1e-6)
    assert result.units == "SUVbw" and result.suv_available
    assert result.threshold_tbr == 1.3 and result.tracer is PetTracer.MET
    assert result.search_region == "tumour + margin"
    assert "contralateral" in result.background_method


def test_fet_threshold_and_configurable_threshold() -> None:
    assert _measure(tracer=PetTracer.FET).threshold_tbr == 1.6
    custom = PetSettings(tbr_thresholds={"MET": 2.7})
    assert _measure(settings=custom).btv_ml == 0.0
    assert _measure(settings=custom).tbr_mean is None


def test_suv_peak_of_a_known_blob() -> None:
    pet, brain, tumour, sphere = _scene()
    array = sitk.GetArrayFromImage(pet)
    centre = tuple(int(v) for v in np.argwhere(sphere).mean(axis=0).round())
    array[centre] = 10.0
    hot = _image(array)
    # Voxels whose centres lie within 6.2 mm of a voxel centre on a 2 mm grid.
    r = np.arange(-3, 4) * SPACING
    n = int((np.add.outer(np.add.outer(r**2, r**2), r**2) <= PEAK_RADIUS_MM**2).sum())
    assert PEAK_RADIUS_MM == pytest.approx(6.2035, abs=1e-3)
    result = analyse_pet(hot, tracer=PetTracer.MET, suv=SUV, brain_mask=brain, tumour_mask=tumour)
    assert isinstance(result, PetMeasurements)
    assert result.suv_max == pytest.approx(10.0)
    assert result.suv_peak == pytest.approx((2.6 * (n - 1) + 10.0) / n, rel=1e-6)


def test_background_voi_is_contralateral() -> None:
    pet, brain, _, sphere = _scene()
    brain_a = sitk.GetArrayFromImage(brain) > 0
    voi = contralateral_background(pet, brain_a, sphere)
    _, _, x = _coords()
    assert voi.tumour_side == "left"
    assert voi.midline_x_mm == pytest.approx(0.0, abs=SPACING)
    assert voi.mask.sum() * SPACING**3 / 1000.0 >= 5.0
    assert (x[voi.mask] < 0).all()
    assert not (voi.mask & sphere).any()
    assert x[voi.mask].mean() == pytest.approx(-CENTRE[0], abs=8.0)  # mirrors the tumour


def test_background_falls_back_to_hemisphere_when_mirror_is_tiny() -> None:
    pet, brain, _, sphere = _scene()
    brain_a = sitk.GetArrayFromImage(brain) > 0
    voi = contralateral_background(pet, brain_a, sphere, PetSettings(background_min_ml=1000.0))
    assert "whole contralateral hemisphere" in voi.description


def test_no_weight_gives_ratios_only() -> None:
    no_suv = SuvResult(PetQuantity.BQML, None, "Patient Weight is missing. Kept in Bq/ml.")
    result = _measure(suv=no_suv)
    assert result.units == ARBITRARY_UNITS and not result.suv_available
    assert result.suv_max is None and result.suv_mean is None and result.suv_peak is None
    assert result.tbr_max == pytest.approx(2.6, rel=0.02)
    assert any("not SUV calibrated" in n and "Patient Weight" in n for n in result.notes)


@pytest.mark.parametrize("tracer", [PetTracer.FDG, PetTracer.UNKNOWN])
def test_fdg_and_unknown_are_not_analysed(tracer: PetTracer) -> None:
    pet, brain, tumour, _ = _scene()
    result = analyse_pet(pet, tracer=tracer, suv=SUV, brain_mask=brain, tumour_mask=tumour)
    assert isinstance(result, PetNotAnalysed) and result.tracer is tracer
    assert tracer.value in result.reason


def test_single_slice_pet_is_a_clear_error() -> None:
    flat = _image(np.ones((1, 20, 20), np.float32), size=(20, 20, 1))
    with pytest.raises(PetGeometryError, match="single slice") as info:
        analyse_pet(flat, tracer=PetTracer.MET, suv=SUV, brain_mask=None)
    assert isinstance(info.value, DicomInputError)


def test_btv_maps_to_the_mr_grid_through_the_transform() -> None:
    pet, _, _, _ = _scene(shift_x=6.0)  # the PET sees the tumour 6 mm further left
    _, brain, tumour, sphere = _scene()
    mr_to_pet = sitk.TranslationTransform(3, (6.0, 0.0, 0.0))
    result = analyse_pet(
        pet,
        tracer=PetTracer.MET,
        suv=SUV,
        brain_mask=brain,
        tumour_mask=tumour,
        transform=mr_to_pet,
    )
    assert isinstance(result, PetMeasurements) and result.btv_mr is not None
    btv_mr = sitk.GetArrayFromImage(result.btv_mr) > 0
    dice = 2 * (btv_mr & sphere).sum() / (btv_mr.sum() + sphere.sum())
    assert dice > 0.97
    assert result.tbr_max == pytest.approx(2.6, rel=0.02)


def test_failed_registration_continues_on_the_pet_grid() -> None:
    failed = RegistrationQuality(-0.05, 1.02, 1.05, False, "PET-to-MR registration failed.")
    result = _measure(registration=failed)
    assert result.btv_mr is None and result.registration is failed
    assert "PET-to-MR registration failed." in result.notes
    assert any("estimated from the PET" in n for n in result.notes)
    assert result.tbr_max == pytest.approx(2.6, rel=0.05)


def test_ctv_is_the_search_region() -> None:
    z, y, x = _coords()
    half = ((x - CENTRE[0]) ** 2 + y**2 + z**2 <= RADIUS**2) & (x < CENTRE[0])
    result = _measure(ctv=_image(half.astype(np.uint8)))
    assert result.search_region == "CTV"
    assert result.btv_ml == pytest.approx(half.sum() * SPACING**3 / 1000.0)


def test_registration_quality_scores_alignment() -> None:
    z, y, x = _coords()
    rng = np.random.default_rng(0)
    from scipy import ndimage

    texture = ndimage.gaussian_filter(rng.standard_normal(x.shape), 3.0)
    head = (x / 70.0) ** 2 + (y / 70.0) ** 2 + (z / 50.0) ** 2 <= 1.0
    mr = _image(np.where(head, 1.0 + 5 * texture, 0.0).astype(np.float32))
    pet = _image(np.where(head, 2.0 + 5 * texture, 0.0).astype(np.float32) ** 2)
    brain = _image(head.astype(np.uint8))
    good = registration_quality(
        mr, pet, RegistrationResult(sitk.Euler3DTransform(), -0.9, ""), brain
    )
    shifted = sitk.Euler3DTransform()
    shifted.SetTranslation((15.0, 0.0, 0.0))
    bad = registration_quality(mr, pet, RegistrationResult(shifted, -0.1, ""), brain, threshold=1.3)
    assert good.passed and not bad.passed
    assert good.nmi > bad.nmi and good.mattes_mi == -0.9
    assert "failed" in bad.note


def test_nmi_bounds() -> None:
    a = np.random.default_rng(1).random(5000)
    assert normalised_mutual_information(a, a) == pytest.approx(2.0, abs=0.01)
    b = np.random.default_rng(2).random(5000)
    assert normalised_mutual_information(a, b) < 1.1


def test_settings_are_strict_and_frozen() -> None:
    settings = PetSettings()
    assert settings.tbr_thresholds == {"MET": 1.3, "FET": 1.6, "FDOPA": 1.7}
    assert settings.ctv_margin_mm == 15.0 and settings.pairing_window_days == 14
    assert settings.nmi_threshold == 1.05
    with pytest.raises(ValidationError):
        PetSettings(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        PetSettings(tbr_thresholds={"FDG": 1.5})
    with pytest.raises(ValidationError):
        settings.ctv_margin_mm = 10.0
