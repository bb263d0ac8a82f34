"""A study with a T1c but without its T1, T2 or FLAIR is still segmented, and says so.

Unit level: :func:`rgcds.pipeline.stages.model_channels` (the channel substitution of the
segment stage) and the dual-echo PD/T2 conversion. The whole offline run of a phantom without
T1 or FLAIR is in ``tests/system/test_missing_sequences.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from rgcds.exceptions import MissingSequenceError
from rgcds.pipeline import stages
from rgcds.study import FourDimensionalSeriesError, SeriesRole, load_volume
from tests.unit.test_convert import AXIAL, COLS, MR_IMAGE, ROWS, _base

R = SeriesRole
CHANNELS = ["T1", "T1c", "T2", "FLAIR"]


def image(values: np.ndarray) -> sitk.Image:
    return sitk.GetImageFromArray(values.astype(np.float32))


def study_images(rng: np.random.Generator, roles: list[SeriesRole]) -> dict[SeriesRole, sitk.Image]:
    return {role: image(rng.normal(size=(6, 7, 8)) + k) for k, role in enumerate(roles)}


def test_all_channels_present_need_no_note() -> None:
    images = study_images(np.random.default_rng(0), [R.T1, R.T1C, R.T2, R.FLAIR])
    stacked, notes = stages.model_channels(images, CHANNELS)
    assert stacked.shape == (4, 6, 7, 8) and notes == ()
    np.testing.assert_array_equal(stacked[2], sitk.GetArrayFromImage(images[R.T2]))


def test_missing_t1_uses_the_t1c_and_says_so() -> None:
    images = study_images(np.random.default_rng(1), [R.T1C, R.T2, R.FLAIR])
    stacked, notes = stages.model_channels(images, CHANNELS, method="nearest")
    np.testing.assert_array_equal(stacked[0], sitk.GetArrayFromImage(images[R.T1C]))
    assert notes == (
        "No T1 series: the segmentation used the T1c in its place; volumes may be less "
        "accurate.",
    )


def test_missing_flair_uses_the_t2_and_missing_t2_the_flair() -> None:
    rng = np.random.default_rng(2)
    no_flair = study_images(rng, [R.T1, R.T1C, R.T2])
    stacked, notes = stages.model_channels(no_flair, CHANNELS, method="nearest")
    np.testing.assert_array_equal(stacked[3], sitk.GetArrayFromImage(no_flair[R.T2]))
    assert notes and notes[0].startswith("No FLAIR series: the segmentation used the T2")
    no_t2 = study_images(rng, [R.T1, R.T1C, R.FLAIR])
    stacked, notes = stages.model_channels(no_t2, CHANNELS, method="nearest")
    np.testing.assert_array_equal(stacked[2], sitk.GetArrayFromImage(no_t2[R.FLAIR]))
    assert notes[0].startswith("No T2 series: the segmentation used the FLAIR")


def test_the_default_is_the_synthetic_substitute() -> None:
    assert stages.SUBSTITUTION_METHOD == "synthetic"  # the best on phantoms: see the docs
    images = study_images(np.random.default_rng(10), [R.T1C, R.T2, R.FLAIR])
    _stacked, notes = stages.model_channels(images, CHANNELS)
    assert notes[0].startswith("No T1 series: the segmentation used the T1c in its place")
    assert notes[0].endswith("volumes may be less accurate.")


def test_without_t2_and_flair_both_are_empty_channels() -> None:
    images = study_images(np.random.default_rng(3), [R.T1, R.T1C])
    stacked, notes = stages.model_channels(images, CHANNELS)
    assert not stacked[2].any() and not stacked[3].any()
    assert len(notes) == 2 and all("an empty channel" in n for n in notes)


def test_zero_method_always_gives_an_empty_channel() -> None:
    images = study_images(np.random.default_rng(4), [R.T1C, R.T2, R.FLAIR])
    stacked, notes = stages.model_channels(images, CHANNELS, method="zero")
    assert not stacked[0].any()
    assert "empty channel" in notes[0]


def test_synthetic_t1_clips_the_enhancement_of_the_t1c() -> None:
    rng = np.random.default_rng(5)
    t1c = rng.normal(size=(10, 10, 10))
    t1c[4:6, 4:6, 4:6] = 8.0  # enhancing rim: far above the white matter
    images = {R.T1C: image(t1c), R.T2: image(rng.normal(size=t1c.shape)),
              R.FLAIR: image(rng.normal(size=t1c.shape))}  # fmt: skip
    mask = np.ones(t1c.shape, dtype=bool)
    stacked, notes = stages.model_channels(images, CHANNELS, method="synthetic", brain_mask=mask)
    synthetic = stacked[0]
    assert synthetic[mask].mean() == pytest.approx(0.0, abs=1e-5)
    assert synthetic[mask].std() == pytest.approx(1.0, abs=1e-4)
    enhancing = synthetic[4:6, 4:6, 4:6]
    assert enhancing.max() <= synthetic.max() + 1e-6
    assert enhancing.max() < 3.0  # no longer an outlier
    assert notes[0].startswith("No T1 series: the segmentation used the T1c in its place (")
    assert "to resemble a T1" in notes[0]


def test_synthetic_flair_nulls_fluid() -> None:
    shape = (10, 10, 10)
    rng = np.random.default_rng(8)
    t1 = np.full(shape, 1.0)
    t2 = rng.uniform(0.0, 1.0, size=shape)  # brain tissue
    t1[:2], t2[:2] = -2.0, 3.0  # CSF: dark on T1, bright on T2
    t2[5:7, 5:7, 5:7] = 2.5  # oedema: bright on T2, not dark on T1
    images = {R.T1: image(t1), R.T1C: image(t1), R.T2: image(t2)}
    stacked, _notes = stages.model_channels(
        images, CHANNELS, method="synthetic", brain_mask=np.ones(shape, dtype=bool)
    )
    flair = stacked[3]
    assert flair[:2].mean() < flair[2:5].mean() < flair[5:7, 5:7, 5:7].mean()


def test_synthetic_t2_makes_nulled_fluid_bright() -> None:
    shape = (10, 10, 10)
    rng = np.random.default_rng(9)
    t1 = np.full(shape, 1.0)
    flair = rng.uniform(0.0, 1.0, size=shape)
    t1[:2], flair[:2] = -2.0, 0.0  # CSF: dark on T1 and on FLAIR
    images = {R.T1: image(t1), R.T1C: image(t1), R.FLAIR: image(flair)}
    stacked, notes = stages.model_channels(
        images, CHANNELS, method="synthetic", brain_mask=np.ones(shape, dtype=bool)
    )
    t2 = stacked[2]
    assert t2[:2].mean() > t2[2:].mean() + 1.0
    assert "to resemble a T2" in notes[0]


def test_t1c_is_still_required() -> None:
    images = study_images(np.random.default_rng(6), [R.T1, R.T2, R.FLAIR])
    with pytest.raises(MissingSequenceError, match="T1c"):
        stages.model_channels(images, CHANNELS)


def test_unknown_method_is_refused() -> None:
    images = study_images(np.random.default_rng(7), [R.T1C])
    with pytest.raises(ValueError, match="not one of"):
        stages.model_channels(images, CHANNELS, method="mean")


# --- dual-echo PD/T2: the late echo is the T2 ----------------------------------------------


def write_dual_echo(folder: Path, n: int = 4, echoes: tuple[float, float] = (17.0, 102.0)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid = generate_uid(), generate_uid()
    number = 0
    for e, te in enumerate(echoes):
        for k in range(n):
            ds = _base(MR_IMAGE, "MR", series_uid, study_uid)
            ds.SeriesDescription = "PD/T2 TSE AX"
            number += 1
            ds.InstanceNumber = number
            ds.ImagePositionPatient = [-20.0, -30.0, -10.0 + 5.0 * k]
            ds.ImageOrientationPatient = list(AXIAL)
            ds.PixelSpacing = [0.9, 0.9]
            ds.SliceThickness = 5.0
            ds.EchoTime = te
            ds.EchoNumbers = e + 1
            ds.RescaleSlope, ds.RescaleIntercept = 1.0, 0.0
            pixels = np.full((ROWS, COLS), 1000 * (e + 1) + k, dtype=np.uint16)
            ds.PixelData = pixels.tobytes()
            ds.save_as(folder / f"im{number:03d}.dcm", enforce_file_format=True)


def test_dual_echo_series_converts_its_late_echo(tmp_path: Path) -> None:
    write_dual_echo(tmp_path)
    paths = sorted(tmp_path.glob("*.dcm"))
    with pytest.raises(FourDimensionalSeriesError):
        load_volume(paths)
    volume = load_volume(paths, echo="longest")
    array = sitk.GetArrayFromImage(volume.image)
    assert array.shape == (4, ROWS, COLS)
    assert [int(array[k, 0, 0]) for k in range(4)] == [2000, 2001, 2002, 2003]
    assert len(volume.sop_instance_uids) == 4
    with pytest.raises(ValueError, match="echo"):
        load_volume(paths, echo="first")


def test_single_echo_series_is_unchanged_by_the_echo_option(tmp_path: Path) -> None:
    write_dual_echo(tmp_path, echoes=(95.0,))
    paths = sorted(tmp_path.glob("*.dcm"))
    a = sitk.GetArrayFromImage(load_volume(paths).image)
    b = sitk.GetArrayFromImage(load_volume(paths, echo="longest").image)
    np.testing.assert_array_equal(a, b)
