"""Input records of the result writers: what the analysis stage found, as frozen values.

The pipeline fills these from the analysis stage and hands them to
:func:`rgcds.results.write_results`. Only :class:`SourceSeries` carries pydicom datasets (the
reference series the SEG is defined on); everything else is plain numbers and strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom

from rgcds.exceptions import DicomInputError


class Region(StrEnum):
    """Tumour sub-regions (BraTS conventions) and their composites."""

    NCR = "NCR"
    """Necrotic (non-enhancing) core, BraTS label 1."""
    ED = "ED"
    """Peritumoural oedema / infiltrated tissue, BraTS label 2."""
    ET = "ET"
    """Enhancing tumour, BraTS label 3 (label 4 in BraTS <= 2020)."""
    TC = "TC"
    """Tumour core: NCR + ET."""
    WT = "WT"
    """Whole tumour: NCR + ET + ED."""

    @property
    def labels(self) -> tuple[int, ...]:
        """The BraTS label values that make up this region."""
        return _REGION_LABELS[self]

    @property
    def is_segment(self) -> bool:
        """Whether the region is one SEG segment (NCR, ED, ET) rather than a union."""
        return len(self.labels) == 1


_REGION_LABELS: dict[Region, tuple[int, ...]] = {
    Region.NCR: (1,),
    Region.ED: (2,),
    Region.ET: (3,),
    Region.TC: (1, 3),
    Region.WT: (1, 2, 3),
}

SEGMENT_REGIONS: tuple[Region, ...] = (Region.NCR, Region.ET, Region.ED)
"""The regions written as SEG segments, in segment-number order (1, 2, 3)."""


class ReportStatus(StrEnum):
    """Whether the study was analysed."""

    COMPLETE = "complete"
    NOT_ANALYSED = "not analysed"


class Hemisphere(StrEnum):
    """Side of the brain the tumour (its whole-tumour region) lies in."""

    LEFT = "left"
    RIGHT = "right"
    BILATERAL = "bilateral"


class Lobe(StrEnum):
    """Anatomical sites a tumour may involve."""

    FRONTAL = "frontal lobe"
    TEMPORAL = "temporal lobe"
    PARIETAL = "parietal lobe"
    OCCIPITAL = "occipital lobe"
    INSULA = "insula"
    CORPUS_CALLOSUM = "corpus callosum"
    BASAL_GANGLIA = "basal ganglia"
    THALAMUS = "thalamus"
    BRAINSTEM = "brainstem"
    CEREBELLUM = "cerebellum"


class SeriesRole(StrEnum):
    """The part a series played in the analysis."""

    T1 = "T1"
    T1C = "T1c"
    T2 = "T2"
    FLAIR = "FLAIR"
    PET = "PET"


@dataclass(frozen=True, slots=True)
class StudyIdentity:
    """Patient and study attributes copied from the source into every result object.

    Needed on its own for a study that could not be analysed (no reference series).
    """

    study_instance_uid: str
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_id: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    referring_physician_name: str = ""

    @classmethod
    def from_dataset(cls, ds: pydicom.Dataset) -> StudyIdentity:
        """Copy the identity attributes from one instance of the study."""

        def get(keyword: str) -> str:
            value: Any = ds.get(keyword, "")
            return "" if value is None else str(value)

        return cls(
            study_instance_uid=str(ds.StudyInstanceUID),
            patient_id=get("PatientID"),
            patient_name=get("PatientName"),
            patient_birth_date=get("PatientBirthDate"),
            patient_sex=get("PatientSex"),
            study_id=get("StudyID"),
            study_date=get("StudyDate"),
            study_time=get("StudyTime"),
            accession_number=get("AccessionNumber"),
            referring_physician_name=get("ReferringPhysicianName"),
        )


@dataclass(frozen=True, slots=True, eq=False)
class SourceSeries:
    """The reference (T1c) series: single-frame MR instances in slice order.

    The SEG is defined on this grid and references these instances. ``datasets[k]``
    is the slice that ``labels[k]`` of :class:`SegmentationResult` belongs to.
    """

    datasets: tuple[pydicom.Dataset, ...]

    def __post_init__(self) -> None:
        if not self.datasets:
            raise DicomInputError("The reference series has no instances; nothing to segment.")
        uids = {str(ds.SeriesInstanceUID) for ds in self.datasets}
        if len(uids) != 1:
            raise DicomInputError(
                "The reference series' datasets come from more than one series; pass the "
                "instances of one series in slice order."
            )

    @property
    def series_instance_uid(self) -> str:
        """The SeriesInstanceUID of the reference series."""
        return str(self.datasets[0].SeriesInstanceUID)

    @property
    def study_instance_uid(self) -> str:
        """The StudyInstanceUID of the reference series."""
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, columns)."""
        first = self.datasets[0]
        return (len(self.datasets), int(first.Rows), int(first.Columns))

    def pixel_volume(self) -> npt.NDArray[np.float32]:
        """The rescaled pixel data as a (slices, rows, cols) float32 array."""
        slices = []
        for ds in self.datasets:
            arr = ds.pixel_array.astype(np.float32)
            slope = float(ds.get("RescaleSlope", 1) or 1)
            intercept = float(ds.get("RescaleIntercept", 0) or 0)
            slices.append(arr * slope + intercept)
        return np.stack(slices)


@dataclass(frozen=True, slots=True)
class AlgorithmInfo:
    """Identification of a model (segmentation, marker or survival)."""

    model_id: str
    version: str
    name: str = ""
    family: str = "Artificial Intelligence"
    """``"Artificial Intelligence"`` or ``"Deep Learning"`` (coded, CID 7162)."""

    @property
    def display_name(self) -> str:
        """``name`` if given, else ``model_id``."""
        return self.name or self.model_id


@dataclass(frozen=True, slots=True, eq=False)
class SegmentationResult:
    """BraTS labels on the reference grid: 0 background, 1 NCR, 2 ED, 3 ET."""

    labels: npt.NDArray[np.uint8]
    algorithm: AlgorithmInfo

    def __post_init__(self) -> None:
        if self.labels.ndim != 3:
            raise DicomInputError(
                f"The label array must be (slices, rows, cols); got shape {self.labels.shape}."
            )
        values = set(np.unique(self.labels).tolist())
        if not values <= {0, 1, 2, 3}:
            raise DicomInputError(
                f"The label array holds values {sorted(values)}; only 0-3 (BraTS) are allowed."
            )

    def mask(self, region: Region) -> npt.NDArray[np.bool_]:
        """Boolean mask of ``region``."""
        return np.isin(self.labels, region.labels)


@dataclass(frozen=True, slots=True)
class RegionMeasurement:
    """Volume of one region (and optionally its mean intensity ratio etc. later)."""

    region: Region
    volume_ml: float


@dataclass(frozen=True, slots=True)
class LesionDiameters:
    """RANO bidimensional measurement of one enhancing lesion (on one axial slice)."""

    lesion: int
    longest_diameter_mm: float
    perpendicular_diameter_mm: float
    slice_index: int | None = None

    @property
    def product_mm2(self) -> float:
        """Product of the perpendicular diameters."""
        return self.longest_diameter_mm * self.perpendicular_diameter_mm


@dataclass(frozen=True, slots=True)
class RanoMeasurement:
    """RANO measurable lesions and the sum of products of perpendicular diameters."""

    lesions: tuple[LesionDiameters, ...]

    @property
    def sum_of_products_mm2(self) -> float:
        """Sum of the products over the lesions."""
        return float(sum(lesion.product_mm2 for lesion in self.lesions))


@dataclass(frozen=True, slots=True)
class Location:
    """Where the tumour lies."""

    hemisphere: Hemisphere
    lobes: tuple[Lobe, ...] = ()
    crosses_midline: bool = False


@dataclass(frozen=True, slots=True)
class RadiomicFeature:
    """One radiomic feature of one region on one sequence."""

    region: Region
    sequence: SeriesRole
    name: str
    """The extractor's name, e.g. ``original_shape_Sphericity``."""
    ibsi_name: str | None
    """The IBSI feature name (or identifier), if the feature maps to one."""
    value: float
    unit: str = "1"
    """UCUM unit; ``"1"`` for dimensionless."""


@dataclass(frozen=True, slots=True)
class ModelProvenance:
    """Which model made a prediction and how well it validated."""

    model_id: str
    model_version: str
    metric_name: str
    """E.g. ``"AUC"`` or ``"C-index"``."""
    metric_value: float
    metric_ci: tuple[float, float] | None = None
    """95 % confidence interval of the metric, if known."""

    def describe_metric(self) -> str:
        """E.g. ``"AUC 0.78 (95% CI 0.70-0.85)"``."""
        text = f"{self.metric_name} {self.metric_value:.2f}"
        if self.metric_ci is not None:
            text += f" (95% CI {self.metric_ci[0]:.2f}-{self.metric_ci[1]:.2f})"
        return text


@dataclass(frozen=True, slots=True)
class Prediction:
    """A molecular marker prediction, e.g. MGMT promoter methylation."""

    target: str
    positive_label: str
    negative_label: str
    probability: float
    """Probability of ``positive_label``, 0 to 1."""
    provenance: ModelProvenance
    threshold: float = 0.5

    @property
    def predicted_label(self) -> str:
        """``positive_label`` if ``probability >= threshold``, else ``negative_label``."""
        return self.positive_label if self.probability >= self.threshold else self.negative_label


@dataclass(frozen=True, slots=True)
class SurvivalPrediction:
    """Predicted overall survival."""

    relative_risk: float
    risk_group: str
    """E.g. ``"low"``, ``"intermediate"``, ``"high"``."""
    median_os_days: float | None
    curve: tuple[tuple[float, float], ...]
    """(days, survival probability) points of the predicted survival function."""
    provenance: ModelProvenance

    def survival_at(self, days: float) -> float | None:
        """Step-function survival probability at ``days``; ``None`` past the curve."""
        if not self.curve or days > self.curve[-1][0]:
            return None
        value = 1.0
        for t, s in self.curve:
            if t <= days:
                value = s
        return value


@dataclass(frozen=True, slots=True)
class SeriesUsed:
    """A series of the study and the role it played."""

    role: SeriesRole
    series_instance_uid: str
    series_description: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class ReportContent:
    """Everything the SR and the PDF report, for one analysis of one study."""

    study: StudyIdentity
    status: ReportStatus
    reason: str | None = None
    regions: tuple[RegionMeasurement, ...] = ()
    rano: RanoMeasurement | None = None
    location: Location | None = None
    features: tuple[RadiomicFeature, ...] = ()
    predictions: tuple[Prediction, ...] = ()
    survival: SurvivalPrediction | None = None
    series_used: tuple[SeriesUsed, ...] = ()
    analysed_at: datetime | None = None
    """When the analysis ran; stamped as content date/time so re-exports are identical."""
    notes: tuple[str, ...] = ()
    """Free-text notes shown in the SR and the PDF (e.g. warnings); never PHI."""

    def __post_init__(self) -> None:
        if self.status is ReportStatus.NOT_ANALYSED and not self.reason:
            raise ValueError("A report of a study that was not analysed must say why (reason).")


__all__ = [
    "SEGMENT_REGIONS",
    "AlgorithmInfo",
    "Hemisphere",
    "LesionDiameters",
    "Lobe",
    "Location",
    "ModelProvenance",
    "Prediction",
    "RadiomicFeature",
    "RanoMeasurement",
    "Region",
    "RegionMeasurement",
    "ReportContent",
    "ReportStatus",
    "SegmentationResult",
    "SeriesRole",
    "SeriesUsed",
    "SourceSeries",
    "StudyIdentity",
    "SurvivalPrediction",
]
