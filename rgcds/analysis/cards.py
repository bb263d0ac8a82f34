"""Model cards of the prediction models; re-exported from :mod:`rgcds.inference.prediction_card`.

The card family lives with the model registry (:mod:`rgcds.inference`), so that the registry
does not import upward into the analysis stage.
"""

from __future__ import annotations

from rgcds.inference import prediction_card as _prediction_card
from rgcds.inference.prediction_card import CARD_FILE as CARD_FILE
from rgcds.inference.prediction_card import CLINICAL_NAMES as CLINICAL_NAMES
from rgcds.inference.prediction_card import DEFAULT_FAMILY as DEFAULT_FAMILY
from rgcds.inference.prediction_card import FAMILIES as FAMILIES
from rgcds.inference.prediction_card import MASK_SEQUENCE as MASK_SEQUENCE
from rgcds.inference.prediction_card import REGION_NAMES as REGION_NAMES
from rgcds.inference.prediction_card import SEQUENCE_NAMES as SEQUENCE_NAMES
from rgcds.inference.prediction_card import TASKS as TASKS
from rgcds.inference.prediction_card import WEIGHT_FORMATS as WEIGHT_FORMATS
from rgcds.inference.prediction_card import ModelCard as ModelCard
from rgcds.inference.prediction_card import ModelInputs as ModelInputs
from rgcds.inference.prediction_card import UnvalidatedModelError as UnvalidatedModelError
from rgcds.inference.prediction_card import ValidationMetric as ValidationMetric
from rgcds.inference.prediction_card import discover_cards as discover_cards
from rgcds.inference.prediction_card import inputs_from_features as inputs_from_features
from rgcds.inference.prediction_card import parse_feature_name as parse_feature_name
from rgcds.inference.prediction_card import read_card as read_card
from rgcds.inference.prediction_card import require_validated as require_validated
from rgcds.inference.prediction_card import sha256_of as sha256_of
from rgcds.inference.prediction_card import verify_weights as verify_weights
from rgcds.inference.prediction_card import write_card as write_card

__all__ = list(_prediction_card.__all__)
