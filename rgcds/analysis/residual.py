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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
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
from rgcds.analysis.pet import PetSettings, contralateral_background
from rgcds.analysis.predict import ClassifierModel, ModelProvenance, load_model
from rgcds.analysis.radiomics import RadiomicsParams, extract_radiomics, to_wide
from rgcds.inference.errors import InferenceInputError, ModelCardError

logger = structlog.get_logger(__name__)

#: Model folders (under the models root) of the two residual models.
PET_MODEL_ID = "residual-pet-densenet-phantom"
T1C_MODEL_ID = "residual-t1c-lr-phantom"
#: Voxel size (mm) and box size (voxels per side) of the PET model input.
PET_GRID_MM = 3.0
PET_BOX = 40
#: The PET model's single named input (the card's ``features``).
PET_FEATURE = "pet_tbr_in_ctv"
#: TBR threshold of the biological tumour volume for [11C]MET (PetSettings default).
MET_BTV_TBR = 1.3

T1C_RADIOMICS = RadiomicsParams(
    name="residual-t1c (rgcds.analysis.residual.T1C_RADIOMICS)",
    pyradiomics={
        "imageType": {"Original": {}},
        "featureClass": {
            "firstorder": [
                "Mean",
                "Median",
                "10Percentile",
                "90Percentile",
                "Maximum",
                "Variance",
                "Skewness",
                "Kurtosis",
                "Entropy",
                "Uniformity",
                "RobustMeanAbsoluteDeviation",
            ],
            "glcm": [
                "Contrast",
                "Correlation",
                "JointEntropy",
                "Idm",
                "ClusterShade",
                "JointEnergy",
            ],
        },
        "setting": {
            "normalize": False,
            "binWidth": 0.25,
            "resampledPixelSpacing": [2.0, 2.0, 2.0],
            "interpolator": "sitkBSpline",
            "padDistance": 5,
            "geometryTolerance": 0.0001,
            "correctMask": True,
            "minimumROIDimensions": 2,
            "minimumROISize": 8,
            "label": 1,
            "distances": [1],
            "force2D": False,
            "additionalInfo": False,
        },
    },
)


@dataclass(frozen=True)
class ResidualInputs:
    """Model inputs of one post-operative study (see :func:`residual_inputs`).

    Attributes
    ----------
    pet_input
        ``(1, 1, D, H, W)`` float32 TBR in the CTV, or ``None`` without PET.
    t1c_features
        T1c radiomics in the CTV, or ``None`` without T1c.
    background_mean
        PET background (SUV or the PET's units); ``None`` without PET.
    tbr_max, btv_ml
        Largest TBR in the CTV and volume (ml) with TBR >= :data:`MET_BTV_TBR`, both on the
        model grid; ``None`` without PET.
    notes
        Sentences for the report (background VOI, missing inputs).
    """

    pet_input: NDArray[np.float32] | None = field(repr=False)
    t1c_features: dict[str, float] | None = field(repr=False)
    background_mean: float | None
    tbr_max: float | None
    btv_ml: float | None
    notes: tuple[str, ...] = ()


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


def _binary(image: sitk.Image) -> sitk.Image:
    out: sitk.Image = sitk.Cast(sitk.NotEqual(image, 0), sitk.sitkUInt8)
    return out


def _onto(mask: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """``mask`` (binary) on ``reference``'s grid (nearest neighbour; copy when same grid)."""
    same = (
        mask.GetSize() == reference.GetSize()
        and np.allclose(mask.GetSpacing(), reference.GetSpacing(), atol=1e-4)
        and np.allclose(mask.GetOrigin(), reference.GetOrigin(), atol=1e-3)
        and np.allclose(mask.GetDirection(), reference.GetDirection(), atol=1e-4)
    )
    if same:
        out = _binary(mask)
        out.CopyInformation(reference)
        return out
    return sitk.Resample(
        _binary(mask), reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )


def _centroid_mm(mask: sitk.Image) -> tuple[float, float, float]:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    if not stats.HasLabel(1):
        raise InferenceInputError("The CTV mask is empty; residual detection needs a CTV.")
    x, y, z = stats.GetCentroid(1)
    return float(x), float(y), float(z)


def model_grid(ctv: sitk.Image, grid_mm: float = PET_GRID_MM, box: int = PET_BOX) -> sitk.Image:
    """The PET model's grid: axis-aligned LPS, ``grid_mm`` isotropic, ``box`` voxels per side,
    centred on the CTV's physical centroid.

    Raises
    ------
    InferenceInputError
        If the CTV is empty.
    """
    centre = np.asarray(_centroid_mm(_binary(ctv)))
    grid = sitk.Image([box] * 3, sitk.sitkFloat32)
    grid.SetSpacing([grid_mm] * 3)
    grid.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    grid.SetOrigin(tuple(float(v) for v in centre - 0.5 * (box - 1) * grid_mm))
    return grid


def pet_model_input(
    pet: sitk.Image,
    ctv: sitk.Image,
    background_mean: float,
    *,
    grid_mm: float = PET_GRID_MM,
    box: int = PET_BOX,
) -> NDArray[np.float32]:
    """The PET model's input: TBR inside the CTV on a fixed box around the CTV.

    Parameters
    ----------
    pet
        PET (SUV or any units proportional to activity), any grid and orientation.
    ctv
        CTV mask (non-zero inside), any grid; resampled in physical space.
    background_mean
        Mean PET of the background VOI (same units as ``pet``), > 0.
    grid_mm, box
        Voxel size and voxels per side (the trained model's card records them).

    Returns
    -------
    numpy.ndarray
        ``(1, 1, box, box, box)`` float32 (z, y, x order): PET / background inside the CTV,
        0 outside.

    Raises
    ------
    InferenceInputError
        If the CTV is empty or the background is not positive.
    """
    if not math.isfinite(background_mean) or background_mean <= 0:
        raise InferenceInputError(
            f"The PET background mean must be positive, got {background_mean}; check the "
            "PET units and the background VOI."
        )
    grid = model_grid(ctv, grid_mm, box)
    pet_g = sitk.Resample(
        sitk.Cast(pet, sitk.sitkFloat32),
        grid,
        sitk.Transform(),
        sitk.sitkLinear,
        0.0,
        sitk.sitkFloat32,
    )
    ctv_g = sitk.Resample(
        _binary(ctv), grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )
    tbr = sitk.GetArrayFromImage(pet_g).astype(np.float32) / np.float32(background_mean)
    inside = sitk.GetArrayFromImage(ctv_g) > 0
    out = np.where(inside, tbr, np.float32(0.0)).astype(np.float32)
    return out[None, None]


def pet_background(
    pet: sitk.Image,
    ctv: sitk.Image,
    brain_mask: sitk.Image | None,
    settings: PetSettings | None = None,
) -> tuple[float, str]:
    """Mean PET of the contralateral background VOI, with the CTV as the tumour.

    Parameters
    ----------
    pet
        PET image (its grid is used).
    ctv
        CTV mask (any grid).
    brain_mask
        Brain mask (any grid); ``None``: voxels of the PET above 10 % of its 99th percentile.
    settings
        Background VOI geometry.

    Returns
    -------
    tuple
        ``(mean, description)``.

    Raises
    ------
    InferenceInputError
        If the masks are empty or the background is not positive.
    """
    tumour = sitk.GetArrayViewFromImage(_onto(ctv, pet)) > 0
    values = sitk.GetArrayFromImage(pet).astype(np.float64)
    if brain_mask is not None:
        brain = sitk.GetArrayViewFromImage(_onto(brain_mask, pet)) > 0
    else:
        brain = values > 0.1 * float(np.percentile(values, 99))
    try:
        voi = contralateral_background(pet, brain, tumour, settings)
    except ValueError as exc:
        raise InferenceInputError(f"No PET background VOI could be built: {exc}") from None
    mean = float(values[voi.mask].mean())
    if not mean > 0:
        raise InferenceInputError(
            f"The PET background mean is {mean}; the PET must be positive in normal brain."
        )
    return mean, voi.description


def t1c_features(
    t1c: sitk.Image, ctv: sitk.Image, brain_mask: sitk.Image | None
) -> dict[str, float]:
    """pyradiomics features of the brain-z-scored T1c inside the CTV (:data:`T1C_RADIOMICS`).

    Parameters
    ----------
    t1c
        Contrast-enhanced T1 (any grid).
    ctv
        CTV mask (any grid; resampled nearest neighbour onto the T1c).
    brain_mask
        Brain mask for the z-scoring; ``None``: voxels of the T1c above 0.

    Returns
    -------
    dict
        ``CTV_T1c_<class>_<feature>`` -> value.

    Raises
    ------
    InferenceInputError
        If the CTV or brain mask is empty, or no feature could be computed.
    """
    image = sitk.Cast(t1c, sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(image).astype(np.float64)
    if brain_mask is not None:
        brain = sitk.GetArrayViewFromImage(_onto(brain_mask, image)) > 0
    else:
        brain = values > 0
    if brain.sum() < 10:
        raise InferenceInputError("The brain mask on the T1c is empty; cannot z-score the T1c.")
    mean = float(values[brain].mean())
    std = float(values[brain].std()) or 1.0
    z = sitk.GetImageFromArray(((values - mean) / std).astype(np.float32))
    z.CopyInformation(image)
    mask = _onto(ctv, image)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise InferenceInputError("The CTV does not overlap the T1c; check the registration.")
    table = extract_radiomics(
        {"T1c": z},
        mask,
        study_uid="residual",
        regions=("NCR",),
        params=T1C_RADIOMICS,
        max_workers=1,
    )
    if table.empty:
        raise InferenceInputError("No T1c radiomic feature could be computed inside the CTV.")
    wide = to_wide(table)
    return {
        "CTV_" + str(name).removeprefix("NCR_"): float(wide.iloc[0][name]) for name in wide.columns
    }


def residual_inputs(
    pet: sitk.Image | None,
    t1c: sitk.Image | None,
    ctv: sitk.Image,
    brain_mask: sitk.Image | None,
    *,
    settings: PetSettings | None = None,
    grid_mm: float = PET_GRID_MM,
    box: int = PET_BOX,
) -> ResidualInputs:
    """Both models' inputs (whichever images are present) plus PET covariates.

    Parameters
    ----------
    pet, t1c
        Post-operative PET and T1c; either may be ``None``.
    ctv
        Radiotherapy CTV mask.
    brain_mask
        Brain mask (background VOI and T1c z-scoring); optional.
    settings
        PET background settings.
    grid_mm, box
        PET model grid.

    Returns
    -------
    ResidualInputs
    """
    notes: list[str] = []
    pet_input: NDArray[np.float32] | None = None
    background = tbr_max = btv = None
    if pet is not None:
        background, description = pet_background(pet, ctv, brain_mask, settings)
        pet_input = pet_model_input(pet, ctv, background, grid_mm=grid_mm, box=box)
        tbr_max = float(pet_input.max())
        btv = float((pet_input >= MET_BTV_TBR).sum()) * grid_mm**3 / 1000.0
        notes.append(f"PET background: {description}.")
    else:
        notes.append("No PET: the PET model was not run.")
    features = t1c_features(t1c, ctv, brain_mask) if t1c is not None else None
    if t1c is None:
        notes.append("No T1c: the T1c radiomics model was not run.")
    return ResidualInputs(pet_input, features, background, tbr_max, btv, tuple(notes))


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
