"""Model runtime: registry of model cards, inference backends, sliding-window segmentation.

Typical use::

    registry = ModelRegistry(settings.inference.models_root)
    card = registry.get("brats-unet-phantom")          # schema + sha256 checked
    if not card.validated and not settings.inference.research_mode:
        raise ModelError(...)                             # callers refuse
    backend = select_backend(card, settings.inference.backend)
    labels = segment(channels, card, backend, brain_mask=mask, tta=settings.inference.tta)
"""

from __future__ import annotations

from rgcds.inference.backends import (
    InferenceBackend,
    OnnxRuntimeBackend,
    gpu_present,
    select_backend,
    tensorrt_import_error,
)
from rgcds.inference.card import (
    CodedConcept,
    ModelCard,
    OutputModeValues,
    SegmentDefinition,
    TaskValues,
    load_card,
    sha256_file,
    verify_checksum,
)
from rgcds.inference.errors import (
    BackendUnavailableError,
    ChecksumMismatchError,
    InferenceInputError,
    ModelCardError,
    ModelNotFoundError,
)
from rgcds.inference.metrics import brats_dice, dice
from rgcds.inference.registry import DEFAULT_MODELS_ROOT, ModelRegistry, VerifyResult
from rgcds.inference.segment import (
    normalise,
    predict_probabilities,
    probabilities_to_labels,
    segment,
)
from rgcds.inference.settings import BackendPreference, InferenceSettings
from rgcds.inference.sliding_window import gaussian_importance, sliding_window_inference

__all__ = [
    "DEFAULT_MODELS_ROOT",
    "BackendPreference",
    "BackendUnavailableError",
    "ChecksumMismatchError",
    "CodedConcept",
    "InferenceBackend",
    "InferenceInputError",
    "InferenceSettings",
    "ModelCard",
    "ModelCardError",
    "ModelNotFoundError",
    "ModelRegistry",
    "OnnxRuntimeBackend",
    "OutputModeValues",
    "SegmentDefinition",
    "TaskValues",
    "VerifyResult",
    "brats_dice",
    "dice",
    "gaussian_importance",
    "gpu_present",
    "load_card",
    "normalise",
    "predict_probabilities",
    "probabilities_to_labels",
    "segment",
    "select_backend",
    "sha256_file",
    "sliding_window_inference",
    "tensorrt_import_error",
    "verify_checksum",
]
