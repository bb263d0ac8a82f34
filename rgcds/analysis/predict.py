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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from rgcds.analysis.cards import (
    MASK_SEQUENCE,
    ModelCard,
    ModelInputs,
    discover_cards,
    parse_feature_name,
)
from rgcds.analysis.predict_models import (
    COX_FORMAT,
    RISK_GROUPS,
    TRUSTED_TYPES,
    ClassifierModel,
    CoxWeights,
    SurvivalModel,
    load_model,
)
from rgcds.analysis.predict_results import (
    ClinicalInputs,
    MarkerPrediction,
    ModelProvenance,
    Predictions,
    SurvivalPrediction,
)
from rgcds.exceptions import ModelError
from rgcds.inference.errors import ModelCardError

logger = structlog.get_logger(__name__)


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
