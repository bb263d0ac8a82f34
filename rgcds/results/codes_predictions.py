"""Coded concepts of marker predictions (targets, classes, probabilities, validation
metrics, decisions) and of radiomic features.

Re-exported by :mod:`rgcds.results.codes`.
"""

from __future__ import annotations

from highdicom.sr import CodedConcept

from rgcds.analysis._ibsi import IBSI_NAMES
from rgcds.results.codes_base import _slug, private
from rgcds.results.content import SeriesRole

# --- Predictions as decisions ---------------------------------------------------------------
DECISION_THRESHOLD = private("DECISION-THR", "Decision threshold (probability)")
DECISION_RULE = private("DECISION-RULE", "Decision rule")
PREDICTED_CALL = private("PREDICTED-CALL", "Predicted call")
VALIDATION_LOWER = private("VAL-CI-LOW", "Validation metric, lower 95% confidence limit")
VALIDATION_UPPER = private("VAL-CI-HIGH", "Validation metric, upper 95% confidence limit")
CONSISTENCY_NOTE = private("CONSISTENCY", "Imaging finding and model call compared")
SEQUENCE_METHOD: dict[SeriesRole, CodedConcept] = {
    SeriesRole.T1: private("ON-T1", "Measured on the T1-weighted series"),
    SeriesRole.T1C: private("ON-T1C", "Measured on the contrast-enhanced T1-weighted series"),
    SeriesRole.T2: private("ON-T2", "Measured on the T2-weighted series"),
    SeriesRole.FLAIR: private("ON-FLAIR", "Measured on the FLAIR series"),
    SeriesRole.PET: private("ON-PET", "Measured on the PET series"),
}
"""Measurement method of a radiomic feature: the series its intensities come from."""

_VALIDATION_METRICS: dict[str, CodedConcept] = {
    "auc": private("VAL-AUC", "Validation area under the ROC curve"),
    "c-index": private("VAL-CINDEX", "Validation concordance index (C-index)"),
}

_TARGETS: dict[str, CodedConcept] = {
    "mgmt promoter methylation": private("MGMT-METH", "MGMT promoter methylation"),
    "idh mutation": private("IDH-MUT", "IDH mutation"),
    "egfr amplification": private("EGFR-AMP", "EGFR amplification"),
}
_LABELS: dict[str, CodedConcept] = {
    "methylated": private("METHYLATED", "methylated"),
    "unmethylated": private("UNMETHYLATED", "unmethylated"),
    "idh-mutant": private("IDH-MUTANT", "IDH-mutant"),
    "idh-wildtype": private("IDH-WILDTYPE", "IDH-wildtype"),
    "amplified": private("AMPLIFIED", "amplified"),
    "not amplified": private("NOT-AMPLIFIED", "not amplified"),
}
_PROBABILITIES: dict[str, CodedConcept] = {
    "methylated": private("P-METHYLATED", "Probability of methylated"),
    "idh-mutant": private("P-IDH-MUTANT", "Probability of IDH-mutant"),
    "amplified": private("P-AMPLIFIED", "Probability of amplified"),
}


def validation_metric(name: str) -> CodedConcept:
    """The concept of a model's validation metric (AUC, C-index; others private)."""
    key = name.strip().lower()
    return _VALIDATION_METRICS.get(key) or private(
        _slug("VAL", key), f"Validation {name.strip()}"[:64]
    )


def prediction_probability(target: str, label: str) -> CodedConcept:
    """The concept of the probability of ``label`` (the positive class of ``target``)."""
    return _PROBABILITIES.get(label.strip().lower()) or private(
        _slug("PRB", f"{target}|{label}"), f"Probability of {label}"[:64]
    )


def prediction_target(target: str) -> CodedConcept:
    """The concept a marker prediction is about, e.g. ``MGMT promoter methylation``."""
    return _TARGETS.get(target.strip().lower()) or private(_slug("TGT", target), target[:64])


def prediction_label(target: str, label: str) -> CodedConcept:
    """The predicted class of a marker, e.g. ``methylated``."""
    return _LABELS.get(label.strip().lower()) or private(
        _slug("LBL", f"{target}|{label}"), label[:64]
    )


def radiomic_feature(name: str, ibsi_name: str | None, sequence: str) -> CodedConcept:
    """The concept of one radiomic feature: its IBSI code (``IBSI`` scheme, the reference
    manual's four-character identifier) when the feature maps to one, else private.

    ``sequence`` is not part of an IBSI concept; the SR gives it as the measurement method
    (:data:`SEQUENCE_METHOD`). A private concept keeps it in the meaning.
    """
    key = name.removeprefix("original_")
    mapped = IBSI_NAMES.get(key)
    if mapped is not None:
        meaning, identifier = mapped
        return CodedConcept(value=identifier, scheme_designator="IBSI", meaning=meaning[:64])
    meaning = f"{ibsi_name or key} ({sequence})"
    return private(_slug("RAD", f"{sequence}|{key}"), meaning[:64])
