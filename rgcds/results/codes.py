"""Coded concepts used in the result objects.

Standard codes come from SNOMED CT (``SCT``), DICOM (``DCM``), LOINC (``LN``) and UCUM.
Concepts without a standard code known to us (the analysis status, the prediction targets,
the risk-model outputs) use the private coding scheme ``99RGCDS``; its designator starts
with ``99`` as PS3.3 §8.2 requires of private schemes, and the SR declares it in the
Coding Scheme Identification Sequence.
"""

from __future__ import annotations

import hashlib
import re

from highdicom.sr import CodedConcept

from rgcds.results.content import Hemisphere, Lobe, Region, ReportStatus, SeriesRole

PRIVATE_SCHEME = "99RGCDS"
"""Coding scheme designator of rgcds' private concepts."""

PRIVATE_SCHEME_NAME = "rgcds private concepts"


def private(value: str, meaning: str) -> CodedConcept:
    """A concept of the private ``99RGCDS`` scheme."""
    return CodedConcept(value=value, scheme_designator=PRIVATE_SCHEME, meaning=meaning)


def _sct(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value=value, scheme_designator="SCT", meaning=meaning)


def _dcm(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value=value, scheme_designator="DCM", meaning=meaning)


def ucum(value: str, meaning: str) -> CodedConcept:
    """A UCUM unit."""
    return CodedConcept(value=value, scheme_designator="UCUM", meaning=meaning)


# --- SEG segment properties (CID 7150 category, CID 7151/7159 types) ------------------------
MORPHOLOGICALLY_ABNORMAL_STRUCTURE = _sct("49755003", "Morphologically Abnormal Structure")
NECROSIS = _sct("6574001", "Necrosis")
EDEMA = _sct("79654002", "Edema")
NEOPLASM = _sct("108369006", "Neoplasm")
GLIOBLASTOMA = _sct("1163375002", "Glioblastoma")
BRAIN = _sct("12738006", "Brain")

SEGMENT_TYPE: dict[Region, CodedConcept] = {
    Region.NCR: NECROSIS,
    Region.ET: NEOPLASM,  # enhancing tumour: no pre-coordinated SCT concept; label says "enhancing"
    Region.ED: EDEMA,
}
"""Segmented property type of each segment region."""

REGION_FINDING: dict[Region, CodedConcept] = {
    **SEGMENT_TYPE,
    Region.TC: NEOPLASM,
    Region.WT: GLIOBLASTOMA,
}
"""Finding type of each region's measurement group in the SR."""

REGION_LABEL: dict[Region, str] = {
    Region.NCR: "Necrotic core",
    Region.ET: "Enhancing tumour",
    Region.ED: "Oedema",
    Region.TC: "Tumour core",
    Region.WT: "Whole tumour",
}
"""Human-readable names (SEG segment labels, SR tracking identifiers, PDF rows)."""

# --- Algorithm family (CID 7162) ------------------------------------------------------------
ARTIFICIAL_INTELLIGENCE = _dcm("123110", "Artificial Intelligence")
PROCESSING_EQUIPMENT = _dcm("109102", "Processing Equipment")


def algorithm_family(name: str) -> CodedConcept:
    """The coded algorithm family (CID 7162) for ``AlgorithmInfo.family``.

    Every rgcds model is a machine-learning model; CID 7162 codes them all as
    "Artificial Intelligence", whatever finer family the model card names.
    """
    del name
    return ARTIFICIAL_INTELLIGENCE


# --- Anatomy and location -------------------------------------------------------------------
LATERALITY: dict[Hemisphere, CodedConcept] = {
    Hemisphere.LEFT: _sct("7771000", "Left"),
    Hemisphere.RIGHT: _sct("24028007", "Right"),
    Hemisphere.BILATERAL: _sct("51440002", "Right and left"),
}

LOBE: dict[Lobe, CodedConcept] = {
    Lobe.FRONTAL: _sct("83251001", "Frontal lobe"),
    Lobe.TEMPORAL: _sct("78277001", "Temporal lobe"),
    Lobe.PARIETAL: _sct("16630005", "Parietal lobe"),
    Lobe.OCCIPITAL: _sct("31065004", "Occipital lobe"),
    Lobe.INSULA: _sct("36169008", "Insula"),
    Lobe.CORPUS_CALLOSUM: _sct("88442005", "Corpus callosum"),
    Lobe.BASAL_GANGLIA: private("BASAL-GANGLIA", "Basal ganglia"),
    Lobe.THALAMUS: _sct("42695009", "Thalamus"),
    Lobe.BRAINSTEM: _sct("119238007", "Brain stem"),
    Lobe.CEREBELLUM: _sct("113305005", "Cerebellum"),
}

YES = _sct("373066001", "Yes")
NO = _sct("373067005", "No")
CROSSES_MIDLINE = private("CROSSES-MIDLINE", "Crosses midline")

# --- Report structure -----------------------------------------------------------------------
PROCEDURE_MR_BRAIN = CodedConcept(value="24590-2", scheme_designator="LN", meaning="MR Brain")
VOLUME = _sct("118565006", "Volume")
LONG_AXIS = _sct("103339001", "Long axis")
SHORT_AXIS = _sct("103340004", "Short axis")
PERPENDICULAR_PRODUCT = private("RANO-SPD-LESION", "Product of perpendicular diameters")
SUM_OF_PRODUCTS = private("RANO-SPD", "Sum of products of perpendicular diameters")
RANO_LESION = private("RANO-LESION", "RANO measurable enhancing lesion")
PROBABILITY = _dcm("122157", "Probability")
RELATIVE_RISK = private("REL-RISK", "Predicted relative risk of death")
MEDIAN_OS = private("MEDIAN-OS", "Predicted median overall survival")
SURVIVAL_AT = private("OS-PROB", "Predicted overall survival probability")
RISK_GROUP = private("RISK-GROUP", "Predicted risk group")
OVERALL_SURVIVAL = private("OS", "Overall survival")
ANALYSIS_STATUS = private("STATUS", "Analysis status")
ANALYSIS = private("ANALYSIS", "Automated tumour analysis")
REASON = private("REASON", "Reason not analysed")
INTENDED_USE = private("INTENDED-USE", "Intended use")
NOTE = _dcm("121106", "Comment")

STATUS: dict[ReportStatus, CodedConcept] = {
    ReportStatus.COMPLETE: private("COMPLETE", "Analysis complete"),
    ReportStatus.NOT_ANALYSED: private("NOT-ANALYSED", "Not analysed"),
}

SERIES_ROLE: dict[SeriesRole, CodedConcept] = {
    SeriesRole.T1: private("SERIES-T1", "T1-weighted series used"),
    SeriesRole.T1C: private("SERIES-T1C", "Contrast-enhanced T1-weighted series used"),
    SeriesRole.T2: private("SERIES-T2", "T2-weighted series used"),
    SeriesRole.FLAIR: private("SERIES-FLAIR", "FLAIR series used"),
    SeriesRole.PET: private("SERIES-PET", "PET series used"),
}

_RISK_GROUPS: dict[str, CodedConcept] = {
    "low": _sct("75976002", "Low risk"),
    "intermediate": _sct("25594002", "Moderate risk"),
    "moderate": _sct("25594002", "Moderate risk"),
    "high": _sct("15508007", "High risk"),
}

UNIT_ML = ucum("ml", "milliliter")
UNIT_MM = ucum("mm", "millimeter")
UNIT_MM2 = ucum("mm2", "square millimeter")
UNIT_DAYS = ucum("d", "day")
UNIT_ONE = ucum("1", "no units")


def risk_group(name: str) -> CodedConcept:
    """The coded risk group (``low``/``intermediate``/``high``; others are private)."""
    key = name.strip().lower()
    return _RISK_GROUPS.get(key) or private(_slug("RISK", key), f"{name.strip()} risk")


def _slug(prefix: str, text: str) -> str:
    """A short, stable code value for free text (at most 16 characters, SH)."""
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8].upper()
    head = re.sub(r"[^A-Z0-9]", "", text.upper())[: 15 - len(prefix) - 8]
    return f"{prefix}-{head}{digest}"[:16]


def prediction_target(target: str) -> CodedConcept:
    """The concept a marker prediction is about, e.g. ``MGMT promoter methylation``."""
    return private(_slug("TGT", target), target[:64])


def prediction_label(target: str, label: str) -> CodedConcept:
    """The predicted class of a marker, e.g. ``methylated``."""
    return private(_slug("LBL", f"{target}|{label}"), label[:64])


def radiomic_feature(name: str, ibsi_name: str | None, sequence: str) -> CodedConcept:
    """The concept of one radiomic feature on one sequence (IBSI name when known)."""
    meaning = f"{ibsi_name or name} ({sequence})"
    return private(_slug("RAD", f"{sequence}|{name}"), meaning[:64])


def unit(value: str) -> CodedConcept:
    """A UCUM unit by its code; ``"1"`` is dimensionless."""
    return UNIT_ONE if value == "1" else ucum(value, value)


__all__ = [
    "ANALYSIS",
    "ANALYSIS_STATUS",
    "ARTIFICIAL_INTELLIGENCE",
    "BRAIN",
    "CROSSES_MIDLINE",
    "EDEMA",
    "GLIOBLASTOMA",
    "INTENDED_USE",
    "LATERALITY",
    "LOBE",
    "LONG_AXIS",
    "MEDIAN_OS",
    "MORPHOLOGICALLY_ABNORMAL_STRUCTURE",
    "NECROSIS",
    "NEOPLASM",
    "NO",
    "NOTE",
    "PERPENDICULAR_PRODUCT",
    "PRIVATE_SCHEME",
    "PRIVATE_SCHEME_NAME",
    "PROBABILITY",
    "PROCEDURE_MR_BRAIN",
    "PROCESSING_EQUIPMENT",
    "RANO_LESION",
    "REASON",
    "REGION_FINDING",
    "REGION_LABEL",
    "RELATIVE_RISK",
    "RISK_GROUP",
    "SEGMENT_TYPE",
    "SERIES_ROLE",
    "SHORT_AXIS",
    "STATUS",
    "SUM_OF_PRODUCTS",
    "SURVIVAL_AT",
    "UNIT_DAYS",
    "UNIT_ML",
    "UNIT_MM",
    "UNIT_MM2",
    "UNIT_ONE",
    "VOLUME",
    "YES",
    "algorithm_family",
    "prediction_label",
    "prediction_target",
    "radiomic_feature",
    "risk_group",
    "ucum",
    "unit",
]
