"""Loading and running one prediction model: the skops classifier and the JSON Cox model
(see :mod:`rgcds.analysis.predict`, which re-exports these names)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from rgcds.analysis.cards import (
    ModelCard,
    parse_feature_name,
    read_card,
    require_validated,
    verify_weights,
)
from rgcds.analysis.predict_results import (
    ClinicalInputs,
    MarkerPrediction,
    ModelProvenance,
    SurvivalPrediction,
)
from rgcds.inference.errors import InferenceInputError, ModelCardError

logger = structlog.get_logger(__name__)

#: The only types a classifier's skops file may contain.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.pipeline.Pipeline",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.feature_selection._variance_threshold.VarianceThreshold",
    "sklearn.feature_selection._univariate_selection.SelectKBest",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.linear_model._logistic.LogisticRegression",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.float64",
    "numpy.int64",
    "builtins.slice",
)

COX_FORMAT = "rgcds-coxph-v1"
RISK_GROUPS = ("low", "intermediate", "high")
_DAYS_PER_MONTH = 30.4375


def _vector(
    card: ModelCard, features: Mapping[str, float], clinical: ClinicalInputs | None
) -> NDArray[np.float64]:
    """The model's input row; a feature of an empty region (or a NaN value) is NaN.

    A radiomic feature absent from ``features`` counts as a missing value when its region has
    no features in this study (empty region) or when the same feature is there for another
    region; otherwise it was never extracted and the model cannot run.
    """
    values: dict[str, float] = {k: float(v) for k, v in features.items()}
    if clinical is not None:
        values.update(clinical.as_features())
    present_regions: set[str] = set()
    present_kinds: set[tuple[str, str]] = set()
    for name in values:
        parsed = parse_feature_name(name)
        if parsed is not None:
            present_regions.add(parsed[0])
            present_kinds.add((parsed[1], parsed[2]))
    missing: list[str] = []
    for name in card.features:
        if name in values:
            continue
        parsed = parse_feature_name(name)
        empty_region = (
            parsed is not None
            and bool(present_regions)
            and (parsed[0] not in present_regions or (parsed[1], parsed[2]) in present_kinds)
        )
        if empty_region:
            values[name] = math.nan
        else:
            missing.append(name)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InferenceInputError(
            f"Model {card.id} needs {len(missing)} input(s) that were not given: {shown}. "
            "Extract radiomics with the parameter file the model was trained with."
        )
    return np.asarray([[float(values[name]) for name in card.features]], dtype=float)


def _imputes(estimator: Any) -> bool:
    steps = getattr(estimator, "steps", None)
    if not steps:
        return False
    from sklearn.impute import SimpleImputer

    return any(isinstance(step, SimpleImputer) for _, step in steps)


@dataclass(frozen=True)
class ClassifierModel:
    """A loaded radiogenomic classifier (see :func:`load_model`)."""

    card: ModelCard
    estimator: Any = field(repr=False)
    threshold: float = 0.5

    def predict(
        self, features: Mapping[str, float], clinical: ClinicalInputs | None = None
    ) -> MarkerPrediction:
        """Probability of the marker for one study.

        Parameters
        ----------
        features
            Wide radiomic features (``{region}_{sequence}_{class}_{feature}``).
        clinical
            Age and sex; required when the model uses them.

        Raises
        ------
        InferenceInputError
            If an input the model needs is missing, or a value is missing (empty region) and
            the pipeline has no imputation step.
        """
        x = _vector(self.card, features, clinical)
        if not np.all(np.isfinite(x)) and not _imputes(self.estimator):
            names = zip(self.card.features, x[0], strict=True)
            absent = [n for n, v in names if not np.isfinite(v)]
            raise InferenceInputError(
                f"Model {self.card.id} cannot impute missing values and {len(absent)} of its "
                f"inputs are missing in this study (e.g. {absent[0]}: an empty region)."
            )
        proba = float(self.estimator.predict_proba(x)[0, 1])
        proba = min(1.0, max(0.0, proba))
        return MarkerPrediction(
            marker=self.card.target,
            probability=proba,
            positive=proba >= self.threshold,
            threshold=self.threshold,
            provenance=ModelProvenance.from_card(self.card),
        )


@dataclass(frozen=True)
class CoxWeights:
    """The JSON content of a survival model (format :data:`COX_FORMAT`)."""

    features: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    coefficients: tuple[float, ...]
    baseline_months: tuple[float, ...]
    baseline_survival: tuple[float, ...]
    risk_tertiles: tuple[float, float]

    def to_json(self) -> str:
        """Serialise (the file the card's sha256 covers)."""
        data = {"format": COX_FORMAT, **{k: list(v) for k, v in self.__dict__.items()}}
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str, where: Path) -> CoxWeights:
        """Parse and check a survival model file."""
        try:
            data = json.loads(text)
            if data.get("format") != COX_FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {COX_FORMAT!r}")
            weights = cls(
                features=tuple(str(f) for f in data["features"]),
                means=tuple(float(v) for v in data["means"]),
                scales=tuple(float(v) for v in data["scales"]),
                coefficients=tuple(float(v) for v in data["coefficients"]),
                baseline_months=tuple(float(v) for v in data["baseline_months"]),
                baseline_survival=tuple(float(v) for v in data["baseline_survival"]),
                risk_tertiles=(float(data["risk_tertiles"][0]), float(data["risk_tertiles"][1])),
            )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ModelCardError(f"The survival model file {where} is invalid: {exc}.") from None
        n = len(weights.features)
        if not (len(weights.means) == len(weights.scales) == len(weights.coefficients) == n):
            raise ModelCardError(f"The survival model file {where} has inconsistent lengths.")
        if len(weights.baseline_months) != len(weights.baseline_survival):
            raise ModelCardError(f"The survival model file {where} has a malformed baseline curve.")
        return weights


@dataclass(frozen=True)
class SurvivalModel:
    """A loaded Cox survival model (see :func:`load_model`)."""

    card: ModelCard
    weights: CoxWeights = field(repr=False)

    def linear_predictor(self, x: NDArray[np.float64]) -> float:
        """``z · beta`` with ``z`` the standardised inputs; NaN inputs count as the mean."""
        w = self.weights
        z = (x[0] - np.asarray(w.means)) / np.asarray(w.scales)
        z = np.where(np.isfinite(z), z, 0.0)
        return float(z @ np.asarray(w.coefficients))

    def predict(
        self, features: Mapping[str, float], clinical: ClinicalInputs | None = None
    ) -> SurvivalPrediction:
        """Relative risk, risk group, median survival and survival curve for one study.

        Raises
        ------
        InferenceInputError
            If an input the model needs is missing.
        """
        x = _vector(self.card, features, clinical)
        lp = self.linear_predictor(x)
        w = self.weights
        s0 = np.asarray(w.baseline_survival)
        curve = np.power(s0, math.exp(lp))
        below = np.nonzero(curve <= 0.5)[0]
        median = float(w.baseline_months[int(below[0])]) if below.size else None
        t1, t2 = w.risk_tertiles
        group = RISK_GROUPS[0] if lp < t1 else RISK_GROUPS[1] if lp < t2 else RISK_GROUPS[2]
        return SurvivalPrediction(
            relative_risk=math.exp(lp),
            linear_predictor=lp,
            risk_group=group,
            median_os_months=median,
            curve_months=tuple(w.baseline_months),
            curve_survival=tuple(float(v) for v in curve),
            provenance=ModelProvenance.from_card(self.card),
        )


def _load_skops(path: Path) -> Any:
    import skops.io as sio

    untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in TRUSTED_TYPES]
    if untrusted:
        raise ModelCardError(
            f"The classifier {path} contains types rgcds does not trust: {untrusted}. "
            "Retrain it with pipelines/train_radiogenomics.py."
        )
    return sio.load(path, trusted=list(TRUSTED_TYPES))


def load_model(folder: Path, *, research_mode: bool = False) -> ClassifierModel | SurvivalModel:
    """Load a prediction model after checking its card, validation and checksum.

    Parameters
    ----------
    folder
        The model folder (``models/<id>``).
    research_mode
        Allow a card without validation metrics.

    Returns
    -------
    ClassifierModel or SurvivalModel

    Raises
    ------
    ModelNotFoundError
        If the folder has no card.
    ModelCardError
        If the card or the weights are invalid.
    UnvalidatedModelError
        If the card lacks validation metrics and ``research_mode`` is false.
    ChecksumMismatchError
        If the weights' sha256 differs from the card's.
    """
    card = read_card(folder)
    require_validated(card, research_mode=research_mode)
    verify_weights(card)
    if card.task == "classification":
        if card.weights_format != "skops":
            raise ModelCardError(f"Classifier {card.id}: weights must be in skops format.")
        model: ClassifierModel | SurvivalModel = ClassifierModel(
            card=card,
            estimator=_load_skops(card.weights_path),
            threshold=float(card.extra.get("threshold", 0.5)),
        )
    else:
        if card.weights_format != "json":
            raise ModelCardError(f"Survival model {card.id}: weights must be JSON.")
        weights = CoxWeights.from_json(
            card.weights_path.read_text(encoding="utf-8"), card.weights_path
        )
        if weights.features != card.features:
            raise ModelCardError(
                f"Survival model {card.id}: the card's features differ from the weights' features."
            )
        model = SurvivalModel(card=card, weights=weights)
    logger.info("model_loaded", model_id=card.id, version=card.version, task=card.task)
    return model


__all__ = [
    "COX_FORMAT",
    "RISK_GROUPS",
    "TRUSTED_TYPES",
    "ClassifierModel",
    "CoxWeights",
    "SurvivalModel",
    "load_model",
]
