"""Plain input records of the result writers: regions, study identity, the segmentation,
measurements, model identification and predictions (no PET).

Re-exported by :mod:`rgcds.results.content`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom

from rgcds.enums import SeriesRole  # one vocabulary: the study stage's roles
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
    """BraTS labels on the reference grid: 0 background, 1 NCR, 2 ED, 3 ET.

    For a post-operative study (``postoperative``) the same labels mean 1 resection cavity,
    2 oedema, 3 residual enhancing tumour; the region keys stay, the displayed names and
    codes change.
    """

    labels: npt.NDArray[np.uint8]
    algorithm: AlgorithmInfo
    postoperative: bool = False
    """Whether the labels come from the post-operative model (cavity / oedema / residual)."""

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
