"""Settings section models: leaves that import nothing domain-side.

:mod:`rgcds.config` composes them into :class:`rgcds.config.Settings`; the stages take them as
arguments. Importing this package loads pydantic and :mod:`rgcds.enums` only, so the listener
and the configuration load none of the numeric core (SimpleITK, scipy, pandas, ONNX Runtime).
"""

from __future__ import annotations

from rgcds.settings.classification import ClassificationRule, ClassificationSettings
from rgcds.settings.inference import BackendPreference, InferenceSettings
from rgcds.settings.pet import PetSettings
from rgcds.settings.preprocessing import BrainExtractorName, PreprocessingSettings
from rgcds.settings.qc import QcSettings

__all__ = [
    "BackendPreference",
    "BrainExtractorName",
    "ClassificationRule",
    "ClassificationSettings",
    "InferenceSettings",
    "PetSettings",
    "PreprocessingSettings",
    "QcSettings",
]
