"""DICOM series -> SimpleITK volumes: sorting, Enhanced multi-frame, compression, SUV, geometry."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pydicom.data
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from rgcds.exceptions import DicomInputError, GeometryError
from rgcds.study import (
    FourDimensionalSeriesError,
    GantryTiltError,
    MissingSlicesError,
    MixedOrientationError,
    MultipleStacksError,
    NoDicomFilesError,
    NonUniformSpacingError,
    PetQuantity,
    PixelDataError,
    SeriesRole,
    index_study,
    load_volume,
    select_sequences,
)
from rgcds.study.suv import parse_dicom_datetime

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
PET_IMAGE = "1.2.840.10008.5.1.4.1.1.128"
ENHANCED_PET = "1.2.840.10008.5.1.4.1.1.130"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
ROWS, COLS = 6, 5


def _base(sop_class: str, modality: str, series_uid: str, study_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Doe^Planted"
    ds.PatientID = "PHI-ID-0001"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesDescription = "t1_mprage_tra"
    ds.SeriesNumber = 3
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ROWS, COLS
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def slice_pixels(k: int) -> np.ndarray:
    """A slice whose values encode the slice index: value = 100*k + row*COLS + col."""
    return (100 * k + np.arange(ROWS * COLS).reshape(ROWS, COLS)).astype(np.uint16)


def write_series(
    folder: Path,
    positions: Sequence[Sequence[float]],
    orientations: Sequence[Sequence[float]] | None = None,
    *,
    modality: str = "MR",
    sop_class: str = MR_IMAGE,
    spacing: tuple[float, float] = (0.9, 0.8),
    slopes: Sequence[float] | None = None,
    extra: dict[str, Any] | None = None,
    shuffle: bool = True,
) -> tuple[str, list[Path]]:
    """Write one single-frame instance per position; pixel values encode the written index."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid = generate_uid(), generate_uid()
    order = list(range(len(positions)))
    numbers = order[:]
    if shuffle:
        random.Random(3).shuffle(numbers)  # InstanceNumber deliberately not spatial
    paths = []
    for k in order:
        ds = _base(sop_class, modality, series_uid, study_uid)
        ds.InstanceNumber = numbers[k] + 1
        ds.ImagePositionPatient = [float(v) for v in positions[k]]
        ds.ImageOrientationPatient = list(orientations[k] if orientations else AXIAL)
        ds.PixelSpacing = list(spacing)
        ds.SliceThickness = 2.0
        ds.RescaleSlope = slopes[k] if slopes else 1.0
        ds.RescaleIntercept = 0.0
        for key, value in (extra or {}).items():
            setattr(ds, key, value)
        ds.PixelData = slice_pixels(k).tobytes()
        path = folder / f"im{numbers[k]:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return series_uid, paths


def axial_positions(n: int, step: float = 2.0, z0: float = -10.0) -> list[list[float]]:
    return [[-20.0, -30.0, z0 + step * k] for k in range(n)]


# --- single-frame ---------------------------------------------------------------------------


def test_sorted_by_position_not_instance_number(tmp_path: Path) -> None:
    positions = axial_positions(5)
    order = [3, 0, 4, 1, 2]  # written out of spatial order
    uid, paths = write_series(tmp_path, [positions[i] for i in order])
    volume = load_volume(paths)
    image = volume.image
    assert image.GetSize() == (COLS, ROWS, 5)
    assert image.GetSpacing() == pytest.approx((0.8, 0.9, 2.0))
    assert image.GetOrigin() == pytest.approx((-20.0, -30.0, -10.0))
    assert image.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    array = sitk.GetArrayFromImage(image)
    for z in range(5):
        written = order.index(z)
        np.testing.assert_array_equal(array[z], slice_pixels(written))
    assert len(volume.sop_instance_uids) == 5
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: i for i, p in enumerate(paths)}
    assert [by_uid[u] for u in volume.sop_instance_uids] == [order.index(z) for z in range(5)]
    assert volume.series_instance_uid == uid
    assert volume.frame_of_reference_uid == "1.2.826.0.1.3680043.8.498.1"


def test_sagittal_series_and_reversed_progression(tmp_path: Path) -> None:
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # normal = +x... row x col
    positions = [[10.0 - 1.5 * k, -50.0, 60.0] for k in range(4)]  # descending along normal
    _, paths = write_series(tmp_path, positions, [sagittal] * 4, spacing=(1.0, 1.0))
    image = load_volume(paths).image
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction[:, 0], [0, 1, 0])
    np.testing.assert_allclose(direction[:, 1], [0, 0, -1])
    np.testing.assert_allclose(direction[:, 2], np.cross([0, 1, 0], [0, 0, -1]))
    assert image.GetSpacing()[2] == pytest.approx(1.5)
    # Physical position of voxel (0, 0, k) equals the written Image Position of that slice.
    for k in range(4):
        point = image.TransformIndexToPhysicalPoint((0, 0, k))
        assert point in [pytest.approx(p) for p in positions]


def test_rescale_is_applied_per_slice(tmp_path: Path) -> None:
    _, paths = write_series(tmp_path, axial_positions(3), slopes=[1.0, 0.5, 2.0], shuffle=False)
    array = sitk.GetArrayFromImage(load_volume(paths).image)
    assert array.dtype == np.float32
    np.testing.assert_allclose(array[1], slice_pixels(1) * 0.5)
    np.testing.assert_allclose(array[2], slice_pixels(2) * 2.0)


# --- geometry errors ------------------------------------------------------------------------


def test_missing_slice(tmp_path: Path) -> None:
    positions = axial_positions(8)
    del positions[4]
    _, paths = write_series(tmp_path, positions)
    with pytest.raises(MissingSlicesError, match=r"missing about 1 slice") as info:
        load_volume(paths)
    assert isinstance(info.value, GeometryError) and isinstance(info.value, ValueError)


def test_non_uniform_spacing(tmp_path: Path) -> None:
    zs = [0.0, 2.0, 4.0, 6.5, 8.5, 10.5]
    _, paths = write_series(tmp_path, [[0.0, 0.0, z] for z in zs])
    with pytest.raises(NonUniformSpacingError, match="non-uniform slice spacing"):
        load_volume(paths)


def test_two_orientations(tmp_path: Path) -> None:
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    _, paths = write_series(tmp_path, axial_positions(4), [AXIAL, AXIAL, coronal, coronal])
    with pytest.raises(MixedOrientationError, match="2 different orientations"):
        load_volume(paths)


def test_two_stacks_side_by_side(tmp_path: Path) -> None:
    positions = axial_positions(3) + [[p[0] + 100.0, p[1], p[2]] for p in axial_positions(3)]
    _, paths = write_series(tmp_path, positions)
    with pytest.raises(MultipleStacksError, match="several stacks"):
        load_volume(paths)


def test_gantry_tilt(tmp_path: Path) -> None:
    tilt = math.radians(15)
    positions = [[0.0, -k * 2.0 * math.sin(tilt), k * 2.0 * math.cos(tilt)] for k in range(6)]
    _, paths = write_series(tmp_path, positions)
    with pytest.raises(GantryTiltError, match=r"15\.0 degrees"):
        load_volume(paths)


def test_four_dimensional(tmp_path: Path) -> None:
    positions = axial_positions(4) * 3  # three temporal positions / b-values
    _, paths = write_series(tmp_path, positions)
    with pytest.raises(FourDimensionalSeriesError, match="12 images at only 4 slice positions"):
        load_volume(paths)


def test_error_messages_are_sentences_naming_the_series(tmp_path: Path) -> None:
    positions = axial_positions(4) * 2
    uid, paths = write_series(tmp_path, positions)
    with pytest.raises(GeometryError) as info:
        load_volume(paths)
    message = str(info.value)
    assert uid in message and message.endswith(".") and message[0].isupper()


def test_files_of_two_series_are_refused(tmp_path: Path) -> None:
    _, a = write_series(tmp_path / "a", axial_positions(2))
    _, b = write_series(tmp_path / "b", axial_positions(2, z0=50))
    with pytest.raises(DicomInputError, match="2 different series"):
        load_volume([*a, *b])


# --- Enhanced multi-frame -------------------------------------------------------------------


def _item(**kw: Any) -> Dataset:
    ds = Dataset()
    for key, value in kw.items():
        setattr(ds, key, value)
    return ds


def write_enhanced(
    path: Path,
    frame_order: Sequence[int],
    *,
    sop_class: str = ENHANCED_MR,
    modality: str = "MR",
    slopes: Sequence[float] | None = None,
    positions: Sequence[Sequence[float]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Dataset:
    """An Enhanced multi-frame instance; frame f is spatial slice frame_order[f]."""
    ds = _base(sop_class, modality, generate_uid(), generate_uid())
    ds.NumberOfFrames = len(frame_order)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.MRAcquisitionType = "3D"
    spatial = positions or axial_positions(len(frame_order), step=1.5)
    ds.SharedFunctionalGroupsSequence = DicomSequence(
        [
            _item(
                PlaneOrientationSequence=DicomSequence(
                    [_item(ImageOrientationPatient=list(AXIAL))]
                ),
                PixelMeasuresSequence=DicomSequence(
                    [_item(PixelSpacing=[0.9, 0.8], SliceThickness=1.5)]
                ),
                MRTimingAndRelatedParametersSequence=DicomSequence([_item(RepetitionTime=2000.0)]),
            )
        ]
    )
    per_frame = []
    for f, z in enumerate(frame_order):
        groups = _item(
            PlanePositionSequence=DicomSequence(
                [_item(ImagePositionPatient=[float(v) for v in spatial[z]])]
            ),
            FrameContentSequence=DicomSequence([_item(InStackPositionNumber=z + 1)]),
        )
        slope = slopes[f] if slopes else 1.0
        groups.PixelValueTransformationSequence = DicomSequence(
            [_item(RescaleSlope=slope, RescaleIntercept=-5.0, RescaleType="US")]
        )
        per_frame.append(groups)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    ds.PixelData = np.stack([slice_pixels(z) for z in frame_order]).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds


def test_enhanced_mr_multiframe(tmp_path: Path) -> None:
    order = [2, 0, 3, 1, 4]
    slopes = [1.0, 2.0, 1.0, 0.5, 1.0]
    ds = write_enhanced(tmp_path / "emr.dcm", order, slopes=slopes)
    volume = load_volume([tmp_path / "emr.dcm"])
    image = volume.image
    assert image.GetSize() == (COLS, ROWS, 5)
    assert image.GetSpacing() == pytest.approx((0.8, 0.9, 1.5))
    array = sitk.GetArrayFromImage(image)
    for z in range(5):
        f = order.index(z)
        np.testing.assert_allclose(array[z], slice_pixels(z) * slopes[f] - 5.0)
    assert volume.sop_instance_uids == (ds.SOPInstanceUID,) * 5
    assert volume.frame_numbers == tuple(order.index(z) + 1 for z in range(5))
    # The index reads Enhanced headers from the functional groups.
    info = index_study(tmp_path).series[0]
    assert info.repetition_time == 2000.0 and info.is_3d and info.n_frames == 5


def test_enhanced_mr_4d_is_refused(tmp_path: Path) -> None:
    positions = axial_positions(3, step=1.5) * 2
    write_enhanced(tmp_path / "e4d.dcm", list(range(6)), positions=positions)
    with pytest.raises(FourDimensionalSeriesError):
        load_volume([tmp_path / "e4d.dcm"])


# --- PET and SUV ----------------------------------------------------------------------------

HALF_LIFE = 6586.2  # F-18, s
DOSE = 200e6  # Bq
WEIGHT = 70.0  # kg


def pet_header(
    *,
    decay: str = "START",
    weight: float | None = WEIGHT,
    units: str = "BQML",
    start: str = "100000",
    series_time: str = "110000",
    acq_time: str = "110000",
) -> dict[str, Any]:
    rp = _item(
        Radiopharmaceutical="Fluorethyltyrosin",
        RadiopharmaceuticalStartTime=start,
        RadionuclideTotalDose=str(DOSE),
        RadionuclideHalfLife=str(HALF_LIFE),
        RadiopharmaceuticalCodeSequence=DicomSequence(
            [
                _item(
                    CodeValue="424708001",
                    CodingSchemeDesignator="SCT",
                    CodeMeaning="Fluorethyltyrosin F^18^",
                )
            ]
        ),
    )
    header: dict[str, Any] = {
        "Units": units,
        "DecayCorrection": decay,
        "CorrectedImage": ["ATTN", "DECY"],
        "SeriesDate": "20240102",
        "SeriesTime": series_time,
        "AcquisitionDate": "20240102",
        "AcquisitionTime": acq_time,
        "RadiopharmaceuticalInformationSequence": DicomSequence([rp]),
        "SeriesDescription": "PET Brain FET AC",
    }
    if weight is not None:
        header["PatientWeight"] = str(weight)
    return header


def expected_factor(elapsed_s: float) -> float:
    return WEIGHT * 1000.0 / (DOSE * 2 ** (-elapsed_s / HALF_LIFE))


def test_pet_suv_bw_start(tmp_path: Path) -> None:
    _, paths = write_series(
        tmp_path,
        axial_positions(3),
        modality="PT",
        sop_class=PET_IMAGE,
        slopes=[0.5, 1.0, 2.0],
        extra=pet_header(),
    )
    volume = load_volume(paths)
    assert volume.pet is not None and volume.quantity is PetQuantity.SUVBW
    factor = expected_factor(3600.0)
    assert volume.pet.factor == pytest.approx(factor, rel=1e-9)
    array = sitk.GetArrayFromImage(volume.image)
    np.testing.assert_allclose(array[0], slice_pixels(0) * 0.5 * factor, rtol=1e-5)
    np.testing.assert_allclose(array[2], slice_pixels(2) * 2.0 * factor, rtol=1e-5)
    selection = select_sequences(index_study(tmp_path))
    assert selection.chosen[SeriesRole.PET].series_instance_uid == volume.series_instance_uid
    assert selection.classifications[0].tracer is not None
    assert selection.classifications[0].tracer.value == "FET"


def test_pet_series_time_after_acquisition_uses_earliest_acquisition(tmp_path: Path) -> None:
    _, paths = write_series(
        tmp_path,
        axial_positions(3),
        modality="PT",
        sop_class=PET_IMAGE,
        extra=pet_header(series_time="120000", acq_time="103000"),
    )
    volume = load_volume(paths)
    assert volume.pet is not None
    assert volume.pet.factor == pytest.approx(expected_factor(1800.0))
    assert "earliest acquisition" in volume.pet.reason


def test_pet_decay_admin(tmp_path: Path) -> None:
    _, paths = write_series(
        tmp_path,
        axial_positions(3),
        modality="PT",
        sop_class=PET_IMAGE,
        extra=pet_header(decay="ADMIN"),
    )
    volume = load_volume(paths)
    assert volume.pet is not None and volume.pet.factor == pytest.approx(expected_factor(0.0))


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (pet_header(weight=None), "Patient Weight is missing"),
        (pet_header(start="130000"), "injection time is after the scan"),
        (pet_header(decay="NONE"), "Decay Correction is NONE"),
    ],
)
def test_pet_without_suv_stays_in_bqml_with_reason(
    tmp_path: Path, header: dict[str, Any], why: str
) -> None:
    _, paths = write_series(
        tmp_path,
        axial_positions(3),
        modality="PT",
        sop_class=PET_IMAGE,
        extra=header,
        shuffle=False,
    )
    volume = load_volume(paths)
    assert volume.pet is not None
    assert volume.quantity is PetQuantity.BQML and volume.pet.factor is None
    assert why in volume.pet.reason and "Bq/ml" in volume.pet.reason
    np.testing.assert_allclose(sitk.GetArrayFromImage(volume.image)[1], slice_pixels(1))


def test_pet_counts_are_left_raw(tmp_path: Path) -> None:
    _, paths = write_series(
        tmp_path,
        axial_positions(2),
        modality="PT",
        sop_class=PET_IMAGE,
        extra=pet_header(units="CNTS"),
    )
    volume = load_volume(paths)
    assert volume.quantity is PetQuantity.RAW


def test_enhanced_pet_multiframe_suv(tmp_path: Path) -> None:
    header = pet_header()
    header["DecayCorrectionDateTime"] = "20240102104500"
    write_enhanced(
        tmp_path / "epet.dcm", [1, 0, 2], sop_class=ENHANCED_PET, modality="PT", extra=header
    )
    volume = load_volume([tmp_path / "epet.dcm"])
    assert volume.quantity is PetQuantity.SUVBW
    assert volume.pet is not None
    assert volume.pet.factor == pytest.approx(expected_factor(2700.0))
    array = sitk.GetArrayFromImage(volume.image)
    np.testing.assert_allclose(array[0], (slice_pixels(0) - 5.0) * volume.pet.factor, rtol=1e-5)


def test_parse_dicom_datetime() -> None:
    assert parse_dicom_datetime("20240102", "101530.5") == datetime(2024, 1, 2, 10, 15, 30) + (
        timedelta(seconds=0.5)
    )
    assert parse_dicom_datetime("20240102101530+0100") == datetime(2024, 1, 2, 10, 15, 30)
    assert parse_dicom_datetime("garbage") is None


# --- pydicom's bundled files: compressed transfer syntaxes ----------------------------------


def _testdata(name: str) -> str | None:
    path = pydicom.data.get_testdata_file(name, download=False)
    return None if path is None else str(path)


COMPRESSED = [
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
]
#: pydicom-data's Enhanced MR (a registry package in the dev lock), as encoded by other
#: toolkits: uncompressed, RLE, JPEG-LS and JPEG 2000 lossless. The files carry no
#: functional groups (no frame geometry).
ENHANCED = [
    "emri_small.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_RLE.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "emri_small_big_endian.dcm",
]


@pytest.mark.parametrize("name", COMPRESSED)
def test_bundled_files_convert(name: str) -> None:
    path = _testdata(name)
    assert path is not None, f"{name} is not bundled with this pydicom"
    reference = _testdata("MR_small.dcm")
    assert reference is not None
    volume = load_volume([path])
    ds = pydicom.dcmread(path)
    assert volume.image.GetNumberOfPixels() == ds.Rows * ds.Columns
    assert volume.sop_instance_uids[0] == ds.SOPInstanceUID
    expected = sitk.GetArrayFromImage(load_volume([reference]).image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume.image), expected)


def _with_frame_geometry(path: str, out: Path) -> Path:
    """The file with shared pixel measures / orientation and per-frame positions added.

    The pixel data (compressed or not) is kept byte for byte.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(path)
    n = int(ds.NumberOfFrames)
    measures = Dataset()
    measures.PixelSpacing = [0.9, 0.9]
    measures.SliceThickness = 3.0
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for k in range(n):
        position = Dataset()
        position.ImagePositionPatient = [-28.8, -28.8, 3.0 * k]
        item = Dataset()
        item.PlanePositionSequence = Sequence([position])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    target = out / Path(path).name
    ds.save_as(target)
    return target


@pytest.mark.parametrize("name", ENHANCED)
def test_pydicom_data_enhanced_mr(name: str, tmp_path: Path) -> None:
    path = _testdata(name)
    assert path is not None, f"{name}: pydicom-data (dev lock) is not installed"
    # As shipped, without frame geometry: a clear error, not a crash or a guess.
    with pytest.raises(PixelDataError, match="no functional groups"):
        load_volume([path])
    # With the geometry added, every encoding decodes to the same voxels.
    volume = load_volume([str(_with_frame_geometry(path, tmp_path))])
    ds = pydicom.dcmread(path)
    array = sitk.GetArrayFromImage(volume.image)
    assert array.shape == (int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    reference = _testdata("emri_small.dcm")
    assert reference is not None
    expected = pydicom.dcmread(reference).pixel_array
    np.testing.assert_array_equal(array, expected)
    assert volume.image.GetSpacing() == pytest.approx((0.9, 0.9, 3.0))


def test_file_without_position_gives_clear_error() -> None:
    path = _testdata("JPEG2000.dcm")
    if path is None:
        pytest.skip("JPEG2000.dcm is not bundled with this pydicom.")
    with pytest.raises(PixelDataError, match="no Image Position/Orientation"):
        load_volume([path])


def test_ct_small_converts_in_hounsfield() -> None:
    path = _testdata("CT_small.dcm")
    assert path is not None
    ds = pydicom.dcmread(path)
    array = sitk.GetArrayFromImage(load_volume([path]).image)
    np.testing.assert_allclose(
        array[0], ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    )


# --- index ----------------------------------------------------------------------------------


def test_index_groups_series_and_skips_non_dicom(tmp_path: Path) -> None:
    write_series(tmp_path / "s1", axial_positions(3))
    write_series(tmp_path / "s2", axial_positions(4), extra={"SeriesDescription": "t2_tse_tra"})
    (tmp_path / "README.txt").write_text("not dicom")
    index = index_study(tmp_path)
    assert sorted(s.n_instances for s in index.series) == [3, 4]
    assert index.skipped_files == 1
    assert len(index.study_instance_uids) == 2
    uid = index.series[0].series_instance_uid
    assert index.get(uid).series_instance_uid == uid
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoDicomFilesError, match="No DICOM instance"):
        index_study(tmp_path / "empty")
    with pytest.raises(NoDicomFilesError, match="neither a file nor a directory"):
        index_study(tmp_path / "nothing-here")


def test_phi_is_not_logged_while_indexing(tmp_path: Path) -> None:
    import io
    import logging

    from rgcds.logging import configure_logging

    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    try:
        write_series(tmp_path, axial_positions(3))
        index = index_study(tmp_path)
        load_volume(index.series[0])
    finally:
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    assert "series converted" in text
    assert "PHI-ID-0001" not in text and "Planted" not in text


# --- phantom (once rgcds.phantom lands) -----------------------------------------------------


@pytest.fixture(scope="module")
def phantom_study(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import rgcds.phantom as phantom  # a required part of rgcds: a broken import fails
    out = tmp_path_factory.mktemp("phantom")
    return phantom.write_study(out, seed=1, size="small", with_pet=True), out


def test_phantom_series_are_identified_and_converted(phantom_study: Any) -> None:
    study, out = phantom_study
    index = index_study(out)
    selection = select_sequences(index)
    by_role = {s.role: s for s in study.series}
    for role_name, phantom_series in by_role.items():
        role = SeriesRole(role_name)
        assert role in selection.chosen, (role, selection.classifications)
        assert selection.chosen[role].series_instance_uid == phantom_series.series_instance_uid
    t1c = load_volume(selection.chosen[SeriesRole.T1C])
    truth = sitk.ReadImage(str(out / "truth" / "labels_t1c_native.nii.gz"))
    assert t1c.image.GetSize() == truth.GetSize()
    np.testing.assert_allclose(t1c.image.GetSpacing(), truth.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(t1c.image.GetOrigin(), truth.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(t1c.image.GetDirection(), truth.GetDirection(), atol=1e-4)
    assert len(set(t1c.sop_instance_uids)) in (1, t1c.image.GetSize()[2])
    if SeriesRole.PET in selection.chosen:
        pet = load_volume(selection.chosen[SeriesRole.PET])
        assert pet.pet is not None and pet.quantity is PetQuantity.SUVBW, pet.pet
