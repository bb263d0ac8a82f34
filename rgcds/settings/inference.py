"""The ``[inference]`` settings section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BackendPreference = Literal["auto", "onnxruntime", "tensorrt"]


class InferenceSettings(BaseModel):
    """How models are found and run.

    Attributes
    ----------
    backend
        ``auto`` (TensorRT where it and a GPU are present, else ONNX Runtime),
        ``onnxruntime`` or ``tensorrt``.
    models_root
        The folder of model folders; ``None`` means ``models/`` of the installation.
    engine_cache
        Where TensorRT engines are cached; ``None`` means ``~/.cache/rgcds/engines``.
    tta
        Mirror test-time augmentation (8 passes over 3 axes; slower, smoother).
    overlap
        Fraction of the patch size by which sliding windows overlap, 0 to 0.9.
    batch_size
        Patches per network call.
    research_mode
        Allow models whose card reports no validation metrics.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: BackendPreference = "auto"
    models_root: Path | None = None
    engine_cache: Path | None = None
    tta: bool = False
    overlap: float = Field(default=0.5, ge=0.0, le=0.9)
    batch_size: int = Field(default=1, ge=1, le=64)
    research_mode: bool = False


__all__ = ["BackendPreference", "InferenceSettings"]
