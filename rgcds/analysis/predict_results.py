"""The results of the prediction models: clinical inputs, provenance, marker and survival
predictions (see :mod:`rgcds.analysis.predict`, which re-exports these names)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rgcds import RESEARCH_USE_ONLY
from rgcds.analysis.cards import ModelCard


@dataclass(frozen=True)
class ClinicalInputs:
    """Clinical variables read from the DICOM header.

    Attributes
    ----------
    age_years
        PatientAge (or derived from birth date and study date); ``None`` if unknown.
    sex
        PatientSex: ``M``, ``F``, ``O`` or ``None``.
    """

    age_years: float | None = None
    sex: str | None = None

    def as_features(self) -> dict[str, float]:
        """Model inputs ``age_years`` and ``sex_male`` (NaN when unknown)."""
        sex = (self.sex or "").strip().upper()
        return {
            "age_years": float(self.age_years) if self.age_years is not None else math.nan,
            "sex_male": 1.0 if sex == "M" else 0.0 if sex == "F" else math.nan,
        }


@dataclass(frozen=True)
class ModelProvenance:
    """Which model produced a result, and how well it was validated.

    Attributes
    ----------
    model_id, version
        From the card.
    metric, value, ci95
        Validation metric; ``None`` for an unvalidated model run in research mode.
    synthetic_training_data
        True when the model was trained on phantoms (demonstration only).
    intended_use
        From the card.
    research_use_only
        Always :data:`rgcds.RESEARCH_USE_ONLY`.
    """

    model_id: str
    version: str
    metric: str | None
    value: float | None
    ci95: tuple[float, float] | None
    synthetic_training_data: bool
    intended_use: str
    research_use_only: str = RESEARCH_USE_ONLY

    @classmethod
    def from_card(cls, card: ModelCard) -> ModelProvenance:
        """Provenance of results produced by ``card``'s model."""
        v = card.validation
        return cls(
            model_id=card.id,
            version=card.version,
            metric=v.metric if v else None,
            value=v.value if v else None,
            ci95=v.ci95 if v else None,
            synthetic_training_data=card.synthetic_training_data,
            intended_use=card.intended_use,
        )


@dataclass(frozen=True)
class MarkerPrediction:
    """A molecular marker prediction.

    Attributes
    ----------
    marker
        The card's target (e.g. ``mgmt_methylated``).
    probability
        Predicted probability of the positive class, in [0, 1].
    positive
        ``probability >= threshold``.
    threshold
        Decision threshold.
    provenance
        The model that produced it.
    """

    marker: str
    probability: float
    positive: bool
    threshold: float
    provenance: ModelProvenance


@dataclass(frozen=True)
class SurvivalPrediction:
    """A prognosis from a Cox model.

    Attributes
    ----------
    relative_risk
        Hazard relative to a training-cohort average patient, ``exp(linear_predictor)``.
    linear_predictor
        ``x · beta`` on standardised inputs.
    risk_group
        ``low``, ``intermediate`` or ``high`` by training-cohort tertiles.
    median_os_months
        Predicted median overall survival; ``None`` when the curve stays above 0.5.
    provenance
        The model that produced it.
    curve_months, curve_survival
        Predicted survival curve.
    """

    relative_risk: float
    linear_predictor: float
    risk_group: str
    median_os_months: float | None
    provenance: ModelProvenance
    curve_months: tuple[float, ...] = field(repr=False)
    curve_survival: tuple[float, ...] = field(repr=False)


@dataclass(frozen=True)
class Predictions:
    """All predictions of one study.

    Attributes
    ----------
    markers, survival
        One prediction per marker (and per survival target).
    notes
        Sentences for the report: models not applied and why, and which variant of a marker
        was reported.
    """

    markers: tuple[MarkerPrediction, ...]
    survival: tuple[SurvivalPrediction, ...]
    notes: tuple[str, ...] = ()


__all__ = [
    "ClinicalInputs",
    "MarkerPrediction",
    "ModelProvenance",
    "Predictions",
    "SurvivalPrediction",
]
