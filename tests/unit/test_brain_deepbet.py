"""deepbet brain extraction (ONNX Runtime): accuracy on a phantom, grid, orientation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from rgcds.imaging.brain import BrainExtractor
from rgcds.imaging.deepbet import (
    CHECKSUMS_FILE,
    LOCATOR_FILE,
    MODEL_FOLDER,
    SEGMENTER_FILE,
    DeepbetBrainExtractor,
    bounding_box,
    nearest_exact_indices,
    network_array,
    normalise,
)
from rgcds.inference import DEFAULT_MODELS_ROOT, ChecksumMismatchError, ModelNotFoundError
from rgcds.phantom.simulate import simulate_subject

# Measured on simulate_subject(0, "small") with the default crop (256): Dice 0.971 (phantom
# of commit ce9e91a) and 0.962 (the phantom with a new head model, being written alongside),
# each time the same mask voxel for voxel as deepbet 1.0.2's own PyTorch code gives for that
# image. The bound leaves room for further changes to the phantom.
MIN_DICE = 0.94


def dice(a: sitk.Image, b: sitk.Image) -> float:
    x = sitk.GetArrayViewFromImage(a) > 0
    y = sitk.GetArrayViewFromImage(b) > 0
    return float(2.0 * np.logical_and(x, y).sum() / (x.sum() + y.sum()))


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing())
        and np.allclose(a.GetOrigin(), b.GetOrigin())
        and np.allclose(a.GetDirection(), b.GetDirection())
    )


@pytest.fixture(scope="module")
def subject() -> tuple[sitk.Image, sitk.Image]:
    s = simulate_subject(0, "small")
    return s.t1, s.brain_mask


@pytest.fixture(scope="module")
def extractor() -> DeepbetBrainExtractor:
    return DeepbetBrainExtractor()


@pytest.fixture(scope="module")
def mask(extractor: DeepbetBrainExtractor, subject: tuple[sitk.Image, sitk.Image]) -> sitk.Image:
    t1, _ = subject
    start = time.perf_counter()
    out = extractor(t1)  # the first call also creates the sessions
    print(f"\ndeepbet (crop 256, 2 threads, first call): {time.perf_counter() - start:.2f} s")
    return out


def reoriented_copy(image: sitk.Image) -> sitk.Image:
    """The same voxels in the same places, stored with permuted and flipped axes."""
    return sitk.Flip(sitk.PermuteAxes(image, [2, 0, 1]), [True, False, True])


def test_dice_with_phantom_truth(
    extractor: DeepbetBrainExtractor, mask: sitk.Image, subject: tuple[sitk.Image, sitk.Image]
) -> None:
    assert isinstance(extractor, BrainExtractor)
    score = dice(mask, subject[1])
    print(f"\ndeepbet Dice {score:.4f}")
    assert score >= MIN_DICE, score


def test_mask_on_image_grid(mask: sitk.Image, subject: tuple[sitk.Image, sitk.Image]) -> None:
    t1, _ = subject
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert mask.GetSize() == t1.GetSize()
    assert mask.GetSpacing() == t1.GetSpacing()
    assert mask.GetOrigin() == t1.GetOrigin()
    assert mask.GetDirection() == t1.GetDirection()
    assert set(np.unique(sitk.GetArrayViewFromImage(mask))) == {0, 1}


def test_network_sees_nibabel_canonical_array(
    subject: tuple[sitk.Image, sitk.Image], tmp_path: Path
) -> None:
    # deepbet feeds nib.as_closest_canonical(img).get_fdata(): RAS+ axes, indexed (x, y, z).
    # The phantom is LPS in ITK, so this flips two axes; the copy also permutes them.
    t1, _ = subject
    for image in (t1, reoriented_copy(t1)):
        path = tmp_path / "t1.nii.gz"
        sitk.WriteImage(image, str(path))
        canonical = nib.as_closest_canonical(nib.load(path)).get_fdata(dtype=np.float32)
        _, array = network_array(image)
        assert array.shape == canonical.shape
        assert np.array_equal(array, canonical)


def test_reoriented_copy_gives_the_same_mask_in_physical_space(
    extractor: DeepbetBrainExtractor, mask: sitk.Image, subject: tuple[sitk.Image, sitk.Image]
) -> None:
    t1, _ = subject
    copy = reoriented_copy(t1)
    assert copy.GetDirection() != t1.GetDirection()
    point = t1.TransformIndexToPhysicalPoint((40, 70, 50))
    assert copy.GetPixel(copy.TransformPhysicalPointToIndex(point)) == t1.GetPixel((40, 70, 50))
    other = extractor(copy)
    assert same_grid(other, copy)
    back = sitk.Resample(other, mask, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(mask))


def test_nearest_exact_matches_pytorch() -> None:
    # torch.nn.functional.interpolate(mode="nearest-exact") picks these source indices.
    assert nearest_exact_indices(5, 3).tolist() == [0, 2, 4]
    assert nearest_exact_indices(2, 4).tolist() == [0, 0, 1, 1]
    assert nearest_exact_indices(3, 3).tolist() == [0, 1, 2]
    assert nearest_exact_indices(119, 128).max() == 118


def test_bounding_box_scales_and_widens() -> None:
    coarse = np.zeros((10, 10, 10), dtype=bool)
    coarse[2:6, 3:8, 0:10] = True
    box = bounding_box(coarse, (100, 50, 20), 0.1)
    # axis 0: centre 40, size 40 * 1.2 = 48 -> [16, 64); axis 1: centre 27.5 -> 28 (half to
    # even), size 25 * 1.2 = 30 -> [13, 43); axis 2: the whole axis, widened then clipped.
    assert box == (slice(16, 64), slice(13, 43), slice(0, 20))


def test_normalise_maps_to_deepbet_statistics() -> None:
    x = np.random.default_rng(0).gamma(2.0, 1.0, (20, 20, 20)).astype(np.float32)
    y = normalise(x, 0.5, 6.0)
    assert y.dtype == np.float32
    assert y.mean() == pytest.approx(0.449, abs=1e-5)
    assert y.std(ddof=1) == pytest.approx(0.226, abs=1e-5)


def test_crop_shape_must_be_a_multiple_of_32() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        DeepbetBrainExtractor(crop_shape=100)
    assert DeepbetBrainExtractor(crop_shape=(128, 160, 96)).crop_shape == (128, 160, 96)


def test_models_are_found_under_the_models_root() -> None:
    ex = DeepbetBrainExtractor()
    assert ex.model_dir == DEFAULT_MODELS_ROOT / MODEL_FOLDER
    for name in (LOCATOR_FILE, SEGMENTER_FILE, CHECKSUMS_FILE):
        assert (ex.model_dir / name).is_file(), name


def test_missing_or_altered_networks_are_refused(
    subject: tuple[sitk.Image, sitk.Image], tmp_path: Path
) -> None:
    t1, _ = subject
    with pytest.raises(ModelNotFoundError, match="export_deepbet"):
        DeepbetBrainExtractor(tmp_path / "nowhere")(t1)
    folder = tmp_path / MODEL_FOLDER
    folder.mkdir()
    source = DEFAULT_MODELS_ROOT / MODEL_FOLDER
    for name in (LOCATOR_FILE, SEGMENTER_FILE):
        (folder / name).symlink_to(source / name)
    record = json.loads((source / CHECKSUMS_FILE).read_text())
    record["files"][SEGMENTER_FILE]["sha256"] = "0" * 64
    (folder / CHECKSUMS_FILE).write_text(json.dumps(record))
    with pytest.raises(ChecksumMismatchError, match=SEGMENTER_FILE):
        DeepbetBrainExtractor(tmp_path)(t1)
