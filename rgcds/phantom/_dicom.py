"""DICOM encoding of phantom series: MR, PET and CT Image Storage instances.

Explicit VR Little Endian, one file per slice, MONOCHROME2. MR: 16 bits allocated, 12 stored,
unsigned (Siemens-like). PET: 16 bits allocated and stored, unsigned, activity concentration
in Bq/ml through a per-slice RescaleSlope (intercept 0), decay-corrected to the series start.
CT (the low-dose attenuation-correction CT of a PET/CT): 16 bits allocated, 12 stored,
unsigned, Hounsfield units through RescaleIntercept -1024 and RescaleSlope 1.

MR headers copy what a Siemens scanner writes: MPRAGE is ScanningSequence ``GR\\IR`` with
SequenceVariant ``SK\\SP\\MP`` (a sequence classifier should test for ``GR`` membership, not
equality); ImageType is ``ORIGINAL\\PRIMARY\\M\\ND\\NORM``, for which dciodvfy warns that
``M`` is not a defined term for value 3 - the only dciodvfy message these objects produce.
SUVbw is exactly computable per QIBA: SeriesDate/Time equals AcquisitionDate/Time (the scan
start), RadiopharmaceuticalStartDateTime is the injection, RadionuclideTotalDose is in Bq,
PatientWeight in kg.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from pydicom.valuerep import format_number_as_ds

from rgcds.phantom._series import Protocol, SeriesGeometry

MR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.4")
PET_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.128")
CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")

C11_HALF_LIFE_S = 1223.1
C11_POSITRON_FRACTION = 0.9981

#: Namespace of the phantom's name-based UUIDs (itself a UUID5 of the project's name).
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:rgcds:phantom")

_INSTITUTION = "RGCDS PHANTOM HOSPITAL"
_MR_STATION = "PHANTOMMR01"
_PET_STATION = "PHANTOMPET01"


def make_uid(seed: int, size: str, *parts: str) -> UID:
    """Deterministic UID from the seed, size and a purpose.

    A name-based (SHA-1, version 5) UUID of the parts, written as ``2.25.<UUID as integer>``
    (ISO/IEC 9834-8, DICOM PS3.5 B.2). ``pydicom.uid.generate_uid(prefix=None, ...)`` ignores
    its entropy sources and is therefore not usable for reproducible UIDs.

    Parameters
    ----------
    seed : int
        Phantom seed.
    size : str
        Phantom size (different sizes are different data, hence different UIDs).
    *parts : str
        What the UID identifies (``"study"``, ``"series", "T1"``, ...).

    Returns
    -------
    pydicom.uid.UID
        A valid UID of at most 64 characters.
    """
    name = "\x1f".join(["rgcds.phantom/1", str(seed), size, *parts])
    return UID(f"2.25.{uuid.uuid5(_UUID_NAMESPACE, name).int}")


def ds_str(value: float) -> str:
    """Format a float as a valid DS string (at most 16 characters)."""
    return format_number_as_ds(float(value))


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study level attributes shared by all series of a phantom study."""

    seed: int
    size: str
    patient_name: str
    patient_id: str
    birth_date: dt.date
    sex: str
    age_years: int
    weight_kg: float
    height_m: float
    accession: str
    study_uid: UID
    study_id: str
    study_start: dt.datetime
    mr_frame_of_reference_uid: UID
    pet_frame_of_reference_uid: UID
    study_description: str = "MR Kopf mit KM + MET-PET^Glioblastom (PHANTOM)"
    #: Extra parts of the series and instance UIDs (empty for the pre-operative study, so that
    #: another study of the same seed, e.g. the post-operative one, gets different UIDs).
    uid_namespace: tuple[str, ...] = ()

    def uid(self, *parts: str) -> UID:
        """Deterministic UID of an object of this study (see :func:`make_uid`)."""
        return make_uid(self.seed, self.size, *self.uid_namespace, *parts)


@dataclass(frozen=True)
class MrParameters:
    """Sequence parameters of an MR series (Siemens-like values)."""

    scanning_sequence: str
    sequence_variant: str
    scan_options: str
    sequence_name: str
    repetition_time: float
    echo_time: float
    inversion_time: float | None
    flip_angle: float
    echo_train_length: int
    pixel_bandwidth: float
    phase_direction: str
    contrast_agent: str | None
    gain: float  # stored value per unit signal (white matter ~ 1 on T1)


MR_PARAMETERS: dict[str, MrParameters] = {
    "T1": MrParameters("GR\\IR", "SK\\SP\\MP", "", "*tfl3d1_16ns", 2300.0, 2.98, 900.0,
                       9.0, 1, 240.0, "ROW", None, 800.0),
    "T1c": MrParameters("GR\\IR", "SK\\SP\\MP", "", "*tfl3d1_16ns", 2300.0, 2.98, 900.0,
                        9.0, 1, 240.0, "ROW", "Gadobutrol", 800.0),
    "T2": MrParameters("SE", "SK\\SP\\OSP", "PFP", "*tse2d1_17", 5000.0, 100.0, None,
                       150.0, 17, 220.0, "ROW", None, 650.0),
    "FLAIR": MrParameters("SE\\IR", "SK\\SP\\MP\\OSP", "PFP", "*tir2d1_16", 9000.0, 89.0,
                          2500.0, 150.0, 16, 287.0, "ROW", None, 700.0),
}  # fmt: skip


def _date(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def _time(t: dt.datetime) -> str:
    return t.strftime("%H%M%S")


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _common(
    info: StudyInfo,
    protocol: Protocol,
    series_uid: UID,
    series_time: dt.datetime,
    sop_class: UID,
    sop_uid: UID,
) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta

    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    start = info.study_start
    ds.StudyDate = _date(start.date())
    ds.StudyTime = _time(start)
    ds.SeriesDate = _date(series_time.date())
    ds.SeriesTime = _time(series_time)
    ds.AccessionNumber = info.accession
    ds.ReferringPhysicianName = "PHANTOM^REFERRER"
    ds.StudyDescription = info.study_description
    ds.SeriesDescription = protocol.description
    ds.PatientName = info.patient_name
    ds.PatientID = info.patient_id
    ds.IssuerOfPatientID = "RGCDS-PHANTOM"
    ds.PatientBirthDate = _date(info.birth_date)
    ds.PatientSex = info.sex
    ds.PatientIdentityRemoved = "NO"
    ds.PatientAge = f"{info.age_years:03d}Y"
    ds.PatientSize = ds_str(info.height_m)
    ds.PatientWeight = ds_str(info.weight_kg)
    ds.BodyPartExamined = "HEAD"
    ds.StudyInstanceUID = info.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = info.study_id
    ds.SeriesNumber = protocol.series_number
    ds.AcquisitionNumber = 1
    ds.InstitutionName = _INSTITUTION
    ds.InstitutionalDepartmentName = "Neuroradiology"
    ds.ProtocolName = protocol.description
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PositionReferenceIndicator = ""
    return ds


def _plane(ds: Dataset, geometry: SeriesGeometry, k: int) -> None:
    m = geometry.matrix
    pos = geometry.slice_position(k)
    ds.ImagePositionPatient = [ds_str(round(float(v), 4)) for v in pos]
    ds.ImageOrientationPatient = [ds_str(float(v)) for v in (*m[:, 0], *m[:, 1])]
    ds.PixelSpacing = [ds_str(geometry.spacing[1]), ds_str(geometry.spacing[0])]
    ds.SliceThickness = ds_str(geometry.slice_thickness)
    ds.SliceLocation = ds_str(round(float(np.dot(pos, m[:, 2])), 4))


def _instance(ds: Dataset, info: StudyInfo, role: str, geometry: SeriesGeometry, k: int) -> None:
    """Set the per-slice attributes of a reused series dataset."""
    sop_uid = info.uid("instance", role, str(k))
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.InstanceNumber = k + 1
    _plane(ds, geometry, k)


def _pixels(ds: Dataset, pixels: npt.NDArray[np.uint16], bits_stored: int) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = int(pixels.shape[0])
    ds.Columns = int(pixels.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()


def write_mr_series(
    directory: Path,
    info: StudyInfo,
    protocol: Protocol,
    geometry: SeriesGeometry,
    stored: npt.NDArray[np.uint16],
    series_time: dt.datetime,
    window: tuple[float, float],
) -> tuple[UID, int]:
    """Write one MR series, one file per slice.

    Parameters
    ----------
    directory : pathlib.Path
        Series folder (created).
    info : StudyInfo
        Patient/study attributes.
    protocol : Protocol
        Series protocol.
    geometry : SeriesGeometry
        Grid of ``stored``.
    stored : numpy.ndarray
        ``(slices, rows, columns)`` stored values (12-bit range).
    series_time : datetime.datetime
        Series and acquisition start.
    window : tuple of float
        WindowCenter, WindowWidth.

    Returns
    -------
    tuple
        SeriesInstanceUID and number of instances.
    """
    directory.mkdir(parents=True, exist_ok=True)
    p = MR_PARAMETERS[protocol.role]
    series_uid = info.uid("series", protocol.role)
    n = int(stored.shape[0])
    ds = _common(info, protocol, series_uid, series_time, MR_IMAGE_STORAGE, series_uid)
    ds.Modality = "MR"
    ds.PatientPosition = "HFS"
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "Skyra"
    ds.StationName = _MR_STATION
    ds.DeviceSerialNumber = "PH3T0001"
    ds.SoftwareVersions = "syngo MR E11"
    ds.FrameOfReferenceUID = info.mr_frame_of_reference_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]
    ds.AcquisitionDate = _date(series_time.date())
    ds.AcquisitionTime = _time(series_time)
    ds.ContentDate = _date(series_time.date())
    ds.ContentTime = _time(series_time)
    ds.ImagesInAcquisition = n
    ds.SpacingBetweenSlices = ds_str(geometry.spacing[2])
    ds.ScanningSequence = p.scanning_sequence.split("\\")
    ds.SequenceVariant = p.sequence_variant.split("\\")
    ds.ScanOptions = p.scan_options.split("\\") if p.scan_options else ""
    ds.MRAcquisitionType = protocol.acquisition_type
    ds.SequenceName = p.sequence_name
    ds.AngioFlag = "N"
    ds.RepetitionTime = ds_str(p.repetition_time)
    ds.EchoTime = ds_str(p.echo_time)
    if p.inversion_time is not None:
        ds.InversionTime = ds_str(p.inversion_time)
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = "123.2"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = "3"
    ds.NumberOfPhaseEncodingSteps = int(stored.shape[1])
    ds.EchoTrainLength = p.echo_train_length
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "100"
    ds.PixelBandwidth = ds_str(p.pixel_bandwidth)
    ds.ReceiveCoilName = "Head_32"
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [0, int(stored.shape[2]), int(stored.shape[1]), 0]
    ds.InPlanePhaseEncodingDirection = p.phase_direction
    ds.FlipAngle = ds_str(p.flip_angle)
    ds.VariableFlipAngleFlag = "N"
    ds.SAR = "0.1"
    ds.dBdt = "0"
    if p.contrast_agent is not None:
        ds.ContrastBolusAgent = p.contrast_agent
        ds.ContrastBolusRoute = "IV"
        ds.ContrastBolusVolume = "7.5"
        ds.ContrastBolusTotalDose = "7.5"
        ds.ContrastBolusIngredient = "GADOLINIUM"
        ds.ContrastBolusIngredientConcentration = "1"
        ds.ContrastBolusStartTime = _time(series_time - dt.timedelta(minutes=3))
    ds.WindowCenter = ds_str(window[0])
    ds.WindowWidth = ds_str(window[1])
    ds.WindowCenterWidthExplanation = "Phantom brain"
    for k in range(n):
        _instance(ds, info, protocol.role, geometry, k)
        _pixels(ds, stored[k], 12)
        ds.save_as(directory / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    return series_uid, n


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
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "Biograph Vision 600"
    ds.StationName = _PET_STATION
    ds.DeviceSerialNumber = "PHPET0001"
    ds.SoftwareVersions = "VG80A"
    ds.FrameOfReferenceUID = info.pet_frame_of_reference_uid
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
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = "Biograph Vision 600"
    ds.StationName = _PET_STATION
    ds.DeviceSerialNumber = "PHPET0001"
    ds.SoftwareVersions = "VG80A"
    ds.FrameOfReferenceUID = info.pet_frame_of_reference_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.AcquisitionDate = _date(series_time.date())
    ds.AcquisitionTime = _time(series_time)
    ds.ContentDate = _date(series_time.date())
    ds.ContentTime = _time(series_time)
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
    for k in range(n):
        _instance(ds, info, protocol.role, geometry, k)
        _pixels(ds, stored[k], 12)
        ds.save_as(directory / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    return series_uid, n
