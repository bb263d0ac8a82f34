"""DICOM encoding of phantom series: MR Image Storage instances and the shared header code.

Explicit VR Little Endian, one file per slice, MONOCHROME2. MR: 16 bits allocated, 12 stored,
unsigned (Siemens-like). PET and CT (the low-dose attenuation-correction CT of a PET/CT) are
in :mod:`rgcds.phantom._dicom_petct`.

MR headers copy what a Siemens scanner writes: MPRAGE is ScanningSequence ``GR\\IR`` with
SequenceVariant ``SK\\SP\\MP`` (a sequence classifier should test for ``GR`` membership, not
equality); ImageType is ``ORIGINAL\\PRIMARY\\M\\ND\\NORM``, for which dciodvfy warns that
``M`` is not a defined term for value 3 - the only dciodvfy message these objects produce.
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


def _acquired(ds: Dataset, when: dt.datetime) -> None:
    """Acquisition and content date/time (the series start)."""
    ds.AcquisitionDate = _date(when.date())
    ds.AcquisitionTime = _time(when)
    ds.ContentDate = _date(when.date())
    ds.ContentTime = _time(when)


def _write_slices(
    ds: Dataset,
    directory: Path,
    info: StudyInfo,
    role: str,
    geometry: SeriesGeometry,
    stored: npt.NDArray[np.uint16],
) -> None:
    """Write one file per slice of 12-bit ``stored`` values, reusing the series dataset."""
    for k in range(int(stored.shape[0])):
        _instance(ds, info, role, geometry, k)
        _pixels(ds, stored[k], 12)
        ds.save_as(directory / f"IM{k + 1:04d}.dcm", enforce_file_format=True)


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
    _acquired(ds, series_time)
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
    _write_slices(ds, directory, info, protocol.role, geometry, stored)
    return series_uid, n
