"""Registration, N4, brain extraction, normalisation and model space round trips."""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk

from rgcds.exceptions import MissingSequenceError
from rgcds.imaging import (
    BrainExtractor,
    GridGeometry,
    ModelSpace,
    Orientation,
    PreprocessedStudy,
    RegistrationSettings,
    TemplateBrainExtractor,
    model_grid,
    n4_correct,
    preprocess_study,
    register_rigid,
    resample_onto,
    zscore,
)
from rgcds.study import SeriesRole, Volume, index_study, load_volume, select_sequences

R = SeriesRole


@functools.lru_cache(maxsize=1)
def _template_1mm() -> tuple[sitk.Image, sitk.Image]:
    try:
        from rgcds.phantom import template_brain_mask, template_t1

        return template_t1(), template_brain_mask()
    except ImportError:
        from nilearn import datasets

        def to_sitk(img: Any) -> sitk.Image:
            data = np.asarray(img.get_fdata(), dtype=np.float32).transpose(2, 1, 0)
            image = sitk.GetImageFromArray(np.ascontiguousarray(data))
            affine = img.affine
            zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
            image.SetSpacing([float(z) for z in zooms])
            flip = np.diag([-1.0, -1.0, 1.0])  # RAS -> LPS
            image.SetDirection((flip @ (affine[:3, :3] / zooms)).ravel().tolist())
            image.SetOrigin((flip @ affine[:3, 3]).tolist())
            return image

        t1 = to_sitk(datasets.load_mni152_template(resolution=1))
        mask = to_sitk(datasets.load_mni152_brain_mask(resolution=1))
        return t1, sitk.Cast(mask > 0.5, sitk.sitkUInt8)


def template(spacing: float = 2.0) -> tuple[sitk.Image, sitk.Image]:
    """The T1 template and its brain mask, shrunk to ``spacing`` mm for fast tests."""
    t1, mask = _template_1mm()
    factor = max(1, round(spacing / t1.GetSpacing()[0]))
    small = sitk.BinShrink(sitk.Cast(t1, sitk.sitkFloat32), [factor] * 3)
    small_mask = resample_onto(mask, GridGeometry.of(small), label=True)
    return small, small_mask


def known_rigid(center: tuple[float, ...]) -> sitk.Euler3DTransform:
    transform = sitk.Euler3DTransform()
    transform.SetCenter(center)
    transform.SetRotation(math.radians(6.0), math.radians(-4.0), math.radians(5.0))
    transform.SetTranslation((7.0, -5.0, 4.0))
    return transform


def image_center(image: sitk.Image) -> tuple[float, ...]:
    return tuple(
        image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])
    )


def dice(a: sitk.Image, b: sitk.Image) -> float:
    x = sitk.GetArrayViewFromImage(a) > 0
    y = sitk.GetArrayViewFromImage(b) > 0
    return float(2 * (x & y).sum() / (x.sum() + y.sum()))


def rotation_angle_deg(matrix: np.ndarray) -> float:
    return math.degrees(math.acos(np.clip((np.trace(matrix) - 1) / 2, -1.0, 1.0)))


def make_volume(image: sitk.Image, uid: str, frame: str = "1.2.3") -> Volume:
    n = image.GetSize()[2]
    return Volume(image, uid, tuple(f"{uid}.{k}" for k in range(n)), frame, "MR")


# --- registration ---------------------------------------------------------------------------


def test_rigid_registration_recovers_known_transform() -> None:
    fixed, mask = template(2.0)
    truth = known_rigid(image_center(fixed))
    # moving(x) = f(fixed(T(x))): different contrast, so mutual information has work to do.
    # The registration maps fixed points to moving points, so it must find T^-1.
    moving = resample_onto(fixed, GridGeometry.of(fixed), transform=truth)
    moving = sitk.Sqrt(sitk.Abs(moving)) * 50.0
    start = time.perf_counter()
    result = register_rigid(fixed, moving, initializer="moments")
    seconds = time.perf_counter() - start
    found = result.transform  # maps fixed points to moving points, should be truth^-1
    points = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)[::97][:, ::-1]
    errors = []
    for index in points:
        p = fixed.TransformIndexToPhysicalPoint([int(i) for i in index])
        back = truth.TransformPoint(found.TransformPoint(p))
        errors.append(np.linalg.norm(np.subtract(back, p)))
    assert max(errors) < 1.0, f"max error {max(errors):.2f} mm"
    composed = np.asarray(truth.GetMatrix()).reshape(3, 3) @ np.asarray(
        sitk.Euler3DTransform(found).GetMatrix()
    ).reshape(3, 3)
    assert rotation_angle_deg(composed) < 1.0
    print(
        f"\nrigid registration (2 mm template, 4-2-1): {seconds:.2f} s, "
        f"max error {max(errors):.2f} mm"
    )


# --- N4 -------------------------------------------------------------------------------------


def test_n4_reduces_a_smooth_bias() -> None:
    image, mask = template(2.0)
    arr = sitk.GetArrayFromImage(image)
    z, _, x = np.indices(arr.shape, dtype=np.float32)
    field = 1.0 + 0.4 * (x / arr.shape[2] - 0.5) + 0.3 * (z / arr.shape[0] - 0.5)
    biased = sitk.GetImageFromArray(arr * field)
    biased.CopyInformation(image)
    corrected = sitk.GetArrayFromImage(n4_correct(biased, mask))
    inside = (sitk.GetArrayViewFromImage(mask) > 0) & (arr > np.percentile(arr, 60))

    def spread(values: np.ndarray) -> float:
        ratio = values[inside] / arr[inside]
        return float(np.std(ratio / np.mean(ratio)))

    assert spread(corrected) < 0.5 * spread(arr * field)


# --- brain extraction and normalisation -----------------------------------------------------


def test_template_brain_extractor_dice() -> None:
    t1_1mm, mask_1mm = _template_1mm()
    subject, truth_mask = template(2.0)
    # The subject is the template under a known similarity transform (rigid + 4 % larger).
    known = sitk.Similarity3DTransform()
    known.SetCenter(image_center(subject))
    known.SetRotation((0.0, 0.0, 1.0), math.radians(7.0))
    known.SetTranslation((5.0, -3.0, 2.0))
    known.SetScale(1.0 / 1.04)
    grid = GridGeometry.of(subject)
    moved = resample_onto(subject, grid, transform=known)
    truth = resample_onto(truth_mask, grid, transform=known, label=True)
    extractor = TemplateBrainExtractor(t1_1mm, mask_1mm)
    assert isinstance(extractor, BrainExtractor)
    start = time.perf_counter()
    mask = extractor(moved)
    seconds = time.perf_counter() - start
    assert mask.GetSize() == moved.GetSize()
    score = dice(mask, truth)
    assert score >= 0.95, score
    print(f"\ntemplate brain extraction: Dice {score:.3f} in {seconds:.2f} s")


def test_zscore_inside_mask() -> None:
    image, mask = template(4.0)
    out = sitk.GetArrayFromImage(zscore(image * 3.0 + 10.0, mask))
    inside = sitk.GetArrayViewFromImage(mask) > 0
    assert abs(out[inside].mean()) < 1e-4 and abs(out[inside].std() - 1.0) < 1e-4
    assert (out[~inside] == 0).all()


# --- model space and the way back -----------------------------------------------------------


class FixedMask:
    """A BrainExtractor that returns a given mask resampled to the image (no registration)."""

    def __init__(self, mask: sitk.Image) -> None:
        self.mask = mask

    def __call__(self, image: sitk.Image) -> sitk.Image:
        return resample_onto(self.mask, GridGeometry.of(image), label=True)


def blob_labels(reference: sitk.Image) -> sitk.Image:
    """Three nested tumour-like labels (1 NCR, 2 ED, 3 ET) on the reference grid."""
    size = reference.GetSize()
    z, y, x = np.indices(size[::-1], dtype=np.float32)
    spacing = reference.GetSpacing()
    c = [s / 2 for s in size]
    r = np.sqrt(
        ((x - c[0]) * spacing[0]) ** 2
        + ((y - c[1]) * spacing[1]) ** 2
        + ((z - c[2]) * spacing[2]) ** 2
    )
    labels = np.zeros(r.shape, dtype=np.uint8)
    labels[r < 30] = 2
    labels[r < 18] = 3
    labels[r < 11] = 1
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(reference)
    return image


def oblique_reference(spacing: tuple[float, float, float]) -> sitk.Image:
    image, _ = template(1.0)
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(math.radians(12.0), 0.0, math.radians(-8.0))
    direction = np.asarray(rotation.GetMatrix()).reshape(3, 3)
    size = [int(180 / s) for s in spacing]
    grid = GridGeometry(
        size=(size[0], size[1], size[2]),
        spacing=spacing,
        origin=tuple(
            (
                np.asarray(image_center(image)) - direction @ (np.asarray(size) * spacing / 2)
            ).tolist()
        ),
        direction=tuple(direction.ravel().tolist()),
    )
    return resample_onto(image, grid)


@pytest.mark.parametrize(
    ("native_spacing", "space"),
    [
        ((1.0, 1.0, 1.0), ModelSpace(1.0, Orientation.LPS)),
        ((0.9, 0.9, 3.0), ModelSpace(1.0, Orientation.RAS)),
        ((1.0, 1.0, 1.0), ModelSpace(1.0, Orientation.RAS)),
    ],
)
def test_labels_round_trip_model_space_and_back(
    native_spacing: tuple[float, float, float], space: ModelSpace
) -> None:
    reference = oblique_reference(native_spacing)
    _, mask = template(2.0)
    study = preprocess_study(
        {R.T1C: make_volume(reference, "1.9")},
        model_space=space,
        brain_extractor=FixedMask(mask),
        bias_correction=False,
    )
    assert study.model_geometry.direction == space.orientation.direction
    assert study.model_geometry.spacing == (space.spacing,) * 3
    labels = blob_labels(reference)
    model = study.to_model_space(labels)
    assert model.GetPixelID() == sitk.sitkUInt8
    back = study.labels_to_native(model)
    assert GridGeometry.of(back) == study.reference_geometry
    before = np.bincount(sitk.GetArrayViewFromImage(labels).ravel(), minlength=4)
    after = np.bincount(sitk.GetArrayViewFromImage(back).ravel(), minlength=4)
    for label in (1, 2, 3):
        assert abs(after[label] - before[label]) / before[label] < 0.01, (label, before, after)


def test_model_grid_aligned_with_reference_is_exact() -> None:
    reference, _ = template(2.0)  # LPS-aligned reference, 2 mm
    grid = model_grid(reference, ModelSpace(1.0, Orientation.LPS))
    labels = blob_labels(reference)
    model = resample_onto(labels, grid, label=True)
    back = resample_onto(model, GridGeometry.of(reference), label=True)
    np.testing.assert_array_equal(
        sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(labels)
    )


def test_preprocess_registers_other_series_and_reports_fallback() -> None:
    flair, mask = template(2.0)
    truth = known_rigid(image_center(flair))
    t2 = resample_onto(flair, GridGeometry.of(flair), transform=truth)
    study = preprocess_study(
        {R.FLAIR: make_volume(flair, "1.1"), R.T2: make_volume(sitk.Sqrt(t2 + 1.0), "1.2")},
        model_space=ModelSpace(2.0),
        brain_extractor=FixedMask(mask),
    )
    assert isinstance(study, PreprocessedStudy)
    assert study.reference_role is R.FLAIR and study.reference_series_instance_uid == "1.1"
    assert any("FLAIR is the reference" in n for n in study.notes)
    found = study.transforms[R.T2]
    p = image_center(flair)
    assert np.linalg.norm(np.subtract(truth.TransformPoint(found.TransformPoint(p)), p)) < 1.0
    brain = sitk.GetArrayViewFromImage(study.brain_mask) > 0
    a = sitk.GetArrayViewFromImage(study.images[R.FLAIR])[brain]
    b = sitk.GetArrayViewFromImage(study.images[R.T2])[brain]
    assert np.corrcoef(a, b)[0, 1] > 0.9  # the T2 is back in place
    assert set(study.timings) >= {"registration", "brain_extraction", "total"}
    with pytest.raises(MissingSequenceError, match="no anatomical reference"):
        preprocess_study({R.PET: make_volume(flair, "1.3")}, brain_extractor=FixedMask(mask))


# --- phantom (once rgcds.phantom lands) -----------------------------------------------------


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    import rgcds.phantom as phantom  # a required part of rgcds: a broken import fails
    out = tmp_path_factory.mktemp("phantom")
    return phantom.write_study(out, seed=1, size="small", with_pet=True), out


@pytest.mark.slow
def test_phantom_full_preprocess(phantom_dir: tuple[Any, Path]) -> None:
    _, out = phantom_dir
    start = time.perf_counter()
    selection = select_sequences(index_study(out))
    volumes = {role: load_volume(series) for role, series in selection.chosen.items()}
    loaded = time.perf_counter() - start
    study = preprocess_study(
        volumes, model_space=ModelSpace(1.0, Orientation.LPS), registration=RegistrationSettings()
    )
    assert study.reference_role is R.T1C
    truth = sitk.ReadImage(str(out / "truth" / "labels_t1c_native.nii.gz"), sitk.sitkUInt8)
    truth.SetDirection(study.reference_geometry.direction)  # NIfTI rounding of cosines
    truth.SetOrigin(study.reference_geometry.origin)
    back = study.labels_to_native(study.to_model_space(truth))
    before = np.bincount(sitk.GetArrayViewFromImage(truth).ravel(), minlength=4)
    after = np.bincount(sitk.GetArrayViewFromImage(back).ravel(), minlength=4)
    for label in (1, 2, 3):
        if before[label]:
            assert abs(after[label] - before[label]) / before[label] < 0.01
    # Registration recovers the phantom's head poses: pose_X o pose_T1c^-1 maps T1c points to
    # X points (poses map template to scanner coordinates).
    reference = volumes[R.T1C].image
    pose = {
        role: sitk.ReadTransform(
            str(out / "truth" / "transforms" / f"{role.value}_template_to_scanner.tfm")
        )
        for role in study.transforms
    }
    brain_native = study.brain_mask_native()
    points = np.argwhere(sitk.GetArrayViewFromImage(brain_native) > 0)[::40][:, ::-1]
    for role, found in study.transforms.items():
        if role is R.T1C:
            continue
        errors = []
        for index in points:
            p = reference.TransformIndexToPhysicalPoint([int(i) for i in index])
            expected = pose[role].TransformPoint(pose[R.T1C].GetInverse().TransformPoint(p))
            errors.append(np.linalg.norm(np.subtract(found.TransformPoint(p), expected)))
        assert max(errors) < 1.5, (role, max(errors))
    # Brain mask against the subject's own brain (the phantom deforms the template's anatomy,
    # so the template mask is not the truth).
    truth_brain = sitk.ReadImage(str(out / "truth" / "brain_mask_t1c_native.nii.gz"),
                                 sitk.sitkUInt8)
    truth_brain.CopyInformation(brain_native)
    score = dice(brain_native, truth_brain)
    assert score >= 0.95, score
    # The tumour lies inside the extracted brain.
    brain = sitk.GetArrayViewFromImage(study.brain_mask_native()) > 0
    tumour = sitk.GetArrayViewFromImage(truth) > 0
    assert (brain & tumour).sum() / tumour.sum() > 0.95
    print(f"\nphantom: load {loaded:.2f} s, preprocess {study.timings}, brain Dice {score:.3f}")
