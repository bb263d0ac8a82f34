"""CTV derivation (ESTRO-EANO 2023: cavity + residual enhancement + 15 mm, within the brain)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from rgcds.analysis.ctv import (
    RtStructError,
    derive_ctv,
    rasterise_roi,
    referenced_series_uid,
    roi_names,
    select_ctv_roi,
)
from rgcds.analysis.pet import PetSettings

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


def _mr_series(folder: Path, n: int = 12) -> sitk.Image:
    """A small axial MR series (64 x 48, 2 x 2 x 3 mm) written with pydicom; its grid."""
    folder.mkdir(parents=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID, ds.PatientName, ds.Modality = "RT1", "Rt^Test", "MR"
        ds.StudyDate = ds.SeriesDate = "20260101"
        ds.StudyTime = ds.SeriesTime = "120000"
        ds.InstanceNumber = k + 1
        ds.StudyID, ds.SeriesNumber = "1", 1
        ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber = "19600101", "O", "A1"
        ds.ReferringPhysicianName, ds.StudyDescription, ds.SeriesDescription = "", "rt", "t1c"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-64.0, -48.0, 3.0 * k]
        ds.PixelSpacing = [2.0, 2.0]
        ds.SliceThickness = 3.0
        ds.Rows, ds.Columns = 48, 64
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 15, 0, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = np.full((48, 64), 100, np.uint16).tobytes()
        ds.save_as(folder / f"{k:03d}.dcm", enforce_file_format=True)
    grid = sitk.Image(64, 48, n, sitk.sitkUInt8)
    grid.SetOrigin((-64.0, -48.0, 0.0))
    grid.SetSpacing((2.0, 2.0, 3.0))
    return grid


def test_rtstruct_ctv_roi_is_rasterised_with_rt_utils(tmp_path: Path) -> None:
    from rt_utils import RTStructBuilder

    grid = _mr_series(tmp_path / "mr")
    zz, yy, xx = np.mgrid[0:12, 0:48, 0:64]
    truth = ((xx - 30) * 2.0) ** 2 + ((yy - 22) * 2.0) ** 2 + ((zz - 6) * 3.0) ** 2 <= 15.0**2
    rt = RTStructBuilder.create_new(dicom_series_path=str(tmp_path / "mr"))
    rt.add_roi(mask=np.transpose(truth, (1, 2, 0)), name="CTV_60")
    rt.add_roi(mask=np.transpose(truth, (1, 2, 0)), name="PTV_60")
    path = tmp_path / "rs.dcm"
    rt.save(str(path))

    names = roi_names(path)
    assert names == ["CTV_60", "PTV_60"]
    assert select_ctv_roi(names) == "CTV_60"
    assert referenced_series_uid(path) is not None
    mask = rasterise_roi(path, "CTV_60", grid)
    got = sitk.GetArrayFromImage(mask).astype(bool)
    dice = 2 * np.count_nonzero(got & truth) / (np.count_nonzero(got) + np.count_nonzero(truth))
    assert dice > 0.9, dice
    with pytest.raises(RtStructError, match="no ROI named"):
        rasterise_roi(path, "GTV", grid)


def test_rtstruct_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "rs.dcm"
    bad.write_bytes(b"not dicom")
    with pytest.raises(RtStructError, match="cannot be read"):
        roi_names(bad)
    grid = _mr_series(tmp_path / "mr")
    with pytest.raises(RtStructError, match="cannot be read"):
        rasterise_roi(bad, "CTV", grid)
