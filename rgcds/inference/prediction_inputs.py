"""What a prediction model needs from a study: the ``requires`` block of its card.

Part of :mod:`rgcds.inference.prediction_card` (import the names from there). A model's
inputs are the series the study must contain (:data:`SEQUENCE_NAMES`), the tumour sub-regions
its radiomics come from (:data:`REGION_NAMES`) and the clinical variables read from the DICOM
header (:data:`CLINICAL_NAMES`); :func:`inputs_from_features` derives them from the feature
names of a card that does not declare them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rgcds.inference.errors import ModelCardError

#: Series a model can require, as the study classifier names them.
SEQUENCE_NAMES: tuple[str, ...] = ("T1", "T1c", "T2", "FLAIR", "PET")
#: Tumour sub-regions a model's radiomics can come from.
REGION_NAMES: tuple[str, ...] = ("NCR", "ET", "ED", "TC", "WT")
#: Clinical variables a model can require (read from the DICOM header).
CLINICAL_NAMES: tuple[str, ...] = ("age_years", "sex_male")
#: The pseudo-sequence of shape features (they depend on the segmentation only).
MASK_SEQUENCE = "mask"


@dataclass(frozen=True)
class ModelInputs:
    """What a model needs from a study, in a radiologist's terms.

    Attributes
    ----------
    sequences
        Series the study must contain (from :data:`SEQUENCE_NAMES`), e.g. ``("T1c", "PET")``.
    regions
        Tumour sub-regions whose radiomics the model reads (from :data:`REGION_NAMES`). An
        empty region does not stop the model: its features are missing values, imputed as
        the model was trained to (see :func:`rgcds.analysis.predict.predict_all`).
    clinical
        Clinical variables (from :data:`CLINICAL_NAMES`).
    declared
        True when the card states them in a ``requires`` block; false when derived from the
        feature names.
    """

    sequences: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    clinical: tuple[str, ...] = ()
    declared: bool = False

    def describe(self) -> str:
        """The inputs in words, e.g. ``T1, T1c, T2, FLAIR; age, sex``."""
        words = {"age_years": "age", "sex_male": "sex"}
        parts = [", ".join(self.sequences) if self.sequences else "no image series"]
        if self.clinical:
            parts.append(", ".join(words.get(c, c) for c in self.clinical))
        return "; ".join(parts)

    def as_yaml(self) -> dict[str, list[str]]:
        """The card's ``requires`` block."""
        return {
            "sequences": list(self.sequences),
            "regions": list(self.regions),
            "clinical": list(self.clinical),
        }


def parse_feature_name(name: str) -> tuple[str, str, str] | None:
    """``(region, sequence, feature)`` of a radiomic feature name, else ``None``.

    ``ED_PET_glcm_Contrast`` gives ``("ED", "PET", "glcm_Contrast")``; shape features have
    sequence ``mask``. Clinical and other names (``age_years``, ``tbr_max``) give ``None``.
    """
    parts = name.split("_", 2)
    if len(parts) != 3 or parts[0] not in REGION_NAMES:
        return None
    if parts[1] not in SEQUENCE_NAMES and parts[1] != MASK_SEQUENCE:
        return None
    return parts[0], parts[1], parts[2]


def _ordered(values: set[str], order: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v for v in order if v in values)


def inputs_from_features(features: tuple[str, ...] | list[str]) -> ModelInputs:
    """Derive a model's inputs from its feature names (see :func:`parse_feature_name`)."""
    sequences: set[str] = set()
    regions: set[str] = set()
    for name in features:
        parsed = parse_feature_name(name)
        if parsed is None:
            continue
        regions.add(parsed[0])
        if parsed[1] != MASK_SEQUENCE:
            sequences.add(parsed[1])
    clinical = {f for f in features if f in CLINICAL_NAMES}
    return ModelInputs(
        sequences=_ordered(sequences, SEQUENCE_NAMES),
        regions=_ordered(regions, REGION_NAMES),
        clinical=_ordered(clinical, CLINICAL_NAMES),
        declared=False,
    )


def _names(block: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: Path) -> set[str]:
    raw = block.get(key) or []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ModelCardError(f"The model card {where}: 'requires.{key}' must be a list.")
    canonical = {a.lower(): a for a in allowed}
    names: set[str] = set()
    for item in raw:
        name = canonical.get(str(item).strip().lower())
        if name is None:
            raise ModelCardError(
                f"The model card {where}: 'requires.{key}' lists {item!r}, which is not one of "
                f"{', '.join(allowed)}."
            )
        names.add(name)
    return names


def _requires(data: Any, features: tuple[str, ...], where: Path) -> ModelInputs | None:
    if data in (None, {}):
        return None
    if not isinstance(data, Mapping):
        raise ModelCardError(
            f"The model card {where}: 'requires' must map sequences, regions and clinical."
        )
    unknown = sorted(set(data) - {"sequences", "regions", "clinical"})
    if unknown:
        raise ModelCardError(
            f"The model card {where}: 'requires' has unknown keys {unknown}; use sequences, "
            "regions and clinical."
        )
    declared = ModelInputs(
        sequences=_ordered(_names(data, "sequences", SEQUENCE_NAMES, where), SEQUENCE_NAMES),
        regions=_ordered(_names(data, "regions", REGION_NAMES, where), REGION_NAMES),
        clinical=_ordered(_names(data, "clinical", CLINICAL_NAMES, where), CLINICAL_NAMES),
        declared=True,
    )
    used = inputs_from_features(features)
    for key in ("sequences", "regions", "clinical"):
        lacking = sorted(set(getattr(used, key)) - set(getattr(declared, key)))
        if lacking:
            raise ModelCardError(
                f"The model card {where}: its features use {', '.join(lacking)}, which "
                f"'requires.{key}' does not list; add them or retrain."
            )
    return declared
