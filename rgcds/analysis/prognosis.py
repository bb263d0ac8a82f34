"""Post-operative prognosis: time to recurrence (TTR) and overall survival (OS) Cox models.

After the reference study (Sci Rep 2024 14:4576: C-index 0.68 for TTR and 0.65 for OS with
the DenseNet-on-PET output, age and MGMT status). Each endpoint has two penalised Cox models
(plain JSON weights, :class:`rgcds.analysis.predict.CoxWeights`; card ``family: prognosis``):

* with MGMT - covariates :data:`PET_COVARIATES` + ``age_years`` + ``mgmt_methylated``;
* MGMT-free - the same without ``mgmt_methylated``, used when the MGMT status is unknown.

The covariates come from :meth:`rgcds.analysis.residual.ResidualPrediction.covariates`: the
PET model's logit (``residual_logit_pet``), the largest TBR in the CTV (``ctv_tbr_max``) and
the biological tumour volume in the CTV (``ctv_btv_ml``). An unknown age counts as the
training mean (and the result says so). Every result names the covariates used, whether MGMT
was among them, the card's C-index with its 95 % CI and, for phantom-trained models, the
oracle C-index of the simulation (the best any model could reach on the same cases).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from rgcds import RESEARCH_USE_ONLY
from rgcds.analysis.predict import ModelProvenance, SurvivalModel, load_model
from rgcds.inference.errors import InferenceInputError, ModelCardError

logger = structlog.get_logger(__name__)

#: Covariates from the PET model and the PET input (besides age and MGMT).
PET_COVARIATES: tuple[str, ...] = ("residual_logit_pet", "ctv_tbr_max", "ctv_btv_ml")
#: Endpoint -> (model folder with MGMT, MGMT-free model folder).
ENDPOINT_MODELS: dict[str, tuple[str, str]] = {
    "time_to_recurrence": ("ttr-cox-postop-phantom", "ttr-cox-postop-nomgmt-phantom"),
    "overall_survival": ("os-cox-postop-phantom", "os-cox-postop-nomgmt-phantom"),
}
DAYS_PER_MONTH = 30.4375


@dataclass(frozen=True)
class EndpointPrognosis:
    """One endpoint's prognosis.

    Attributes
    ----------
    endpoint
        ``time_to_recurrence`` or ``overall_survival``.
    linear_predictor, relative_risk
        ``z · beta`` on standardised covariates and ``exp`` of it (relative to a training-cohort
        average case).
    risk_group
        ``low``, ``intermediate`` or ``high`` (training-cohort tertiles).
    median_days
        Predicted median time in days; ``None`` when the curve stays above 0.5.
    covariates_used
        Model covariates, in order.
    mgmt_used
        Whether MGMT status was a covariate (the with-MGMT model ran).
    notes
        Sentences (e.g. age unknown).
    provenance
        The model (id, version, C-index with 95 % CI).
    oracle_c_index
        The simulation's oracle C-index on the same validation cases (phantom models), or
        ``None``.
    """

    endpoint: str
    linear_predictor: float
    relative_risk: float
    risk_group: str
    median_days: float | None
    covariates_used: tuple[str, ...]
    mgmt_used: bool
    notes: tuple[str, ...]
    provenance: ModelProvenance
    oracle_c_index: float | None


@dataclass(frozen=True)
class PrognosisPrediction:
    """Post-operative prognosis for both endpoints.

    Attributes
    ----------
    endpoints
        One entry per endpoint.
    mgmt_used
        Whether MGMT status was used (False: the MGMT-free models ran).
    notes
        Sentences for the report.
    research_use_only
        Always :data:`rgcds.RESEARCH_USE_ONLY`.
    """

    endpoints: tuple[EndpointPrognosis, ...]
    mgmt_used: bool
    notes: tuple[str, ...]
    research_use_only: str = RESEARCH_USE_ONLY


def _oracle(model: SurvivalModel) -> float | None:
    block = model.card.extra.get("oracle_c_index")
    if isinstance(block, Mapping) and "value" in block:
        return float(block["value"])
    return None


def predict_prognosis(
    models_root: Path,
    features: Mapping[str, float],
    age_years: float | None,
    mgmt_methylated: bool | None,
    *,
    research_mode: bool = False,
    endpoint_models: Mapping[str, tuple[str, str]] | None = None,
) -> PrognosisPrediction:
    """TTR and OS prognosis from the PET covariates, age and (when known) MGMT status.

    Parameters
    ----------
    models_root
        Folder holding the Cox model folders (:data:`ENDPOINT_MODELS`).
    features
        :data:`PET_COVARIATES` (e.g. from ``ResidualPrediction.covariates(inputs)``).
    age_years
        Age from the DICOM header; ``None`` counts as the training mean (noted).
    mgmt_methylated
        MGMT promoter methylation; ``None`` selects the MGMT-free models (noted).
    research_mode
        Allow cards without validation metrics.
    endpoint_models
        Endpoint -> (with-MGMT folder, MGMT-free folder); :data:`ENDPOINT_MODELS` by default.

    Returns
    -------
    PrognosisPrediction

    Raises
    ------
    InferenceInputError
        If the PET model's logit is missing (no PET: these models cannot run).
    ModelNotFoundError, ModelCardError, ChecksumMismatchError, UnvalidatedModelError
        From loading the cards.
    """
    logit = features.get("residual_logit_pet", math.nan)
    if not math.isfinite(float(logit)):
        raise InferenceInputError(
            "The prognosis models need the PET model's output (residual_logit_pet); without "
            "PET they cannot run."
        )
    mgmt_used = mgmt_methylated is not None
    values: dict[str, float] = {k: float(v) for k, v in features.items()}
    values["age_years"] = float(age_years) if age_years is not None else math.nan
    notes: list[str] = []
    if mgmt_used:
        values["mgmt_methylated"] = 1.0 if mgmt_methylated else 0.0
        notes.append("MGMT status known: the models with MGMT as a covariate were used.")
    else:
        notes.append("MGMT status unknown: the MGMT-free models were used.")
    if age_years is None:
        notes.append("Age unknown: counted as the training cohort's mean age.")
    results: list[EndpointPrognosis] = []
    for endpoint, (with_mgmt, without) in (endpoint_models or ENDPOINT_MODELS).items():
        folder = models_root / (with_mgmt if mgmt_used else without)
        model = load_model(folder, research_mode=research_mode)
        if not isinstance(model, SurvivalModel):
            raise ModelCardError(f"The prognosis model {folder.name} is not a survival model.")
        if ("mgmt_methylated" in model.card.features) != mgmt_used:
            raise ModelCardError(
                f"The prognosis model {model.card.id} {'lacks' if mgmt_used else 'uses'} "
                "mgmt_methylated; check the endpoint's model folders."
            )
        for name in model.card.features:
            values.setdefault(name, math.nan)
        result = model.predict(values)
        median = result.median_os_months
        results.append(
            EndpointPrognosis(
                endpoint=endpoint,
                linear_predictor=result.linear_predictor,
                relative_risk=result.relative_risk,
                risk_group=result.risk_group,
                median_days=median * DAYS_PER_MONTH if median is not None else None,
                covariates_used=model.card.features,
                mgmt_used=mgmt_used,
                notes=tuple(notes),
                provenance=result.provenance,
                oracle_c_index=_oracle(model),
            )
        )
    logger.info("prognosis_predicted", mgmt_used=mgmt_used, endpoints=len(results))
    return PrognosisPrediction(endpoints=tuple(results), mgmt_used=mgmt_used, notes=tuple(notes))


__all__ = [
    "DAYS_PER_MONTH",
    "ENDPOINT_MODELS",
    "PET_COVARIATES",
    "EndpointPrognosis",
    "PrognosisPrediction",
    "predict_prognosis",
]
