"""Prediction with the torch model and the per-case scores and their summaries."""

from __future__ import annotations

from typing import Any

import numpy as np

from rgcds.training.segmentation.data import PATCH, SPACING_MM, Case

#: The card's ``outside`` normalisation (``--outside``): kept or zero outside the brain.
OUTSIDE = {"value": "keep"}


def normalise_case(case: Case) -> np.ndarray:
    """Z-score each channel inside the brain mask (as the card's normalisation)."""
    from rgcds.inference.card import Normalisation
    from rgcds.inference.segment import normalise

    outside: Any = OUTSIDE["value"]
    spec = Normalisation(method="zscore", mask="brain", outside=outside)
    return normalise(case.images, spec, case.brain)


def torch_predict(model: Any, case: Case, patch: int = PATCH) -> np.ndarray:
    """Sliding-window prediction with the torch model, as ONNX inference will run it.

    The same patch size as in training matters: instance normalisation sees patch
    statistics, so a whole-volume pass would not predict what the exported model does.
    """
    import torch

    from rgcds.inference.sliding_window import sliding_window_inference

    def predictor(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = model(torch.from_numpy(batch))
            probs: np.ndarray = torch.softmax(logits, dim=1).numpy()
        return probs

    probs = sliding_window_inference(normalise_case(case), predictor, (patch, patch, patch), 4,
                                     overlap=0.25, batch_size=4)
    labels: np.ndarray = np.argmax(probs, axis=0)
    return labels.astype(np.uint8)


def summarise(scores: list[dict[str, float]]) -> dict[str, float]:
    """Mean (and standard deviation) of per-case Dice."""
    out: dict[str, float] = {}
    for key in ("WT", "TC", "ET"):
        values = np.array([s[key] for s in scores])
        out[f"dice_{key.lower()}_mean"] = round(float(values.mean()), 4)
        out[f"dice_{key.lower()}_std"] = round(float(values.std()), 4)
    return out


#: Predicted residual enhancing tumour counts as "residual present" from this volume on.
RESIDUAL_DETECTION_ML = 0.1


def postop_scores(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Per-case scores of a post-operative label map against the reference.

    Parameters
    ----------
    prediction, reference
        Label maps on the 2 mm grid: 1 resection cavity, 2 oedema, 3 residual enhancing.

    Returns
    -------
    dict
        Dice of ``cavity`` (1), ``oedema`` (2), ``residual`` (3) and ``whole`` (1+2+3), and
        the residual volumes in ml (``residual_ref_ml``, ``residual_pred_ml``). The residual
        Dice is 1.0 when both are empty; :func:`summarise_postop` leaves those cases out.
    """
    from rgcds.inference.metrics import dice

    ml = SPACING_MM**3 / 1000.0
    return {
        "cavity": dice(prediction == 1, reference == 1),
        "oedema": dice(prediction == 2, reference == 2),
        "residual": dice(prediction == 3, reference == 3),
        "whole": dice(prediction > 0, reference > 0),
        "residual_ref_ml": float(np.count_nonzero(reference == 3)) * ml,
        "residual_pred_ml": float(np.count_nonzero(prediction == 3)) * ml,
    }


def summarise_postop(scores: list[dict[str, float]]) -> dict[str, float]:
    """Summary of :func:`postop_scores` over cases, as the card's validation metrics.

    Dice of cavity, oedema and whole lesion: mean and standard deviation over all cases.
    Residual Dice: over the cases whose reference has a residual (``n_with_residual``).
    Residual detection (predicted residual of at least ``RESIDUAL_DETECTION_ML``):
    sensitivity on cases with a residual, specificity on cases without.
    """
    out: dict[str, float] = {}
    for key in ("cavity", "oedema", "whole"):
        values = np.array([s[key] for s in scores])
        out[f"dice_{key}_mean"] = round(float(values.mean()), 4)
        out[f"dice_{key}_std"] = round(float(values.std()), 4)
    with_residual = [s for s in scores if s["residual_ref_ml"] > 0]
    without = [s for s in scores if s["residual_ref_ml"] == 0]
    if with_residual:
        values = np.array([s["residual"] for s in with_residual])
        out["dice_residual_mean"] = round(float(values.mean()), 4)
        out["dice_residual_std"] = round(float(values.std()), 4)
        out["residual_sensitivity"] = round(float(np.mean(
            [s["residual_pred_ml"] >= RESIDUAL_DETECTION_ML for s in with_residual])), 4)
    if without:
        out["residual_specificity"] = round(float(np.mean(
            [s["residual_pred_ml"] < RESIDUAL_DETECTION_ML for s in without])), 4)
    out["n_with_residual"] = float(len(with_residual))
    out["n_without_residual"] = float(len(without))
    return out


def _brats_scores(prediction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    from rgcds.inference.metrics import brats_dice

    return brats_dice(prediction, reference)
