"""Measurements: volumes, RANO bidimensional products, multifocality, location."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from rgcds.analysis.location import LobeAtlas, Location, coordinate_lobe_atlas, locate
from rgcds.analysis.measure import (
    Measurements,
    bidimensional,
    count_components,
    measure,
    measure_volumes,
    rano,
)
from rgcds.exceptions import DicomInputError


def _image(
    array: np.ndarray, spacing=(1.0, 1.0, 1.0), direction=None, origin=(0.0, 0.0, 0.0)
) -> sitk.Image:
    img = sitk.GetImageFromArray(array.astype(np.uint8))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def _ellipsoid_labels(
    size_xyz, spacing, semi_mm, centre_mm, label=3, angle_deg=0.0, direction=None
) -> sitk.Image:
    """Label image with a (in-plane rotated) ellipsoid defined in physical space."""
    img = sitk.Image([int(s) for s in size_xyz], sitk.sitkUInt8)
    img.SetSpacing(spacing)
    if direction is not None:
        img.SetDirection(direction)
    k, j, i = np.indices(tuple(reversed(size_xyz)))
    idx = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    pts = (idx * np.asarray(spacing)) @ d.T + np.asarray(img.GetOrigin())
    rel = pts - np.asarray(centre_mm)
    a = math.radians(angle_deg)
    u = rel[:, 0] * math.cos(a) + rel[:, 1] * math.sin(a)
    v = -rel[:, 0] * math.sin(a) + rel[:, 1] * math.cos(a)
    inside = (u / semi_mm[0]) ** 2 + (v / semi_mm[1]) ** 2 + (rel[:, 2] / semi_mm[2]) ** 2 <= 1.0
    array = np.where(inside, label, 0).reshape(tuple(reversed(size_xyz))).astype(np.uint8)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(img)
    return out


def test_volumes_exact_cm3_with_anisotropic_spacing() -> None:
    array = np.zeros((10, 20, 30), dtype=np.uint8)
    array.ravel()[:1000] = 1
    array.ravel()[1000:3000] = 2
    array.ravel()[3000:3500] = 3
    regions = {r.region: r for r in measure_volumes(_image(array, spacing=(0.5, 0.8, 2.0)))}
    voxel_cm3 = 0.5 * 0.8 * 2.0 / 1000.0
    assert regions["NCR"].volume_cm3 == pytest.approx(1000 * voxel_cm3, rel=1e-12)
    assert regions["ED"].volume_cm3 == pytest.approx(2000 * voxel_cm3, rel=1e-12)
    assert regions["ET"].volume_cm3 == pytest.approx(500 * voxel_cm3, rel=1e-12)
    assert regions["TC"].volume_cm3 == pytest.approx(1500 * voxel_cm3, rel=1e-12)
    assert regions["WT"].volume_cm3 == pytest.approx(3500 * voxel_cm3, rel=1e-12)
    assert regions["TC"].labels == (1, 3)


def test_float_label_map_is_refused() -> None:
    img = sitk.Image(4, 4, 4, sitk.sitkFloat32)
    with pytest.raises(DicomInputError, match="integer pixel type"):
        measure_volumes(img)


def test_bidimensional_of_rasterised_ellipse_within_a_pixel() -> None:
    sy, sx = 0.6, 0.9
    y, x = np.indices((120, 100))
    a, b = 20.0, 11.0
    mask = ((x * sx - 45.0) / a) ** 2 + ((y * sy - 36.0) / b) ** 2 <= 1.0
    longest, perp = bidimensional(mask, (sy, sx))
    diag = math.hypot(sx, sy)
    assert abs(longest - 2 * a) <= diag
    assert abs(perp - 2 * b) <= diag


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0])
def test_rano_ellipsoid_known_diameters(angle: float) -> None:
    spacing = (0.7, 0.9, 2.0)
    labels = _ellipsoid_labels(
        (110, 90, 30), spacing, (20.0, 12.0, 16.0), (38.0, 40.0, 30.0), angle_deg=angle
    )
    result = rano(labels)
    assert len(result.lesions) == 1
    lesion = result.lesions[0]
    diag = math.hypot(spacing[0], spacing[1])
    assert lesion.longest_diameter_mm == pytest.approx(40.0, abs=diag)
    assert lesion.perpendicular_diameter_mm == pytest.approx(24.0, abs=diag)
    assert lesion.measurable
    assert result.sum_of_products_mm2 == pytest.approx(lesion.product_mm2)


def test_rano_reorients_a_sagittal_acquisition() -> None:
    # Same physical ellipsoid stored with a sagittal direction (columns along y, rows along z).
    sagittal = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    labels = _ellipsoid_labels(
        (70, 40, 70), (0.8, 1.0, 0.8), (20.0, 12.0, 10.0), (28.0, 28.0, 20.0), direction=sagittal
    )
    lesion = rano(labels).lesions[0]
    assert lesion.longest_diameter_mm == pytest.approx(40.0, abs=1.2)
    assert lesion.perpendicular_diameter_mm == pytest.approx(24.0, abs=1.2)


def test_rano_resamples_an_oblique_acquisition() -> None:
    a = math.radians(20)
    oblique = (math.cos(a), -math.sin(a), 0.0, math.sin(a), math.cos(a), 0.0, 0.0, 0.0, 1.0)
    labels = _ellipsoid_labels(
        (90, 90, 20), (0.8, 0.8, 2.0), (20.0, 12.0, 14.0), (20.0, 50.0, 20.0), direction=oblique
    )
    lesion = rano(labels).lesions[0]
    assert lesion.longest_diameter_mm == pytest.approx(40.0, abs=2 * 1.14)
    assert lesion.perpendicular_diameter_mm == pytest.approx(24.0, abs=2 * 1.14)


def test_multifocality_and_target_cap() -> None:
    array = np.zeros((30, 80, 80), dtype=np.uint8)
    z, y, x = np.indices(array.shape)
    centres = [(15, 20, 20), (15, 20, 60), (15, 60, 20), (15, 60, 60)]
    radii = [9, 8, 7, 3]  # the last is too small to be measurable (6-7 mm)
    for (cz, cy, cx), r in zip(centres, radii, strict=True):
        array[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r] = 3
    labels = _image(array)
    result = rano(labels, max_targets=2)
    assert len(result.lesions) == 4
    assert result.n_measurable == 3
    assert len(result.target_lesions) == 2
    assert not result.lesions[-1].measurable
    assert result.lesions[0].product_mm2 >= result.lesions[1].product_mm2
    m = measure(labels)
    assert isinstance(m, Measurements)
    assert m.n_lesions_et == 4 and m.n_lesions_tc == 4 and m.multifocal
    assert count_components(array == 3, min_voxels=200) == 3
    assert m.location is None


def _mni_sphere(atlas: LobeAtlas, centre_ras, radius_mm: float) -> sitk.Image:
    ref = atlas.image
    size = ref.GetSize()
    k, j, i = np.indices(tuple(reversed(size)))
    idx = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float)
    d = np.asarray(ref.GetDirection()).reshape(3, 3)
    pts = (idx * np.asarray(ref.GetSpacing())) @ d.T + np.asarray(ref.GetOrigin())
    centre_lps = np.array([-centre_ras[0], -centre_ras[1], centre_ras[2]])
    inside = np.linalg.norm(pts - centre_lps, axis=1) <= radius_mm
    out = sitk.GetImageFromArray(
        np.where(inside, 2, 0).reshape(tuple(reversed(size))).astype(np.uint8)
    )
    out.CopyInformation(ref)
    return out


@pytest.fixture(scope="module")
def atlas() -> LobeAtlas:
    return coordinate_lobe_atlas(2)


def test_location_left_frontal_no_midline(atlas: LobeAtlas) -> None:
    labels = _mni_sphere(atlas, (-35.0, 30.0, 30.0), 12.0)
    loc = locate(labels, None, atlas=atlas)
    assert isinstance(loc, Location)
    assert loc.hemisphere == "left"
    assert not loc.midline_crossing
    assert loc.lobes[0] == "frontal"
    assert loc.centroid_mni_ras_mm[0] == pytest.approx(-35.0, abs=1.5)
    assert "approximate" in loc.atlas_source


def test_location_midline_crossing_is_bilateral(atlas: LobeAtlas) -> None:
    labels = _mni_sphere(atlas, (0.0, 20.0, 35.0), 15.0)
    loc = locate(labels, None, atlas=atlas)
    assert loc.midline_crossing
    assert loc.hemisphere == "bilateral"
    assert 0.4 < loc.left_fraction < 0.6


def test_location_through_a_transform_to_mni(atlas: LobeAtlas) -> None:
    # The "patient" grid is the MNI grid shifted by 50 mm in x (LPS); the transform undoes it.
    labels = _mni_sphere(atlas, (45.0, -20.0, -15.0), 8.0)  # right temporal
    shifted = sitk.Image(labels)
    shifted.SetOrigin(tuple(np.asarray(labels.GetOrigin()) + np.array([50.0, 0.0, 0.0])))
    offset = np.array([-50.0, 0.0, 0.0])
    loc = locate(shifted, lambda p: p + offset, atlas=atlas)
    assert loc.hemisphere == "right"
    assert loc.lobes[0] == "temporal"
    translation = sitk.TranslationTransform(3, offset.tolist())
    loc2 = locate(shifted, translation, atlas=atlas)
    assert loc2.lobes == loc.lobes and loc2.hemisphere == "right"


def test_measure_with_template_space_labels(atlas: LobeAtlas) -> None:
    labels = _mni_sphere(atlas, (-35.0, 30.0, 30.0), 12.0)
    m = measure(labels, mni_labels=labels, atlas=atlas)
    assert m.location is not None and m.location.hemisphere == "left"
    assert m.region("WT").volume_cm3 > 0
