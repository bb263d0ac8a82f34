"""Radiogenomic marker and survival predictions from radiomic features and clinical data.

Two kinds of model folders (see :mod:`rgcds.analysis.cards`):

* ``task: classification`` - a scikit-learn pipeline (imputation, standardisation,
  univariate feature selection, logistic regression) serialised with ``skops``. It is loaded
  with an explicit list of trusted types (:data:`TRUSTED_TYPES`); anything else in the file is
  refused. Pickle is never used.
* ``task: survival`` - a penalised Cox proportional hazards model stored as plain JSON
  (standardisation, coefficients, baseline survival, training-cohort risk tertiles), so that
  prediction needs no lifelines and no code from the file.

Every result carries the model's id, version, validation metric with its 95 % CI, whether it
was trained on synthetic data, and :data:`rgcds.RESEARCH_USE_ONLY`.

Inputs are declared, not assumed. Each card states the series, regions and clinical
variables its model needs (:attr:`rgcds.analysis.cards.ModelCard.inputs`). :func:`predict_all`
runs only the models the study can feed and skips the others with a note for the report
(e.g. "MGMT model mgmt-pet-phantom-demo not applied: it needs a PET series."); a model never
stops the analysis of a study. Where several variants of one marker can run (an MR-only and
an MR + PET model), the most specific one (most required series) is reported, and a note says
which. Missing *values* are different from missing *inputs*: a sub-region that is empty in
this study (e.g. no enhancing tumour) leaves its features missing, and a model that can feed
on the rest handles them as it was trained to (the classifiers' median imputation; the Cox
models count a missing value as the training mean). A classifier without an imputation step
is not applied to such a study.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from rgcds import RESEARCH_USE_ONLY
from rgcds.analysis.cards import (
    MASK_SEQUENCE,
    ModelCard,
    ModelInputs,
    discover_cards,
    parse_feature_name,
    read_card,
    require_validated,
    verify_weights,
)
from rgcds.exceptions import ModelError
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


#: Names of prediction targets in a report.
TARGET_NAMES: dict[str, str] = {
    "idh_mutant": "IDH",
    "mgmt_methylated": "MGMT",
    "egfr_amplified": "EGFR",
    "overall_survival": "Survival",
}
_CLINICAL_WORDS = {
    "age_years": "the patient's age (PatientAge, or birth date and study date, in the header)",
    "sex_male": "the patient's sex (PatientSex M or F in the header)",
}


@dataclass(frozen=True)
class StudyInputs:
    """What a study can feed to the prediction models.

    Attributes
    ----------
    sequences
        Series with radiomic features in this study (from
        :data:`rgcds.analysis.cards.SEQUENCE_NAMES`).
    clinical
        Clinical variables known for this patient (from
        :data:`rgcds.analysis.cards.CLINICAL_NAMES`).
    regions
        Sub-regions with radiomic features (non-empty in the segmentation).
    """

    sequences: frozenset[str]
    clinical: frozenset[str]
    regions: frozenset[str] = frozenset()

    @classmethod
    def from_features(
        cls,
        features: Mapping[str, float],
        clinical: ClinicalInputs | None = None,
        sequences: Sequence[str] | None = None,
    ) -> StudyInputs:
        """Read the available series and regions off the feature names (or take ``sequences``).

        Parameters
        ----------
        features
            Wide radiomic features of the study.
        clinical
            Age and sex from the header.
        sequences
            The series of the study, when the caller knows them; else those with features.
        """
        found: set[str] = set()
        regions: set[str] = set()
        for name, value in features.items():
            parsed = parse_feature_name(name)
            if parsed is None or not math.isfinite(float(value)):
                continue
            regions.add(parsed[0])
            if parsed[1] != MASK_SEQUENCE:
                found.add(parsed[1])
        known: set[str] = set()
        if clinical is not None:
            known = {k for k, v in clinical.as_features().items() if math.isfinite(v)}
        return cls(
            sequences=frozenset(sequences if sequences is not None else found),
            clinical=frozenset(known),
            regions=frozenset(regions),
        )


def _series_words(names: Sequence[str]) -> str:
    if len(names) == 1:
        return f"a {names[0]} series"
    return f"{', '.join(names[:-1])} and {names[-1]} series"


def unmet_inputs(required: ModelInputs, study: StudyInputs) -> str | None:
    """Why a model cannot run on the study, in words; ``None`` when it can.

    An empty sub-region is not an unmet input (its features are missing values).

    Examples: ``"it needs a PET series"``, ``"it needs T2 and FLAIR series and the patient's
    age (...)"``.
    """
    if required.sequences and not study.regions:
        return "the study has no tumour radiomic features (no tumour region segmented)"
    needs: list[str] = []
    lacking = [s for s in required.sequences if s not in study.sequences]
    if lacking:
        needs.append(_series_words(lacking))
    needs += [_CLINICAL_WORDS.get(c, c) for c in required.clinical if c not in study.clinical]
    return f"it needs {' and '.join(needs)}" if needs else None


def _label(card: ModelCard) -> str:
    return TARGET_NAMES.get(card.target, card.target)


def _variant(card: ModelCard) -> str:
    """``MR + PET``, ``MR-only``, ``PET-only`` or ``clinical-only``."""
    sequences = set(card.inputs.sequences)
    if not sequences:
        return "clinical-only"
    if "PET" not in sequences:
        return "MR-only"
    return "MR + PET" if len(sequences) > 1 else "PET-only"


def _specificity(card: ModelCard) -> tuple[int, int, int, str]:
    """Sort key: the most specific variant first (more series, then more clinical inputs)."""
    inputs = card.inputs
    return (-len(inputs.sequences), -len(inputs.clinical), -len(card.features), card.id)


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


def predict_all(
    models_root: Path,
    features: Mapping[str, float],
    clinical: ClinicalInputs | None = None,
    *,
    research_mode: bool = False,
    model_ids: Sequence[str] | None = None,
    sequences: Sequence[str] | None = None,
) -> Predictions:
    """Run every prediction model under ``models_root`` (or those in ``model_ids``) it can.

    A model whose declared inputs (series, clinical variables) the study lacks is not applied,
    and a note says why in words. Of the variants of one target that can run, the most
    specific (most required series; e.g. MR + PET over MR only) is reported, one prediction
    per target, with a note naming it when there was a choice; if it fails to load or run,
    the next one is tried. A model that fails (invalid card, checksum, unvalidated without
    research mode, an input it cannot do without) is noted and skipped, and so is a card that
    fails its schema: a model never stops the analysis of a study.

    Parameters
    ----------
    models_root
        The models folder.
    features
        Wide radiomic features of the study (``{region}_{sequence}_{feature}``); an empty
        region's features are absent or NaN.
    clinical
        Age and sex from the header.
    research_mode
        Allow models without validation metrics.
    model_ids
        Run only these models.
    sequences
        The study's series (default: those with radiomic features).

    Returns
    -------
    Predictions
        The predictions and the notes.
    """
    study = StudyInputs.from_features(features, clinical, sequences)
    notes: list[str] = []

    def broken(folder: Path, exc: ModelCardError) -> None:
        if model_ids is None or folder.name in model_ids:
            notes.append(f"The prediction model in {folder.name} was not applied: {exc}")
            logger.warning("model_not_applied", folder=folder.name, error=type(exc).__name__)

    candidates: dict[tuple[str, str], list[ModelCard]] = {}
    for card in discover_cards(models_root, on_error=broken):
        if model_ids is not None and card.id not in model_ids:
            continue
        reason = unmet_inputs(card.inputs, study)
        if reason is not None:
            notes.append(f"{_label(card)} model {card.id} not applied: {reason}.")
            logger.info("model_not_applied", model_id=card.id, reason="inputs")
            continue
        candidates.setdefault((card.task, card.target), []).append(card)
    markers: list[MarkerPrediction] = []
    survival: list[SurvivalPrediction] = []
    for key in sorted(candidates):
        variants = sorted(candidates[key], key=_specificity)
        for i, card in enumerate(variants):
            try:
                model = load_model(card.folder, research_mode=research_mode)
                if isinstance(model, ClassifierModel):
                    markers.append(model.predict(features, clinical))
                else:
                    survival.append(model.predict(features, clinical))
            except ModelError as exc:
                notes.append(f"{_label(card)} model {card.id} not applied: {exc}")
                logger.warning("model_not_applied", model_id=card.id, error=type(exc).__name__)
                continue
            later = variants[i + 1 :]
            if later:
                others = ", ".join(f"the {_variant(c)} model {c.id}" for c in later)
                notes.append(
                    f"{_label(card)}: reported from the {_variant(card)} model {card.id} "
                    f"{card.version} (inputs {card.inputs.describe()}); {others} could also "
                    "run and was not reported (one prediction per marker)."
                )
            break
    return Predictions(markers=tuple(markers), survival=tuple(survival), notes=tuple(notes))


__all__ = [
    "COX_FORMAT",
    "RISK_GROUPS",
    "TARGET_NAMES",
    "TRUSTED_TYPES",
    "ClassifierModel",
    "ClinicalInputs",
    "CoxWeights",
    "MarkerPrediction",
    "ModelProvenance",
    "Predictions",
    "StudyInputs",
    "SurvivalModel",
    "SurvivalPrediction",
    "load_model",
    "predict_all",
    "unmet_inputs",
]
