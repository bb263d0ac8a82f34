"""Synthetic MR inputs for the result writers' tests and the demo (no real patient data):
a small single-frame MR series with valid MR Image IOD attributes (and its Legacy Converted
Enhanced MR form), a label array with all three BraTS sub-regions and report contents.

Re-exported by :mod:`rgcds.results.testing`.
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
    generate_uid,
)

from rgcds.results.content import (
    AlgorithmInfo,
    Hemisphere,
    LesionDiameters,
    Lobe,
    Location,
    ModelProvenance,
    Prediction,
    RadiomicFeature,
    RanoMeasurement,
    Region,
    RegionMeasurement,
    ReportContent,
    ReportStatus,
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


def _synthetic_instance(sop_class_uid: UID, sop_uid: UID, study_uid: str) -> pydicom.Dataset:
    """A new instance of the synthetic patient: file meta, SOP Common, Patient and the Study
    Instance UID (the caller adds the rest)."""
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = SYNTHETIC_PATIENT_NAME
    ds.PatientID = SYNTHETIC_PATIENT_ID
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    return ds


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
        sop_uid = _uid("sop", str(seed), str(series_number), str(k))
        ds = _synthetic_instance(MRImageStorage, sop_uid, study_uid)
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
