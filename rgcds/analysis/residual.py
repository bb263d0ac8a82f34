"""Post-operative residual-tumour detection inside the radiotherapy CTV.

Two model families, after the reference study (Sci Rep 2024 14:4576: post-operative
[11C]methionine PET and contrast-enhanced T1 inside the CTV; AUC 0.95 for a 3D DenseNet on
MET-PET, 0.78 for logistic regression on T1c radiomics):

* **PET model** - a 3D DenseNet (MONAI) on the PET tumour-to-background ratio (TBR) inside the
  CTV, run through ONNX Runtime (no PyTorch at run time). Input: :func:`pet_model_input`.
* **T1c radiomics model** - L2 logistic regression (scikit-learn, skops file) on pyradiomics
  features of the brain-z-scored T1c inside the CTV. Input: :func:`t1c_features`.
* **Combination** - the mean of the two probabilities (no fitted weights), with its own
  threshold and validation in the PET model's card (``combined`` block).

:func:`predict_residual` runs whichever inputs are present and says which models were used.
:func:`residual_inputs` prepares both inputs from the images (the training pipeline
``pipelines/train_residual.py`` uses it too, so training and inference inputs are identical).

PET input
    TBR = PET / mean of the contralateral background VOI
    (:func:`rgcds.analysis.pet.contralateral_background` with the CTV as the tumour), set to 0
    outside the CTV, resampled (linear; CTV nearest neighbour) in physical space onto an
    axis-aligned LPS grid of :data:`PET_GRID_MM` mm with :data:`PET_BOX` voxels per side,
    centred on the CTV's centroid (parts of the CTV beyond the box, 120 mm wide, are cut off).

T1c features (:data:`T1C_RADIOMICS`)
    T1c z-scored with the mean and standard deviation inside the brain mask, resampled by
    pyradiomics to 2 mm isotropic (B-spline), no further normalisation, bin width 0.25 (z
    units); first-order (Mean, Median, 10/90th percentile, Maximum, Variance, Skewness,
    Kurtosis, Entropy, Uniformity, RobustMeanAbsoluteDeviation) and GLCM (Contrast,
    Correlation, JointEntropy, Idm, ClusterShade, JointEnergy) inside the CTV. Column names
    ``CTV_T1c_<class>_<feature>``.

All results are research use only; phantom-trained models say nothing about patients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from rgcds import RESEARCH_USE_ONLY
from rgcds.analysis.cards import (
    ModelCard,
    ValidationMetric,
    read_card,
    require_validated,
    verify_weights,
)
from rgcds.analysis.predict import ClassifierModel, ModelProvenance, load_model
from rgcds.analysis.residual_features import (
    MET_BTV_TBR,
    PET_BOX,
    PET_GRID_MM,
    T1C_RADIOMICS,
    ResidualInputs,
    model_grid,
    pet_background,
    pet_model_input,
    residual_inputs,
    t1c_features,
)
from rgcds.inference.errors import InferenceInputError, ModelCardError

logger = structlog.get_logger(__name__)

#: Model folders (under the models root) of the two residual models.
PET_MODEL_ID = "residual-pet-densenet-phantom"
T1C_MODEL_ID = "residual-t1c-lr-phantom"
#: The PET model's single named input (the card's ``features``).
PET_FEATURE = "pet_tbr_in_ctv"


@dataclass(frozen=True)
class ResidualPrediction:
    """Residual-tumour detection for one post-operative study.

    Attributes
    ----------
    probability_pet, probability_radiomics, probability_combined
        Probabilities of residual tumour from the PET model, the T1c radiomics model and their
        mean; ``None`` where an input or model was missing.
    present
        Whether the deciding probability reaches ``threshold``.
    threshold
        The card threshold of the deciding model.
    decided_by
        ``combined``, ``pet`` or ``radiomics``.
    models_used
        Ids of the models that ran.
    notes
        Sentences saying what was missing and what was used.
    provenance
        One entry per model that ran (id, version, validation AUC with 95 % CI).
    combined_validation
        Validation of the combination (from the PET card), when it decided.
    research_use_only
        Always :data:`rgcds.RESEARCH_USE_ONLY`.
    """

    probability_pet: float | None
    probability_radiomics: float | None
    probability_combined: float | None
    present: bool
    threshold: float
    decided_by: str
    models_used: tuple[str, ...]
    notes: tuple[str, ...]
    provenance: tuple[ModelProvenance, ...]
    combined_validation: ValidationMetric | None = None
    research_use_only: str = RESEARCH_USE_ONLY

    def covariates(self, inputs: ResidualInputs | None = None) -> dict[str, float]:
        """Prognosis covariates from this prediction (see :mod:`rgcds.analysis.prognosis`).

        ``residual_logit_pet`` (NaN without PET), and ``ctv_tbr_max`` / ``ctv_btv_ml`` from
        ``inputs`` (NaN when not given).
        """
        p = self.probability_pet
        return {
            "residual_logit_pet": logit(p) if p is not None else math.nan,
            "ctv_tbr_max": _nan(inputs.tbr_max if inputs else None),
            "ctv_btv_ml": _nan(inputs.btv_ml if inputs else None),
        }


def _nan(value: float | None) -> float:
    return float(value) if value is not None else math.nan


def logit(p: float, eps: float = 1e-6) -> float:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``."""
    q = min(1.0 - eps, max(eps, float(p)))
    return math.log(q / (1.0 - q))


def _card(folder: Path, research_mode: bool) -> ModelCard:
    card = read_card(folder)
    require_validated(card, research_mode=research_mode)
    verify_weights(card)
    return card


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def run_pet_model(card: ModelCard, pet_input: NDArray[np.float32]) -> float:
    """Probability of residual tumour from the PET model's ONNX file (ONNX Runtime, CPU).

    Raises
    ------
    InferenceInputError
        If ``pet_input`` does not have the card's input shape.
    ModelCardError
        If the card's weights are not ONNX.
    """
    if card.weights_format != "onnx":
        raise ModelCardError(f"The PET residual model {card.id} must have ONNX weights.")
    box = int(card.extra.get("input", {}).get("box", PET_BOX))
    if pet_input.shape != (1, 1, box, box, box):
        raise InferenceInputError(
            f"The PET model {card.id} needs an input of shape (1, 1, {box}, {box}, {box}), got "
            f"{pet_input.shape}; prepare it with pet_model_input and the card's grid."
        )
    from rgcds.inference.backends import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(
        card.weights_path,
        providers=["CPUExecutionProvider"],
        threads=1,
        reason="residual PET model",
    )
    out = backend.run(pet_input)
    return _sigmoid(float(out.reshape(-1)[0]))


def _threshold(card: ModelCard) -> float:
    return float(card.extra.get("threshold", 0.5))


def _combined(card: ModelCard) -> tuple[float, ValidationMetric | None]:
    block: Mapping[str, Any] = card.extra.get("combined") or {}
    metric = None
    if "value" in block and "ci95" in block:
        metric = ValidationMetric(
            metric=str(block.get("metric", "AUC")),
            value=float(block["value"]),
            ci95=(float(block["ci95"][0]), float(block["ci95"][1])),
            method=str(block.get("method", "")),
            n=int(block["n"]) if block.get("n") is not None else None,
        )
    return float(block.get("threshold", 0.5)), metric


def predict_residual(
    models_root: Path,
    pet_input: NDArray[np.float32] | None,
    t1c_features: Mapping[str, float] | None,
    *,
    research_mode: bool = False,
    pet_model_id: str = PET_MODEL_ID,
    t1c_model_id: str = T1C_MODEL_ID,
) -> ResidualPrediction:
    """Probability that residual tumour is present in the CTV.

    Parameters
    ----------
    models_root
        Folder holding the model folders ``pet_model_id`` and ``t1c_model_id``.
    pet_input
        From :func:`pet_model_input`, or ``None`` without PET.
    t1c_features
        From :func:`t1c_features`, or ``None`` without T1c.
    research_mode
        Allow cards without validation metrics.
    pet_model_id, t1c_model_id
        Model folder names.

    Returns
    -------
    ResidualPrediction
        With both inputs, the combination (mean) decides at its card threshold; with one, that
        model decides at its own threshold. ``notes`` say what was missing.

    Raises
    ------
    InferenceInputError
        If neither input is given, or an input does not fit its model.
    ModelNotFoundError, ModelCardError, ChecksumMismatchError, UnvalidatedModelError
        From loading the cards.
    """
    if pet_input is None and t1c_features is None:
        raise InferenceInputError(
            "Residual detection needs the PET input, the T1c features or both; neither was given."
        )
    notes: list[str] = []
    provenance: list[ModelProvenance] = []
    used: list[str] = []
    p_pet = p_rad = None
    pet_card = None
    t_pet = t_rad = 0.5
    if pet_input is not None:
        pet_card = _card(models_root / pet_model_id, research_mode)
        p_pet = run_pet_model(pet_card, pet_input)
        t_pet = _threshold(pet_card)
        provenance.append(ModelProvenance.from_card(pet_card))
        used.append(pet_card.id)
    else:
        notes.append("No PET input: the PET (3D DenseNet) model was not used.")
    if t1c_features is not None:
        model = load_model(models_root / t1c_model_id, research_mode=research_mode)
        if not isinstance(model, ClassifierModel):
            raise ModelCardError(f"The model {t1c_model_id} is not a classifier.")
        p_rad = model.predict(t1c_features).probability
        t_rad = model.threshold
        provenance.append(ModelProvenance.from_card(model.card))
        used.append(model.card.id)
    else:
        notes.append("No T1c features: the T1c radiomics model was not used.")
    combined_metric = None
    p_comb = None
    if p_pet is not None and p_rad is not None and pet_card is not None:
        p_comb = 0.5 * (p_pet + p_rad)
        threshold, combined_metric = _combined(pet_card)
        decided, p = "combined", p_comb
        notes.append("Decision by the mean of the PET and T1c radiomics probabilities.")
    elif p_pet is not None:
        threshold, decided, p = t_pet, "pet", p_pet
        notes.append("Decision by the PET model alone.")
    else:
        assert p_rad is not None
        threshold, decided, p = t_rad, "radiomics", p_rad
        notes.append("Decision by the T1c radiomics model alone.")
    logger.info("residual_predicted", decided_by=decided, models=used)
    return ResidualPrediction(
        probability_pet=p_pet,
        probability_radiomics=p_rad,
        probability_combined=p_comb,
        present=p >= threshold,
        threshold=threshold,
        decided_by=decided,
        models_used=tuple(used),
        notes=tuple(notes),
        provenance=tuple(provenance),
        combined_validation=combined_metric,
    )


__all__ = [
    "MET_BTV_TBR",
    "PET_BOX",
    "PET_FEATURE",
    "PET_GRID_MM",
    "PET_MODEL_ID",
    "T1C_MODEL_ID",
    "T1C_RADIOMICS",
    "ResidualInputs",
    "ResidualPrediction",
    "logit",
    "model_grid",
    "pet_background",
    "pet_model_input",
    "predict_residual",
    "residual_inputs",
    "run_pet_model",
    "t1c_features",
]
