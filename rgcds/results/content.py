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

from rgcds.enums import SeriesRole  # one vocabulary: the study stage's roles
from rgcds.results.content_records import (
    SEGMENT_REGIONS,
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
    ReportStatus,
    SegmentationResult,
    SeriesUsed,
    StudyIdentity,
    SurvivalPrediction,
)
from rgcds.results.content_source import SourceSeries, frame_macro, is_multiframe


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
