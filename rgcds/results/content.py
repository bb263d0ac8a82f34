"""Input records of the result writers: what the analysis stage found, as frozen values.

The pipeline fills these from the analysis stage and hands them to
:func:`rgcds.results.write_results`. Only :class:`SourceSeries` carries pydicom datasets (the
reference series the SEG is defined on); everything else is plain numbers and strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
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


def is_multiframe(ds: pydicom.Dataset) -> bool:
    """Whether ``ds`` is a multi-frame image with functional groups (Enhanced or Legacy
    Converted Enhanced MR/PET/CT), whose frames are the slices of a volume."""
    return int(ds.get("NumberOfFrames") or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds


def frame_macro(ds: pydicom.Dataset, frame_number: int, keyword: str) -> pydicom.Dataset | None:
    """The first item of functional group ``keyword`` (e.g. ``"PlanePositionSequence"``) of
    frame ``frame_number`` (1-based): per-frame if present, else shared; ``None`` if neither."""
    for groups, index in (
        (ds.get("PerFrameFunctionalGroupsSequence"), frame_number - 1),
        (ds.get("SharedFunctionalGroupsSequence"), 0),
    ):
        if groups and 0 <= index < len(groups):
            seq = groups[index].get(keyword)
            if seq:
                item: pydicom.Dataset = seq[0]
                return item
    return None


@dataclass(frozen=True, slots=True, eq=False)
class SourceSeries:
    """The reference (T1c) series, in slice order: single-frame instances, or the frames of
    one multi-frame instance (Enhanced or Legacy Converted Enhanced MR/PET).

    The SEG is defined on this grid and references these instances (frames). Slice ``k``
    (``labels[k]`` of :class:`SegmentationResult`) is ``datasets[k]`` for single-frame
    instances, and frame ``frame_numbers[k]`` of ``datasets[0]`` for a multi-frame one
    (:meth:`slice_dataset`, :meth:`slice_frame_number`).

    Raises
    ------
    DicomInputError
        If there are no datasets, they come from more than one series, a multi-frame
        instance comes with other instances, or a frame number is not a frame of it.
    """

    datasets: tuple[pydicom.Dataset, ...]
    frame_numbers: tuple[int, ...] = ()
    """The 1-based frame of the multi-frame ``datasets[0]`` that each slice is, in slice
    order (the stored frame order if not given); empty for single-frame instances."""

    def __post_init__(self) -> None:
        if not self.datasets:
            raise DicomInputError("The reference series has no instances; nothing to segment.")
        uids = {str(ds.SeriesInstanceUID) for ds in self.datasets}
        if len(uids) != 1:
            raise DicomInputError(
                "The reference series' datasets come from more than one series; pass the "
                "instances of one series in slice order."
            )
        if not any(is_multiframe(ds) for ds in self.datasets):
            if any(f != 1 for f in self.frame_numbers):
                raise DicomInputError(
                    "Frame numbers other than 1 were given for single-frame instances; pass "
                    "frame numbers only with one multi-frame instance."
                )
            object.__setattr__(self, "frame_numbers", ())
            return
        if len(self.datasets) != 1:
            raise DicomInputError(
                f"The reference series holds {len(self.datasets)} instances of which some are "
                "multi-frame; a SEG can be derived from one multi-frame image or from "
                "single-frame images only. Send the series as one Enhanced object or as "
                "single-frame instances."
            )
        n_frames = int(self.datasets[0].get("NumberOfFrames") or 1)
        frames = self.frame_numbers or tuple(range(1, n_frames + 1))
        if any(not 1 <= f <= n_frames for f in frames) or len(set(frames)) != len(frames):
            raise DicomInputError(
                f"The frame numbers of the reference slices must be distinct frames 1-"
                f"{n_frames} of the multi-frame instance; got {min(frames)}-{max(frames)} "
                f"for {len(frames)} slices."
            )
        object.__setattr__(self, "frame_numbers", tuple(int(f) for f in frames))

    @property
    def series_instance_uid(self) -> str:
        """The SeriesInstanceUID of the reference series."""
        return str(self.datasets[0].SeriesInstanceUID)

    @property
    def study_instance_uid(self) -> str:
        """The StudyInstanceUID of the reference series."""
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def is_multiframe(self) -> bool:
        """Whether the slices are frames of one multi-frame instance."""
        return bool(self.frame_numbers)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, columns)."""
        first = self.datasets[0]
        slices = len(self.frame_numbers) if self.is_multiframe else len(self.datasets)
        return (slices, int(first.Rows), int(first.Columns))

    def slice_dataset(self, k: int) -> pydicom.Dataset:
        """The instance that holds slice ``k``."""
        return self.datasets[0] if self.is_multiframe else self.datasets[k]

    def slice_frame_number(self, k: int) -> int | None:
        """The 1-based frame number of slice ``k`` in its multi-frame instance, or ``None``
        for a single-frame instance."""
        return self.frame_numbers[k] if self.is_multiframe else None

    def slice_geometry(self, k: int) -> tuple[tuple[float, float], tuple[float, ...]]:
        """Pixel Spacing (row, column; mm) and Image Orientation (Patient) of slice ``k``,
        from the top level or (multi-frame) the frame's functional groups."""
        ds = self.slice_dataset(k)
        frame = self.slice_frame_number(k)
        if frame is None:
            spacing_ds: pydicom.Dataset | None = ds
            orientation_ds: pydicom.Dataset | None = ds
        else:
            spacing_ds = frame_macro(ds, frame, "PixelMeasuresSequence")
            orientation_ds = frame_macro(ds, frame, "PlaneOrientationSequence")
        values = spacing_ds.get("PixelSpacing") if spacing_ds is not None else None
        spacing = [float(v) for v in values or (1.0, 1.0)]
        if orientation_ds is None or "ImageOrientationPatient" not in orientation_ds:
            raise DicomInputError(
                f"Slice {k + 1} of the reference series has no Image Orientation (Patient); "
                "it cannot be placed in patient space."
            )
        orientation = tuple(float(v) for v in orientation_ds.ImageOrientationPatient)
        return (spacing[0], spacing[1]), orientation

    def to_source_order(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``array`` (slice order on axis 0) in the order of the source frames, as highdicom
        expects it with a multi-frame source image: frame ``f`` at index ``f - 1``, frames
        that are no slice all zero. Unchanged for single-frame instances."""
        if not self.is_multiframe:
            return array
        n_frames = int(self.datasets[0].get("NumberOfFrames") or 1)
        out = np.zeros((n_frames, *array.shape[1:]), dtype=array.dtype)
        out[np.asarray(self.frame_numbers) - 1] = array
        return out

    def pixel_volume(self) -> npt.NDArray[np.float32]:
        """The rescaled pixel data as a (slices, rows, cols) float32 array."""
        if not self.is_multiframe:
            slices = []
            for ds in self.datasets:
                arr = ds.pixel_array.astype(np.float32)
                slope = float(ds.get("RescaleSlope", 1) or 1)
                intercept = float(ds.get("RescaleIntercept", 0) or 0)
                slices.append(arr * slope + intercept)
            return np.stack(slices)
        ds = self.datasets[0]
        pixels = np.asarray(ds.pixel_array)
        if pixels.ndim == 2:
            pixels = pixels[np.newaxis]
        out = np.empty(self.shape, dtype=np.float32)
        for k, frame in enumerate(self.frame_numbers):
            transform = frame_macro(ds, frame, "PixelValueTransformationSequence") or ds
            slope = float(transform.get("RescaleSlope", 1) or 1)
            intercept = float(transform.get("RescaleIntercept", 0) or 0)
            out[k] = pixels[frame - 1].astype(np.float32) * slope + intercept
        return out


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


class PetSegment(StrEnum):
    """The segments of the PET SEG (segment labels), in segment-number order."""

    BTV = "Biological tumour volume"
    """Uptake above the tracer's TBR threshold within the search region."""
    RESIDUAL = "Residual tumour"
    """Residual (or recurrent) tumour as assessed from PET and MR."""
    CTV = "Clinical target volume"
    """The radiotherapy CTV (from an RT Structure Set, or derived)."""

    @property
    def short_name(self) -> str:
        """``BTV``, ``RESIDUAL`` or ``CTV``."""
        return self.name

    @classmethod
    def parse(cls, name: str) -> PetSegment:
        """The segment named ``name``: its label or short name (``BTV``, ``RESIDUAL``,
        ``CTV``), case-insensitive.

        Raises
        ------
        ValueError
            If ``name`` is no PET segment.
        """
        key = str(name).strip().upper()
        for segment in cls:
            if key in (segment.name, segment.value.upper()):
                return segment
        raise ValueError(
            f"{name!r} is not a PET segment; use BTV, RESIDUAL or CTV (or their labels)."
        )


PetMasks = Mapping[PetSegment, npt.NDArray[np.bool_]] | Mapping[str, npt.NDArray[np.bool_]]
"""Segment -> boolean mask; keys are :class:`PetSegment` members or their short names
(``"BTV"``, ``"RESIDUAL"``, ``"CTV"``) or labels."""


def pet_masks_by_segment(masks: PetMasks) -> dict[PetSegment, npt.NDArray[np.bool_]]:
    """``masks`` keyed by :class:`PetSegment` (see :meth:`PetSegment.parse`)."""
    return {PetSegment.parse(str(name)): mask for name, mask in masks.items()}


PET_UNITS_SUV = "SUVbw"
"""``PetReport.units`` of a SUV (body weight) calibrated PET."""

PET_UNITS_ARBITRARY = "arbitrary units (not SUV calibrated; ratios only)"
"""``PetReport.units`` of a PET without SUV calibration (only ratios are reported)."""


@dataclass(frozen=True, slots=True)
class PetRegistration:
    """How well the PET was registered to the MR (normalised mutual information)."""

    passed: bool | None
    """Whether the registration passed the quality check; ``None`` when not checked."""
    nmi: float | None = None
    """Normalised mutual information (1 independent, 2 identical)."""


@dataclass(frozen=True, slots=True)
class ResidualAssessment:
    """Whether residual tumour is present, with the combined and per-model probabilities."""

    present: bool
    probability: float
    """Probability of residual tumour (0 to 1), combined."""
    models: tuple[ModelProvenance, ...] = ()
    """The models that contributed (PET model, radiomics model, fusion)."""
    probability_pet: float | None = None
    probability_radiomics: float | None = None
    threshold: float | None = None
    """The decision threshold of the deciding model (``probability`` is its probability);
    ``None`` when unknown (then the call is ``present`` as given)."""
    decided_by: str = ""
    """Which probability decided: ``combined``, ``pet`` or ``radiomics`` (empty if unknown)."""

    def __post_init__(self) -> None:
        for value in (
            self.probability,
            self.probability_pet,
            self.probability_radiomics,
            self.threshold,
        ):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"A probability must lie in [0, 1]; got {value}.")

    @property
    def call(self) -> bool:
        """Whether residual tumour is called present: ``probability >= threshold`` when the
        threshold is known (so the call always follows from the numbers), else ``present``."""
        if self.threshold is None:
            return self.present
        return self.probability >= self.threshold


@dataclass(frozen=True, slots=True)
class PrognosisItem:
    """One prognosis prediction, e.g. time to recurrence or overall survival."""

    endpoint: str
    """``"time to recurrence"`` or ``"overall survival"`` (others are coded privately)."""
    risk_score: float
    risk_group: str
    provenance: ModelProvenance
    median_days: float | None = None
    covariates: tuple[str, ...] = ()
    """The covariates the model used (e.g. ``("age", "KPS", "TBRmax")``)."""
    mgmt_used: bool = False
    """Whether the MGMT status (measured or predicted) was a covariate."""


@dataclass(frozen=True, slots=True, eq=False)
class PetReport:
    """The amino-acid PET analysis as reported in the SR, the PDF and the fused overlays.

    Plain numbers and strings, except ``pet_source``: the PET series (of the PET study,
    which usually differs from the MR study) that the PET SEG is defined on.
    """

    tracer: str
    """``MET``, ``FET``, ``FDOPA``, ``FDG`` or another name."""
    units: str
    """:data:`PET_UNITS_SUV` or :data:`PET_UNITS_ARBITRARY`."""
    threshold_tbr: float
    tbr_max: float
    background_mean: float
    """Mean uptake of the background VOI, in ``units``."""
    background_method: str
    btv_ml: float
    ctv_source: str
    """E.g. ``"RT Structure Set ROI 'CTV'"`` or ``"derived: ESTRO-EANO 2023"``."""
    pet_source: SourceSeries
    tbr_mean: float | None = None
    suv_max: float | None = None
    suv_mean: float | None = None
    suv_peak: float | None = None
    tracer_code: tuple[str, str, str] | None = None
    """(code value, coding scheme designator, code meaning) of the radiopharmaceutical,
    when the source names one; else derived from ``tracer``."""
    registration: PetRegistration | None = None
    """``None`` for a PET-only analysis."""
    pet_only_reason: str | None = None
    """Why the PET was analysed without an MR partner (``None`` when paired)."""
    residual: ResidualAssessment | None = None
    prognosis: tuple[PrognosisItem, ...] = ()
    notes: tuple[str, ...] = ()
    """Free-text notes (never PHI)."""
    ctv_ml: float | None = None
    """The CTV's volume (also when it was refused: ``ctv_refused`` then says why)."""
    ctv_refused: str | None = None
    """Why the CTV was refused as implausible (``None`` when used or absent)."""
    btv_candidate_ml: float | None = None
    """Every supra-threshold voxel of the search region, before the BTV's plausibility rules."""

    def __post_init__(self) -> None:
        if self.threshold_tbr <= 0:
            raise ValueError(f"The TBR threshold must be positive; got {self.threshold_tbr}.")
        if self.btv_ml < 0:
            raise ValueError(f"The BTV volume cannot be negative; got {self.btv_ml}.")

    @property
    def is_suv(self) -> bool:
        """Whether the uptake values are SUVbw (else arbitrary units, ratios only)."""
        return self.units == PET_UNITS_SUV

    @property
    def pet_only(self) -> bool:
        """Whether the PET was analysed without an MR partner."""
        return self.pet_only_reason is not None


@dataclass(frozen=True, slots=True, eq=False)
class PetImages:
    """The PET analysis' masks and uptake map, for the PET SEG and the fused overlays.

    Attributes
    ----------
    algorithm
        Identification of the PET analysis (SEG algorithm identification; UIDs derive from it).
    masks
        Segment -> boolean mask on the PET grid, ``(slices, rows, cols)`` in the slice order
        of ``PetReport.pet_source``; keys are :class:`PetSegment` members or ``"BTV"``,
        ``"RESIDUAL"``, ``"CTV"``. Empty or missing segments are not written.
    masks_mr
        The same segments on the MR reference (T1c) grid, for the MR-study SEG; ``None``
        for a PET-only analysis or without a passed registration.
    tbr
        Tumour-to-background ratio map on the overlay grid: the MR reference grid when paired,
        the PET grid when PET-only. ``None``: no fused overlays.
    """

    algorithm: AlgorithmInfo
    masks: PetMasks
    masks_mr: PetMasks | None = None
    tbr: npt.NDArray[np.floating[Any]] | None = None


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
    pet: PetReport | None = None
    """The amino-acid PET analysis, if a PET was analysed (paired with the MR or alone)."""
    postoperative: bool = False
    """Whether the regions are post-operative (resection cavity, oedema, residual enhancing
    tumour) rather than pre-operative (necrotic core, oedema, enhancing tumour)."""

    def __post_init__(self) -> None:
        if self.status is ReportStatus.NOT_ANALYSED and not self.reason:
            raise ValueError("A report of a study that was not analysed must say why (reason).")


__all__ = [
    "PET_UNITS_ARBITRARY",
    "PET_UNITS_SUV",
    "SEGMENT_REGIONS",
    "AlgorithmInfo",
    "Hemisphere",
    "LesionDiameters",
    "Lobe",
    "Location",
    "ModelProvenance",
    "PetImages",
    "PetMasks",
    "PetRegistration",
    "PetReport",
    "PetSegment",
    "Prediction",
    "PrognosisItem",
    "RadiomicFeature",
    "RanoMeasurement",
    "Region",
    "RegionMeasurement",
    "ReportContent",
    "ReportStatus",
    "ResidualAssessment",
    "SegmentationResult",
    "SeriesRole",
    "SeriesUsed",
    "SourceSeries",
    "StudyIdentity",
    "SurvivalPrediction",
    "frame_macro",
    "is_multiframe",
    "pet_masks_by_segment",
]
