"""Synthetic inputs for the result writers' tests and the demo (no real patient data).

A small single-frame MR series with valid MR Image IOD attributes and a label array with
all three BraTS sub-regions; a small PET series of the same patient in its own study (as a
PET/CT study arrives), PET masks, a TBR map and a PET report. The patient name is synthetic
and distinctive so that tests can check that it never reaches a log line.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.uid import PositronEmissionTomographyImageStorage

from rgcds.results.content import (
    PET_UNITS_ARBITRARY,
    PET_UNITS_SUV,
    AlgorithmInfo,
    ModelProvenance,
    PetImages,
    PetRegistration,
    PetReport,
    PetSegment,
    PrognosisItem,
    ReportContent,
    ReportStatus,
    ResidualAssessment,
    SeriesRole,
    SeriesUsed,
    SourceSeries,
    StudyIdentity,
)
from rgcds.results.testing_mr import (
    ANALYSED_AT,
    SEG_MODEL,
    SYNTHETIC_PATIENT_ID,
    SYNTHETIC_PATIENT_NAME,
    _synthetic_instance,
    _uid,
    make_enhanced_mr,
    make_labels,
    make_mr_series,
    make_not_analysed_content,
    make_report_content,
    write_enhanced_series,
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
        sop_uid = _uid("pet-sop", str(seed), str(k))
        ds = _synthetic_instance(PositronEmissionTomographyImageStorage, sop_uid, study_uid)
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
