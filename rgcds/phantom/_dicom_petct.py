"""DICOM encoding of the PET and CT series of a phantom study (see :mod:`rgcds.phantom._dicom`).

Explicit VR Little Endian, one file per slice, MONOCHROME2. PET: 16 bits allocated and stored,
unsigned, activity concentration in Bq/ml through a per-slice RescaleSlope (intercept 0),
decay-corrected to the series start. CT (the low-dose attenuation-correction CT of a PET/CT):
16 bits allocated, 12 stored, unsigned, Hounsfield units through RescaleIntercept -1024 and
RescaleSlope 1.

SUVbw is exactly computable per QIBA: SeriesDate/Time equals AcquisitionDate/Time (the scan
start), RadiopharmaceuticalStartDateTime is the injection, RadionuclideTotalDose is in Bq,
PatientWeight in kg.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import UID

from rgcds.phantom._dicom import (
    _PET_STATION,
    StudyInfo,
    _acquired,
    _code,
    _common,
    _date,
    _instance,
    _pixels,
    _time,
    _write_slices,
    ds_str,
)
from rgcds.phantom._series import Protocol, SeriesGeometry

PET_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.128")
CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")

C11_HALF_LIFE_S = 1223.1
C11_POSITRON_FRACTION = 0.9981


def _petct_scanner(ds: Dataset, info: StudyInfo) -> None:
    """Scanner attributes shared by the PET and the CT of the PET/CT."""
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "Biograph Vision 600"
    ds.StationName = _PET_STATION
    ds.DeviceSerialNumber = "PHPET0001"
    ds.SoftwareVersions = "VG80A"
    ds.FrameOfReferenceUID = info.pet_frame_of_reference_uid


@dataclass(frozen=True)
class PetDose:
    """Radiopharmaceutical administration and timing of the PET series."""

    injected_bq: float
    injection_time: dt.datetime
    series_time: dt.datetime
    frame_duration_s: float

    @property
    def decay_to_series_start(self) -> float:
        """``exp(-ln2 * (series start - injection) / T1/2)``."""
        seconds = (self.series_time - self.injection_time).total_seconds()
        return float(np.exp(-np.log(2.0) * seconds / C11_HALF_LIFE_S))

    @property
    def decay_factor_in_frame(self) -> float:
        """DecayFactor: the correction for decay during the frame (relative to its start)."""
        lam_t = np.log(2.0) / C11_HALF_LIFE_S * self.frame_duration_s
        return float(lam_t / (1.0 - np.exp(-lam_t)))

    @property
    def frame_reference_time_ms(self) -> float:
        """Time from the frame start at which the activity equals the frame average."""
        lam = np.log(2.0) / C11_HALF_LIFE_S
        return float(-np.log(1.0 / self.decay_factor_in_frame) / lam * 1000.0)


def write_pet_series(
    directory: Path,
    info: StudyInfo,
    protocol: Protocol,
    geometry: SeriesGeometry,
    bqml: npt.NDArray[np.float32],
    dose: PetDose,
    window_bqml: tuple[float, float],
) -> tuple[UID, int, npt.NDArray[np.float64]]:
    """Write one PET series; return its UID, instance count and the per-slice slopes.

    Parameters
    ----------
    directory : pathlib.Path
        Series folder (created).
    info : StudyInfo
        Patient/study attributes.
    protocol : Protocol
        Series protocol.
    geometry : SeriesGeometry
        Grid of ``bqml``.
    bqml : numpy.ndarray
        ``(slices, rows, columns)`` activity concentration, Bq/ml.
    dose : PetDose
        Administration and timing.
    window_bqml : tuple of float
        WindowCenter, WindowWidth in Bq/ml (rescaled units).

    Returns
    -------
    tuple
        SeriesInstanceUID, number of instances, RescaleSlope per slice.
    """
    directory.mkdir(parents=True, exist_ok=True)
    series_uid = info.uid("series", protocol.role)
    n = int(bqml.shape[0])
    slopes = np.zeros(n, dtype=np.float64)
    t = dose.series_time
    ds = _common(info, protocol, series_uid, t, PET_IMAGE_STORAGE, series_uid)
    ds.Modality = "PT"
    _petct_scanner(ds, info)
    # PET Series
    ds.Units = "BQML"
    ds.CountsSource = "EMISSION"
    ds.SeriesType = ["STATIC", "IMAGE"]
    ds.NumberOfSlices = n
    ds.CorrectedImage = ["NORM", "DTIM", "ATTN", "SCAT", "DECY", "RAN"]
    ds.RandomsCorrectionMethod = "DLYD"
    ds.AttenuationCorrectionMethod = "measured, CT-based"
    ds.ScatterCorrectionMethod = "Model-based"
    ds.DecayCorrection = "START"
    ds.ReconstructionDiameter = ds_str(geometry.size[0] * geometry.spacing[0])
    ds.ReconstructionMethod = "PSF+TOF 4i5s"
    ds.ConvolutionKernel = "XYZ Gauss2.00"
    ds.AxialAcceptance = "0"
    ds.CollimatorType = "NONE"
    # PET Isotope
    rp = Dataset()
    rp.Radiopharmaceutical = "Methionine C^11"
    rp.RadiopharmaceuticalRoute = "Intravenous"
    rp.RadiopharmaceuticalStartTime = _time(dose.injection_time)
    rp.RadiopharmaceuticalStartDateTime = dose.injection_time.strftime("%Y%m%d%H%M%S")
    rp.RadionuclideTotalDose = ds_str(round(dose.injected_bq))
    rp.RadionuclideHalfLife = ds_str(C11_HALF_LIFE_S)
    rp.RadionuclidePositronFraction = ds_str(C11_POSITRON_FRACTION)
    rp.RadionuclideCodeSequence = [_code("40565003", "SCT", "^11^Carbon")]
    rp.RadiopharmaceuticalCodeSequence = [_code("129510001", "SCT", "Methionine C^11^")]
    ds.RadiopharmaceuticalInformationSequence = [rp]
    # NM/PET Patient Orientation
    orientation = _code("102538003", "SCT", "recumbent")
    orientation.PatientOrientationModifierCodeSequence = [_code("40199007", "SCT", "supine")]
    ds.PatientOrientationCodeSequence = [orientation]
    ds.PatientGantryRelationshipCodeSequence = [_code("102540008", "SCT", "headfirst")]
    # General / PET image
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.AcquisitionDate = _date(t.date())
    ds.AcquisitionTime = _time(t)
    ds.ContentDate = _date(t.date())
    ds.ContentTime = _time(t + dt.timedelta(seconds=dose.frame_duration_s))
    ds.ImagesInAcquisition = n
    ds.FrameReferenceTime = ds_str(round(dose.frame_reference_time_ms, 2))
    ds.ActualFrameDuration = round(dose.frame_duration_s * 1000)
    ds.DecayFactor = ds_str(round(dose.decay_factor_in_frame, 6))
    ds.DoseCalibrationFactor = "1"
    ds.SliceSensitivityFactor = "1"
    ds.AcquisitionContextSequence = []
    ds.RescaleIntercept = "0"
    for k in range(n):
        _instance(ds, info, protocol.role, geometry, k)
        ds.ImageIndex = k + 1
        slab = np.asarray(bqml[k], dtype=np.float64)
        peak = float(slab.max())
        slope = float(ds_str(peak / 65000.0)) if peak > 0 else 1.0
        slopes[k] = slope
        pixels = np.clip(np.rint(slab / slope), 0, 65535).astype(np.uint16)
        ds.RescaleSlope = ds_str(slope)
        ds.WindowCenter = ds_str(round(window_bqml[0], 1))
        ds.WindowWidth = ds_str(round(window_bqml[1], 1))
        _pixels(ds, pixels, 16)
        ds.save_as(directory / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    return series_uid, n, slopes


@dataclass(frozen=True)
class CtParameters:
    """Acquisition parameters of a low-dose (attenuation-correction) head CT."""

    kvp: float = 120.0
    tube_current_ma: int = 30
    exposure_time_ms: int = 500
    ctdi_vol_mgy: float = 4.8
    kernel: str = "Hr38"


def write_ct_series(
    directory: Path,
    info: StudyInfo,
    protocol: Protocol,
    geometry: SeriesGeometry,
    hu: npt.NDArray[np.float32],
    series_time: dt.datetime,
    params: CtParameters | None = None,
) -> tuple[UID, int]:
    """Write one CT series (CT Image Storage), one file per slice.

    The CT shares the PET's frame of reference (``info.pet_frame_of_reference_uid``): in a
    PET/CT both come from one scanner and one table position.

    Parameters
    ----------
    directory : pathlib.Path
        Series folder (created).
    info : StudyInfo
        Patient/study attributes.
    protocol : Protocol
        Series protocol (role ``"CT"``).
    geometry : SeriesGeometry
        Grid of ``hu``.
    hu : numpy.ndarray
        ``(slices, rows, columns)`` Hounsfield units.
    series_time : datetime.datetime
        Series and acquisition start.
    params : CtParameters, optional
        Technique (defaults: 120 kV, 30 mA, low dose).

    Returns
    -------
    tuple
        SeriesInstanceUID and number of instances.
    """
    p = params if params is not None else CtParameters()
    directory.mkdir(parents=True, exist_ok=True)
    series_uid = info.uid("series", protocol.role)
    n = int(hu.shape[0])
    stored = np.clip(np.rint(np.asarray(hu, dtype=np.float32) + 1024.0), 0, 4095).astype(np.uint16)
    ds = _common(info, protocol, series_uid, series_time, CT_IMAGE_STORAGE, series_uid)
    ds.Modality = "CT"
    ds.PatientPosition = "HFS"
    _petct_scanner(ds, info)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    _acquired(ds, series_time)
    ds.ImagesInAcquisition = n
    ds.KVP = ds_str(p.kvp)
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = ds_str(round(geometry.size[0] * geometry.spacing[0], 3))
    ds.DistanceSourceToDetector = "1085.6"
    ds.DistanceSourceToPatient = "595"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "150"
    ds.RotationDirection = "CW"
    ds.ExposureTime = p.exposure_time_ms
    ds.XRayTubeCurrent = p.tube_current_ma
    ds.Exposure = max(1, round(p.tube_current_ma * p.exposure_time_ms / 1000))
    ds.FilterType = "FLAT"
    ds.GeneratorPower = round(p.kvp * p.tube_current_ma / 1000)
    ds.FocalSpots = "1.2"
    ds.ConvolutionKernel = p.kernel
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.6
    ds.TotalCollimationWidth = 38.4
    ds.SpiralPitchFactor = 0.8
    ds.CTDIvol = float(p.ctdi_vol_mgy)
    ds.CTDIPhantomTypeCodeSequence = [_code("113691", "DCM", "IEC Head Dosimetry Phantom")]
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "80"
    ds.WindowCenterWidthExplanation = "Brain"
    _write_slices(ds, directory, info, protocol.role, geometry, stored)
    return series_uid, n
