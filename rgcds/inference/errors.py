"""Errors of the model runtime: narrow subclasses of :class:`rgcds.exceptions.ModelError`."""

from __future__ import annotations

from rgcds.exceptions import ModelError


class ModelCardError(ModelError, ValueError):
    """A model card (``model.yaml``) is missing, unreadable or does not follow the schema."""


class ChecksumMismatchError(ModelError, ValueError):
    """A model's weights file does not have the sha256 its card declares."""


class ModelNotFoundError(ModelError, LookupError):
    """No model with the requested id is in the registry."""


class BackendUnavailableError(ModelError, RuntimeError):
    """The requested inference backend cannot run here (library missing, no GPU)."""


class InferenceInputError(ModelError, ValueError):
    """An array handed to a model has the wrong shape, channels or type."""


__all__ = [
    "BackendUnavailableError",
    "ChecksumMismatchError",
    "InferenceInputError",
    "ModelCardError",
    "ModelNotFoundError",
]
