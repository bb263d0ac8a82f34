"""Synthetic inputs for the result writers' tests and the demo (no real patient data).

A small single-frame MR series with valid MR Image IOD attributes and a label array with
all three BraTS sub-regions; a small PET series of the same patient in its own study (as a
PET/CT study arrives), PET masks, a TBR map and a PET report. The patient name is synthetic
and distinctive so that tests can check that it never reaches a log line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    PYDICOM_ROOT_UID,
    UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    generate_uid,
)

from rgcds.results.content import (
    PET_UNITS_ARBITRARY,
    PET_UNITS_SUV,
    AlgorithmInfo,
    Hemisphere,
    LesionDiameters,
    Lobe,
    Location,
    ModelProvenance,
    PetImages,
    PetRegistration,
    PetReport,
    PetSegment,
    Prediction,
    PrognosisItem,
    RadiomicFeature,
    RanoMeasurement,
    Region,
    RegionMeasurement,
    ReportContent,
    ReportStatus,
    ResidualAssessment,
    SeriesRole,
    SeriesUsed,
    SourceSeries,
    StudyIdentity,
    SurvivalPrediction,
)

SYNTHETIC_PATIENT_NAME = "Zyxwv^Qorbington"
SYNTHETIC_PATIENT_ID = "RGCDS-SYN-0042"


def _uid(*parts: str) -> UID:
    return UID(generate_uid(prefix=PYDICOM_ROOT_UID, entropy_srcs=["rgcds-synthetic", *parts]))


def make_mr_series(
    slices: int = 16,
    rows: int = 64,
    cols: int = 64,
    *,
    seed: int = 1,
    series_number: int = 5,
    description: str = "T1 MPRAGE post contrast",
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
) -> list[pydicom.Dataset]:
    """An axial single-frame MR series (1 mm pixels, 2 mm slices) in slice order."""
    rng = np.random.default_rng(seed)
    study_uid = study_uid or _uid("study", str(seed))
    series_uid = _uid("series", str(seed), str(series_number))
    for_uid = frame_of_reference_uid or _uid("for", str(seed))
    _, yy, xx = np.mgrid[0:slices, 0:rows, 0:cols]
    head = ((yy - rows / 2) / (rows * 0.42)) ** 2 + ((xx - cols / 2) / (cols * 0.36)) ** 2 < 1
    base = (head * 600 + rng.normal(0, 20, head.shape)).clip(0, 4095).astype(np.uint16)
    datasets = []
    for k in range(slices):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        sop_uid = _uid("sop", str(seed), str(series_number), str(k))
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName = SYNTHETIC_PATIENT_NAME
        ds.PatientID = SYNTHETIC_PATIENT_ID
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = "20240102"
        ds.StudyTime = "101500"
        ds.StudyID = "1"
        ds.AccessionNumber = "ACC-SYN-77"
        ds.ReferringPhysicianName = ""
        ds.Modality = "MR"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.SeriesDescription = description
        ds.Manufacturer = "Synthetic"
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.PatientPosition = "HFS"
        ds.BodyPartExamined = "BRAIN"
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ContentDate = "20240102"
        ds.ContentTime = "101600"
        ds.AcquisitionNumber = 1
        ds.ImagePositionPatient = [-cols / 2.0, -rows / 2.0, float(2 * k)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 2.0
        ds.SpacingBetweenSlices = 2.0
        ds.SliceLocation = float(2 * k)
        ds.ScanningSequence = "GR"
        ds.SequenceVariant = "SP"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "3D"
        ds.RepetitionTime = 1900.0
        ds.EchoTime = 2.5
        ds.EchoTrainLength = 1
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelData = base[k].tobytes()
        datasets.append(ds)
    return datasets


def make_labels(
    slices: int = 16, rows: int = 64, cols: int = 64, *, empty: tuple[int, ...] = ()
) -> npt.NDArray[np.uint8]:
    """Nested spheres: 1 necrotic core in 3 enhancing rim in 2 oedema; ``empty`` labels dropped."""
    zz, yy, xx = np.mgrid[0:slices, 0:rows, 0:cols]
    cz, cy, cx = slices / 2, rows * 0.45, cols * 0.6
    r = np.sqrt(((zz - cz) * 2.0) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2)
    labels = np.zeros((slices, rows, cols), np.uint8)
    labels[r < 14] = 2
    labels[r < 9] = 3
    labels[r < 5] = 1
    for value in empty:
        labels[labels == value] = 0
    return labels


ANALYSED_AT = datetime(2024, 1, 2, 12, 0, 0)

def make_enhanced_mr(
    datasets: Sequence[pydicom.Dataset], *, shuffle_seed: int | None = 0
) -> tuple[pydicom.Dataset, tuple[int, ...]]:
    """The single-frame MR ``datasets`` (one series, slice order) as one Legacy Converted
    Enhanced MR image of the same series, with highdicom's converter.

    Parameters
    ----------
    datasets
        Single-frame MR instances of one series, in slice order.
    shuffle_seed
        Store the frames in an order shuffled with this seed (so that the frame order is not
        the slice order, as a scanner may store them); ``None`` keeps the slice order.

    Returns
    -------
    tuple
        The multi-frame dataset, and the 1-based frame number of each slice (slice order),
        as :class:`~rgcds.results.content.SourceSeries` ``frame_numbers`` wants them.
    """
    from highdicom.legacy import LegacyConvertedEnhancedMRImage

    order = np.arange(len(datasets))
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(datasets))
    first = datasets[0]
    series_number = int(first.get("SeriesNumber") or 1)
    image = LegacyConvertedEnhancedMRImage(
        [datasets[int(i)] for i in order],
        series_instance_uid=str(first.SeriesInstanceUID),
        series_number=series_number,
        sop_instance_uid=_uid("enhanced", str(first.SeriesInstanceUID)),
        instance_number=1,
        include_dimension_index=False,
    )
    frame_of_slice = np.empty(len(datasets), dtype=int)
    frame_of_slice[order] = np.arange(1, len(datasets) + 1)
    return image, tuple(int(f) for f in frame_of_slice)


def write_enhanced_series(directory: Path, *, shuffle_seed: int | None = 0) -> Path:
    """Replace the single-frame instances in ``directory`` (one series, e.g. a phantom's
    T1c) by one Legacy Converted Enhanced MR file ``enhanced.dcm``; return its path.

    The instances are put in slice order by Image Position (Patient) along the slice normal
    first; ``shuffle_seed`` as for :func:`make_enhanced_mr`.
    """
    files = sorted(Path(directory).glob("*.dcm"))
    datasets = [pydicom.dcmread(f) for f in files]
    normal = np.cross(
        [float(v) for v in datasets[0].ImageOrientationPatient[:3]],
        [float(v) for v in datasets[0].ImageOrientationPatient[3:]],
    )
    datasets.sort(key=lambda ds: float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])))
    image, _ = make_enhanced_mr(datasets, shuffle_seed=shuffle_seed)
    for f in files:
        f.unlink()
    path = Path(directory) / "enhanced.dcm"
    image.save_as(path, enforce_file_format=True)
    return path


SEG_MODEL = AlgorithmInfo(model_id="gbm-seg-nnunet", version="1.2.0", name="GBM sub-regions")


def make_report_content(
    source: SourceSeries, labels: npt.NDArray[np.uint8] | None = None
) -> ReportContent:
    """A complete report with every kind of content, volumes computed from ``labels``."""
    first = source.datasets[0]
    voxel_ml = float(first.PixelSpacing[0]) * float(first.PixelSpacing[1])
    voxel_ml *= float(first.SliceThickness) / 1000.0
    if labels is None:
        labels = make_labels(*source.shape)
    regions = tuple(
        RegionMeasurement(region, float(np.isin(labels, region.labels).sum()) * voxel_ml)
        for region in Region
    )
    auc = ModelProvenance("mgmt-radiomics-lr", "0.3.1", "AUC", 0.71, (0.62, 0.80))
    cidx = ModelProvenance("os-coxnet", "0.2.0", "C-index", 0.66, (0.60, 0.72))
    return ReportContent(
        study=StudyIdentity.from_dataset(first),
        status=ReportStatus.COMPLETE,
        regions=regions,
        rano=RanoMeasurement(
            (LesionDiameters(1, 28.0, 21.5, 8), LesionDiameters(2, 12.0, 10.5, 6))
        ),
        location=Location(Hemisphere.RIGHT, (Lobe.FRONTAL, Lobe.PARIETAL), crosses_midline=False),
        features=(
            RadiomicFeature(
                Region.ET, SeriesRole.T1C, "original_shape_Sphericity", "Sphericity", 0.61
            ),
            RadiomicFeature(
                Region.WT,
                SeriesRole.FLAIR,
                "original_firstorder_Entropy",
                "Intensity histogram entropy",
                3.2,
            ),
        ),
        predictions=(
            Prediction("MGMT promoter methylation", "methylated", "unmethylated", 0.68, auc),
            Prediction(
                "IDH mutation",
                "IDH-mutant",
                "IDH-wildtype",
                0.07,
                ModelProvenance("idh-radiomics-rf", "0.1.0", "AUC", 0.83, None),
            ),
        ),
        survival=SurvivalPrediction(
            relative_risk=1.4,
            risk_group="high",
            median_os_days=410.0,
            curve=tuple((float(d), float(np.exp(-d / 590.0))) for d in range(0, 1100, 30)),
            provenance=cidx,
        ),
        series_used=(
            SeriesUsed(SeriesRole.T1, "1.2.3.4.1", "T1 MPRAGE"),
            SeriesUsed(SeriesRole.T1C, source.series_instance_uid, str(first.SeriesDescription)),
            SeriesUsed(SeriesRole.T2, "1.2.3.4.2", "T2 TSE"),
            SeriesUsed(SeriesRole.FLAIR, "1.2.3.4.3", "FLAIR 3D"),
        ),
        analysed_at=ANALYSED_AT,
    )


def make_not_analysed_content(study: StudyIdentity) -> ReportContent:
    """A report for a study without a contrast-enhanced T1 series."""
    return ReportContent(
        study=study,
        status=ReportStatus.NOT_ANALYSED,
        reason="No contrast-enhanced T1-weighted series was found in the study.",
        series_used=(SeriesUsed(SeriesRole.T2, "1.2.3.4.2", "T2 TSE"),),
        analysed_at=ANALYSED_AT,
    )


PET_MODEL = AlgorithmInfo(model_id="rgcds-pet", version="0.4.0", name="Amino-acid PET analysis")


def make_pet_series(
    slices: int = 12,
    rows: int = 40,
    cols: int = 40,
    *,
    seed: int = 1,
    study_uid: str | None = None,
) -> list[pydicom.Dataset]:
    """An axial single-frame [11C]MET PET series (2 mm pixels, 3 mm slices) in its own study.

    Same synthetic patient as :func:`make_mr_series`; a different study (a PET/CT study),
    frame of reference and a hot spot (uptake 3.5x background) at the tumour's position.
    """
    rng = np.random.default_rng(seed + 100)
    study_uid = study_uid or _uid("pet-study", str(seed))
    series_uid = _uid("pet-series", str(seed))
    for_uid = _uid("pet-for", str(seed))
    volume = make_pet_uptake(slices, rows, cols) * 2000.0
    volume = (volume + rng.normal(0, 20, volume.shape)).clip(0, 65535).astype(np.uint16)
    datasets = []
    for k in range(slices):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = PositronEmissionTomographyImageStorage
        sop_uid = _uid("pet-sop", str(seed), str(k))
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = PositronEmissionTomographyImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName = SYNTHETIC_PATIENT_NAME
        ds.PatientID = SYNTHETIC_PATIENT_ID
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = "20240104"
        ds.StudyTime = "091000"
        ds.StudyID = "2"
        ds.AccessionNumber = "ACC-SYN-78"
        ds.ReferringPhysicianName = ""
        ds.Modality = "PT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 101
        ds.SeriesDescription = "MET Brain 20min AC"
        ds.SeriesDate = "20240104"
        ds.SeriesTime = "093000"
        ds.Manufacturer = "Synthetic"
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.PatientPosition = "HFS"
        ds.BodyPartExamined = "BRAIN"
        ds.Units = "BQML"
        ds.CountsSource = "EMISSION"
        ds.SeriesType = ["STATIC", "IMAGE"]
        ds.CorrectedImage = ["ATTN", "DECY"]
        ds.DecayCorrection = "START"
        ds.NumberOfSlices = slices
        ds.RadiopharmaceuticalInformationSequence = [pydicom.Dataset()]
        info = ds.RadiopharmaceuticalInformationSequence[0]
        info.Radiopharmaceutical = "Methionine"
        info.RadionuclideTotalDose = 4.0e8
        info.RadionuclideHalfLife = 1223.0
        info.RadiopharmaceuticalStartTime = "090000"
        ds.InstanceNumber = k + 1
        ds.ImageIndex = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.AcquisitionDate = "20240104"
        ds.AcquisitionTime = "093000"
        ds.ContentDate = "20240104"
        ds.ContentTime = "093000"
        ds.FrameReferenceTime = 0.0
        ds.ActualFrameDuration = 1200000
        ds.ImagePositionPatient = [-float(cols), -float(rows), float(3 * k)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [2.0, 2.0]
        ds.SliceThickness = 3.0
        ds.SliceLocation = float(3 * k)
        ds.RescaleSlope = 1.0
        ds.RescaleIntercept = 0.0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = volume[k].tobytes()
        datasets.append(ds)
    return datasets


def make_pet_uptake(slices: int, rows: int, cols: int) -> npt.NDArray[np.float64]:
    """A tumour-to-background ratio map: 1 in the head, up to 3.5 in a hot spot, 0 outside."""
    zz, yy, xx = np.mgrid[0:slices, 0:rows, 0:cols]
    head = ((yy - rows / 2) / (rows * 0.42)) ** 2 + ((xx - cols / 2) / (cols * 0.36)) ** 2 < 1
    r = np.sqrt(
        ((zz - slices / 2) / (slices * 0.25)) ** 2
        + ((yy - rows * 0.45) / (rows * 0.12)) ** 2
        + ((xx - cols * 0.6) / (cols * 0.12)) ** 2
    )
    return np.where(head, 1.0 + 2.5 * np.clip(1.0 - r, 0.0, 1.0), 0.0)


def make_pet_masks(
    tbr: npt.NDArray[np.floating], threshold: float = 1.3, *, empty: tuple[PetSegment, ...] = ()
) -> dict[PetSegment, npt.NDArray[np.bool_]]:
    """BTV (TBR >= threshold), residual tumour (TBR >= 2) and CTV (BTV dilated) masks."""
    from scipy import ndimage

    btv = np.asarray(tbr >= threshold)
    masks = {
        PetSegment.BTV: btv,
        PetSegment.RESIDUAL: np.asarray(tbr >= 2.0),
        PetSegment.CTV: np.asarray(ndimage.binary_dilation(btv, iterations=2)),
    }
    for segment in empty:
        masks[segment] = np.zeros_like(btv)
    return masks


def make_pet_images(pet_source: SourceSeries, mr_source: SourceSeries | None = None) -> PetImages:
    """Masks on the PET grid (and the MR grid), and the TBR map on the overlay grid."""
    tbr_pet = make_pet_uptake(*pet_source.shape)
    if mr_source is None:
        return PetImages(PET_MODEL, make_pet_masks(tbr_pet), tbr=tbr_pet)
    tbr_mr = make_pet_uptake(*mr_source.shape)
    return PetImages(
        PET_MODEL, make_pet_masks(tbr_pet), masks_mr=make_pet_masks(tbr_mr), tbr=tbr_mr
    )


def make_pet_report(
    pet_source: SourceSeries, *, pet_only: bool = False, suv: bool = True
) -> PetReport:
    """A PET report with residual assessment and two prognosis items."""
    residual_models = (
        ModelProvenance("residual-pet-lr", "0.2.0", "AUC", 0.81, (0.72, 0.88)),
        ModelProvenance("residual-radiomics-rf", "0.1.1", "AUC", 0.74, None),
    )
    ttr = ModelProvenance("ttr-coxnet", "0.1.0", "C-index", 0.64, (0.58, 0.70))
    os_model = ModelProvenance("os-coxnet-pet", "0.1.0", "C-index", 0.67, None)
    return PetReport(
        tracer="MET",
        units=PET_UNITS_SUV if suv else PET_UNITS_ARBITRARY,
        threshold_tbr=1.3,
        tbr_max=3.41,
        tbr_mean=1.87,
        suv_max=4.62 if suv else None,
        suv_mean=2.53 if suv else None,
        suv_peak=4.11 if suv else None,
        background_mean=1.355 if suv else 2710.0,
        background_method="contralateral mirror of the tumour region + 25 mm (mean)",
        btv_ml=7.4,
        btv_candidate_ml=19.8,
        ctv_source="derived: ESTRO-EANO 2023",
        ctv_ml=None if pet_only else 212.5,
        pet_source=pet_source,
        registration=None if pet_only else PetRegistration(passed=True, nmi=1.142),
        pet_only_reason="No MR study of the patient within 14 days." if pet_only else None,
        residual=ResidualAssessment(
            present=True,
            probability=0.83,
            models=residual_models,
            probability_pet=0.88,
            probability_radiomics=0.71,
        ),
        prognosis=(
            PrognosisItem(
                "time to recurrence",
                1.21,
                "high",
                ttr,
                median_days=240.0,
                covariates=("age", "KPS", "TBRmax", "BTV", "MGMT"),
                mgmt_used=True,
            ),
            PrognosisItem(
                "overall survival", 0.64, "intermediate", os_model, None, ("age", "TBRmax")
            ),
        ),
        notes=("Synthetic PET for tests.",),
    )


def make_pet_only_content(pet_source: SourceSeries, *, suv: bool = True) -> ReportContent:
    """A complete PET-only report (content.study is the PET study)."""
    first = pet_source.datasets[0]
    return ReportContent(
        study=StudyIdentity.from_dataset(first),
        status=ReportStatus.COMPLETE,
        series_used=(
            SeriesUsed(
                SeriesRole.PET, pet_source.series_instance_uid, str(first.SeriesDescription)
            ),
        ),
        analysed_at=ANALYSED_AT,
        pet=make_pet_report(pet_source, pet_only=True, suv=suv),
    )


__all__ = [
    "ANALYSED_AT",
    "PET_MODEL",
    "SEG_MODEL",
    "SYNTHETIC_PATIENT_ID",
    "SYNTHETIC_PATIENT_NAME",
    "make_enhanced_mr",
    "make_labels",
    "make_mr_series",
    "make_not_analysed_content",
    "make_pet_images",
    "make_pet_masks",
    "make_pet_only_content",
    "make_pet_report",
    "make_pet_series",
    "make_pet_uptake",
    "make_report_content",
    "write_enhanced_series",
]
