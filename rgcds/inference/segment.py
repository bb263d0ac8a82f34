"""From a multi-channel volume to a label map: normalise, predict, map to labels."""

from __future__ import annotations

import time

import numpy as np
import structlog

from rgcds.inference.backends import InferenceBackend
from rgcds.inference.card import ModelCard, Normalisation, OutputModeValues, TaskValues
from rgcds.inference.errors import InferenceInputError
from rgcds.inference.sliding_window import sliding_window_inference

logger = structlog.get_logger(__name__)


def normalise(
    volume: np.ndarray, spec: Normalisation, brain_mask: np.ndarray | None = None
) -> np.ndarray:
    """Normalise each channel of ``volume`` as a card's ``inputs.normalisation`` states.

    Parameters
    ----------
    volume
        ``(C, Z, Y, X)``.
    spec
        The card's normalisation.
    brain_mask
        ``(Z, Y, X)`` boolean; required in effect for ``mask: brain`` (without it the
        voxels where any channel is non-zero stand in, with a warning).

    Returns
    -------
    numpy.ndarray
        float32, same shape.
    """
    out = np.asarray(volume, dtype=np.float32).copy()
    if spec.method == "none":
        return out
    if spec.mask == "all":
        mask = np.ones(out.shape[1:], dtype=bool)
    elif spec.mask == "brain" and brain_mask is not None:
        mask = np.asarray(brain_mask, dtype=bool)
        if mask.shape != out.shape[1:]:
            raise InferenceInputError(
                f"The brain mask has shape {mask.shape} but the volume is {out.shape[1:]}; "
                "resample both onto the model's grid first."
            )
    else:
        if spec.mask == "brain":
            logger.warning("normalisation_without_brain_mask",
                           detail="using voxels where any channel is non-zero")
        mask = np.any(out != 0, axis=0)
    if not mask.any():
        raise InferenceInputError(
            "The normalisation mask is empty, so the volume cannot be normalised; check the "
            "brain mask and that the images are not blank."
        )
    for c in range(out.shape[0]):
        values = out[c][mask]
        mean = float(values.mean())
        std = float(values.std())
        out[c] = (out[c] - mean) / max(std, 1e-6)
        if spec.outside == "zero":
            out[c][~mask] = 0.0
    if spec.clip is not None:
        np.clip(out, spec.clip[0], spec.clip[1], out=out)
    return out


def activate(raw: np.ndarray, card: ModelCard) -> np.ndarray:
    """Turn raw network output ``(N, K, ...)`` into probabilities as the card says."""
    if not card.outputs.logits:
        return raw.astype(np.float32, copy=False)
    if card.outputs.mode is OutputModeValues.SOFTMAX:
        shifted = raw - raw.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        probs: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    else:
        probs = 1.0 / (1.0 + np.exp(-raw))
    return probs.astype(np.float32, copy=False)


def probabilities_to_labels(probabilities: np.ndarray, card: ModelCard) -> np.ndarray:
    """Map probabilities ``(K, Z, Y, X)`` to a label map with the card's label values.

    ``softmax``: the label of the most probable class. ``sigmoid_regions``: regions are
    painted in card order where their probability exceeds their threshold, so later
    (nested) regions override earlier ones, e.g. WT -> 2, then TC -> 1, then ET -> 3.

    Returns
    -------
    numpy.ndarray
        ``(Z, Y, X)`` uint8.
    """
    outputs = card.outputs
    if outputs.mode is OutputModeValues.SOFTMAX:
        lut = np.zeros(len(outputs.classes), dtype=np.uint8)
        for cls in outputs.classes:
            lut[cls.index] = cls.label
        mapped: np.ndarray = lut[np.argmax(probabilities, axis=0)]
        return mapped
    labels = np.zeros(probabilities.shape[1:], dtype=np.uint8)
    for region in outputs.regions:
        labels[probabilities[region.index] > region.threshold] = region.label
    return labels


def predict_probabilities(
    volume_channels: np.ndarray,
    card: ModelCard,
    backend: InferenceBackend,
    brain_mask: np.ndarray | None = None,
    overlap: float = 0.5,
    batch_size: int = 1,
    tta: bool = False,
) -> np.ndarray:
    """Normalise and run sliding-window inference; return probabilities ``(K, Z, Y, X)``.

    See :func:`segment` for the parameters.
    """
    if card.task is not TaskValues.SEGMENTATION:
        raise InferenceInputError(
            f"Model '{card.id}' is a {card.task.value} model, not a segmentation model."
        )
    volume = np.asarray(volume_channels)
    expected = len(card.inputs.channels)
    if volume.ndim != 4 or volume.shape[0] != expected:
        raise InferenceInputError(
            f"Model '{card.id}' takes {expected} channels "
            f"({', '.join(card.inputs.channels)}) as a (C, Z, Y, X) array, got shape "
            f"{volume.shape}."
        )
    x = normalise(volume, card.inputs.normalisation, brain_mask)

    def predictor(batch: np.ndarray) -> np.ndarray:
        return activate(backend.run(batch), card)

    started = time.perf_counter()
    probs = sliding_window_inference(
        x,
        predictor,
        card.inputs.patch_size,
        card.outputs.n_channels,
        overlap=overlap,
        batch_size=batch_size,
        tta=tta,
    )
    logger.info(
        "segmentation_inference", model_id=card.id, backend=backend.name, tta=tta,
        overlap=overlap, shape=list(volume.shape[1:]),
        seconds=round(time.perf_counter() - started, 3),
    )
    return probs


def segment(
    volume_channels: np.ndarray,
    card: ModelCard,
    backend: InferenceBackend,
    brain_mask: np.ndarray | None = None,
    overlap: float = 0.5,
    batch_size: int = 1,
    tta: bool = False,
) -> np.ndarray:
    """Segment a volume with a model and return labels in the card's label values.

    Parameters
    ----------
    volume_channels
        ``(C, Z, Y, X)``: the card's ``inputs.channels`` in order, already on the model's
        grid (``inputs.spacing_mm``, ``inputs.orientation``), not yet normalised.
    card
        The model's card.
    backend
        An open backend for this model (see :func:`~rgcds.inference.select_backend`).
    brain_mask
        ``(Z, Y, X)`` brain mask for normalisation (``inputs.normalisation.mask: brain``).
    overlap
        Sliding-window overlap fraction.
    batch_size
        Windows per network call.
    tta
        Mirror test-time augmentation.

    Returns
    -------
    numpy.ndarray
        ``(Z, Y, X)`` uint8 label map (for BraTS-style cards: 1 necrotic core, 2 oedema,
        3 enhancing tumour; 0 elsewhere).

    Raises
    ------
    InferenceInputError
        The card is not a segmentation card or the volume has the wrong channels.
    """
    probs = predict_probabilities(
        volume_channels, card, backend, brain_mask, overlap, batch_size, tta
    )
    return probabilities_to_labels(probs, card)


__all__ = [
    "activate",
    "normalise",
    "predict_probabilities",
    "probabilities_to_labels",
    "segment",
]
