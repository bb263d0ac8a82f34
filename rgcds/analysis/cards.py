"""Model cards of the prediction models; re-exported from :mod:`rgcds.inference.prediction_card`.

The card family lives with the model registry (:mod:`rgcds.inference`), so that the registry
does not import upward into the analysis stage.
"""

from __future__ import annotations

from rgcds.inference.prediction_card import (
    CARD_FILE,
    CLINICAL_NAMES,
    DEFAULT_FAMILY,
    FAMILIES,
    MASK_SEQUENCE,
    REGION_NAMES,
    SEQUENCE_NAMES,
    TASKS,
    WEIGHT_FORMATS,
    ModelCard,
    ModelInputs,
    UnvalidatedModelError,
    ValidationMetric,
    discover_cards,
    inputs_from_features,
    parse_feature_name,
    read_card,
    require_validated,
    sha256_of,
    verify_weights,
    write_card,
)

__all__ = [
    "CARD_FILE",
    "CLINICAL_NAMES",
    "DEFAULT_FAMILY",
    "FAMILIES",
    "MASK_SEQUENCE",
    "REGION_NAMES",
    "SEQUENCE_NAMES",
    "TASKS",
    "WEIGHT_FORMATS",
    "ModelCard",
    "ModelInputs",
    "UnvalidatedModelError",
    "ValidationMetric",
    "discover_cards",
    "inputs_from_features",
    "parse_feature_name",
    "read_card",
    "require_validated",
    "sha256_of",
    "verify_weights",
    "write_card",
]
