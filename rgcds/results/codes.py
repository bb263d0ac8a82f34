"""Coded concepts used in the result objects.

This module is the one table of every concept rgcds writes. Standard codes come from SNOMED
CT (``SCT``), DICOM (``DCM``), NCI Thesaurus (``NCIt``), LOINC (``LN``), UMLS, UCUM and, for
radiomic features, the IBSI reference manual's feature identifiers (``IBSI``). Concepts
without a standard code known to us (the analysis status, the prediction targets, the
risk-model outputs) use the private coding scheme ``99RGCDS`` with fixed, readable code
values and meanings; its designator starts with ``99`` as PS3.3 §8.2 requires of private
schemes, and the SR declares it in the Coding Scheme Identification Sequence.
"""

from __future__ import annotations

from highdicom.sr import CodedConcept

from rgcds.results.codes_base import (
    PRIVATE_SCHEME,
    PRIVATE_SCHEME_NAME,
    _dcm,
    _sct,
    _slug,
    ucum,
)
from rgcds.results.codes_base import private as private
from rgcds.results.codes_predictions import CONSISTENCY_NOTE as CONSISTENCY_NOTE
from rgcds.results.codes_predictions import DECISION_RULE as DECISION_RULE
from rgcds.results.codes_predictions import DECISION_THRESHOLD as DECISION_THRESHOLD
from rgcds.results.codes_predictions import PREDICTED_CALL as PREDICTED_CALL
from rgcds.results.codes_predictions import SEQUENCE_METHOD as SEQUENCE_METHOD
from rgcds.results.codes_predictions import VALIDATION_LOWER as VALIDATION_LOWER
from rgcds.results.codes_predictions import VALIDATION_UPPER as VALIDATION_UPPER
from rgcds.results.codes_predictions import (
    prediction_label,
    prediction_target,
    radiomic_feature,
)
from rgcds.results.codes_predictions import prediction_probability as prediction_probability
from rgcds.results.codes_predictions import validation_metric as validation_metric
from rgcds.results.content import (
    Hemisphere,
    Lobe,
    PetSegment,
    Region,
    ReportStatus,
    SeriesRole,
)

# --- SEG segment properties (CID 7150 category, CID 7151/7159 types) ------------------------
MORPHOLOGICALLY_ABNORMAL_STRUCTURE = _sct("49755003", "Morphologically Abnormal Structure")
NECROSIS = _sct("6574001", "Necrosis")
EDEMA = _sct("79654002", "Edema")
NEOPLASM = _sct("108369006", "Neoplasm")
GLIOBLASTOMA = _sct("1163375002", "Glioblastoma")
BRAIN = _sct("12738006", "Brain")

ENHANCING_LESION = CodedConcept(
    value="C113842", scheme_designator="NCIt", meaning="Enhancing Lesion"
)
"""Enhancing tumour, before and after surgery (SCT has no pre-coordinated concept; the
model cards and the nnU-Net and MONAI importers code it so too)."""

SEGMENT_TYPE: dict[Region, CodedConcept] = {
    Region.NCR: NECROSIS,
    Region.ET: ENHANCING_LESION,
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

# Post-operative labels (model card ``models/postop-unet-phantom/model.yaml``):
# 1 resection cavity, 2 oedema (FLAIR hyperintensity), 3 residual enhancing tumour.
BODY_CAVITY = _sct("91806002", "Body cavity")
LESION = _sct("52988006", "Lesion")

POSTOP_SEGMENT_TYPE: dict[Region, CodedConcept] = {
    Region.NCR: BODY_CAVITY,
    Region.ET: ENHANCING_LESION,
    Region.ED: EDEMA,
}
"""Segmented property type of each segment region of a post-operative study."""

POSTOP_REGION_FINDING: dict[Region, CodedConcept] = {
    **POSTOP_SEGMENT_TYPE,
    Region.TC: private("CAVITY-RESIDUAL", "Resection cavity and residual enhancement"),
    Region.WT: LESION,
}
"""Finding type of each region's SR measurement group in a post-operative study."""

POSTOP_REGION_LABEL: dict[Region, str] = {
    Region.NCR: "Resection cavity",
    Region.ET: "Residual enhancing tumour",
    Region.ED: "Oedema",
    Region.TC: "Cavity + residual enhancement",
    Region.WT: "Whole lesion",
}
"""Human-readable names of the regions of a post-operative study."""


REGION_ABBREVIATION: dict[Region, str] = {r: r.value for r in Region}
"""The BraTS sub-region abbreviations (NCR, ET, ED, TC, WT)."""

POSTOP_REGION_ABBREVIATION: dict[Region, str] = {
    Region.NCR: "RC",
    Region.ET: "ET",
    Region.ED: "ED",
    Region.TC: "RC+ET",
    Region.WT: "WL",
}
"""Abbreviations of a post-operative study's regions: resection cavity (RC), not necrotic core."""


def region_tag(region: Region, postoperative: bool = False) -> str:
    """The region's name and abbreviation, e.g. "Enhancing tumour (ET)", "Resection cavity
    (RC)": the SEG segments' and SR groups' tracking identifiers and the PDF's rows."""
    abbreviation = (POSTOP_REGION_ABBREVIATION if postoperative else REGION_ABBREVIATION)[region]
    return f"{region_label(region, postoperative)} ({abbreviation})"


def region_label(region: Region, postoperative: bool = False) -> str:
    """The displayed name of ``region`` (:data:`POSTOP_REGION_LABEL` when post-operative)."""
    return (POSTOP_REGION_LABEL if postoperative else REGION_LABEL)[region]


def segment_type(region: Region, postoperative: bool = False) -> CodedConcept:
    """The segmented property type of the segment ``region``."""
    return (POSTOP_SEGMENT_TYPE if postoperative else SEGMENT_TYPE)[region]


def region_finding(region: Region, postoperative: bool = False) -> CodedConcept:
    """The SR finding type of ``region``."""
    return (POSTOP_REGION_FINDING if postoperative else REGION_FINDING)[region]


# --- Algorithm family (CID 7162) ------------------------------------------------------------
ARTIFICIAL_INTELLIGENCE = _dcm("123110", "Artificial Intelligence")
PROCESSING_EQUIPMENT = _dcm("109102", "Processing Equipment")
SOURCE_IMAGE_FOR_PROCESSING = _dcm("121322", "Source image for image processing operation")
"""Purpose of reference of a source image (CID 7202), e.g. the slice an overlay renders."""


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
    Hemisphere.BILATERAL: _sct("51440002", "Bilateral"),  # CID 244's meaning
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
    Lobe.BRAINSTEM: _sct("119238007", "Brain Stem"),  # CID 7140's meaning
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


# --- Report structure (TID 1500 containers) -------------------------------------------------
QUALITATIVE_EVALUATIONS = CodedConcept(
    value="C0034375", scheme_designator="UMLS", meaning="Qualitative Evaluations"
)
"""TID 1500 row 12: the container of the report-level evaluations (status, notes)."""

# --- PET (amino-acid PET of glioma) ---------------------------------------------------------
SPATIAL_AND_RELATIONAL_CONCEPT = _sct("309825002", "Spatial and Relational Concept")
CLINICAL_TARGET_VOLUME = _sct("228792002", "Clinical target volume")
BIOLOGICAL_TUMOUR_VOLUME = private("BTV", "Biological tumour volume")
RESIDUAL_TUMOUR = private("RESIDUAL-TUMOUR", "Residual tumour")

PET_SEGMENT_CATEGORY: dict[PetSegment, CodedConcept] = {
    PetSegment.BTV: MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
    PetSegment.RESIDUAL: MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
    PetSegment.CTV: SPATIAL_AND_RELATIONAL_CONCEPT,
}
"""Segmented property category (CID 7150) of each PET SEG segment."""

PET_SEGMENT_TYPE: dict[PetSegment, CodedConcept] = {
    PetSegment.BTV: BIOLOGICAL_TUMOUR_VOLUME,  # no standard concept for an uptake-defined BTV
    PetSegment.RESIDUAL: NEOPLASM,
    PetSegment.CTV: CLINICAL_TARGET_VOLUME,
}
"""Segmented property type of each PET SEG segment."""

PET_SEGMENT_ID: dict[PetSegment, str] = {
    PetSegment.BTV: "BTV",
    PetSegment.RESIDUAL: "RESIDUAL",
    PetSegment.CTV: "CTV",
}
"""Short identifiers (tracking ids, UID purposes)."""

PROCEDURE_PET_BRAIN = _sct("764666002", "PET brain study")
RADIOPHARMACEUTICAL = _dcm("123001", "Radiopharmaceutical")
STANDARDIZED_UPTAKE_VALUE_BW = _dcm("126401", "SUVbw")
MAXIMUM = _sct("56851009", "Maximum")
MEAN = _sct("373098007", "Mean")
PEAK = _dcm("126031", "Peak Value Within ROI")
TBR = _dcm("126039", "Lesion to Background SUV Ratio")
"""The tumour-to-background ratio (CID 7466; DICOM defines it as the general concept of a
TBR; the ratio is the same whether or not the PET is SUV-calibrated)."""
METABOLIC_VOLUME = _dcm("126032", "Metabolic Volume")
"""The BTV's volume: a volume found from the metabolic activity on PET (CID 7466)."""
RANO_METHOD = CodedConcept(value="C114879", scheme_designator="NCIt", meaning="RANO")
"""The measurement method of the RANO lesion groups (CID 6147, Response Criteria)."""
TBR_THRESHOLD = private("TBR-THRESHOLD", "BTV threshold (tumour-to-background ratio)")
BACKGROUND_UPTAKE = _dcm("126040", "Background for Lesion to Background SUV Ratio")
"""The background the TBR divides by (CID 7466), in the PET's units."""
BACKGROUND_METHOD = private("PET-BG-METHOD", "Background region method")
PET_UNITS = private("PET-UNITS", "PET uptake units")
PET_ANALYSIS = private("PET-ANALYSIS", "Amino-acid PET analysis")
CTV_SOURCE = private("CTV-SOURCE", "Clinical target volume source")
REGISTRATION_PASSED = private("REG-PASSED", "PET-to-MR registration passed")
REGISTRATION_NMI = private("REG-NMI", "PET-to-MR normalised mutual information")
PET_ONLY_REASON = private("PET-ONLY", "PET analysed without MR")
RESIDUAL_PROBABILITY = private("PRB-RESIDUAL", "Probability of residual tumour")
RESIDUAL_PROBABILITY_PET = private("PRB-RESIDUAL-PET", "Probability of residual tumour (PET)")
RESIDUAL_PROBABILITY_RADIOMICS = private(
    "PRB-RESIDUAL-RAD", "Probability of residual tumour (radiomics)"
)
PRESENT = _sct("52101004", "Present")
ABSENT = _sct("272519000", "Absent")
RISK_SCORE = private("RISK-SCORE", "Predicted risk score")
COVARIATES = private("COVARIATES", "Model covariates used")
MGMT_USED = private("MGMT-USED", "MGMT status used as covariate")
TIME_TO_RECURRENCE = private("TTR", "Time to recurrence")
MEDIAN_TTR = private("MEDIAN-TTR", "Predicted median time to recurrence")

UNIT_SUVBW = ucum("{SUVbw}g/ml", "Standardized Uptake Value body weight")
UNIT_ARBITRARY = ucum("[arb'U]", "arbitrary unit")

_TRACERS: dict[str, CodedConcept] = {
    "MET": _sct("129510001", "Methionine C^11^"),
    "FET": _sct("424708001", "Fluorethyltyrosin F^18^"),
    "FDOPA": _sct("5811000122108", "Fluoro-L-dopa F^18^"),
    "FDG": _sct("35321007", "Fluorodeoxyglucose F^18^"),
}
"""Radiopharmaceuticals (CID 4021) of the tracers rgcds recognises."""


def tracer(name: str, code: tuple[str, str, str] | None = None) -> CodedConcept:
    """The coded radiopharmaceutical: ``code`` if given, else by tracer name (CID 4021)."""
    if code is not None:
        value, scheme, meaning = code
        return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)
    key = name.strip().upper()
    return _TRACERS.get(key) or private(_slug("TRC", key), f"Tracer {name.strip()}"[:64])


def prognosis_endpoint(endpoint: str) -> CodedConcept:
    """The coded prognosis endpoint (time to recurrence, overall survival, or private)."""
    key = endpoint.strip().lower()
    if key in {"time to recurrence", "ttr", "recurrence-free survival"}:
        return TIME_TO_RECURRENCE
    if key in {"overall survival", "os"}:
        return OVERALL_SURVIVAL
    return private(_slug("END", key), endpoint.strip()[:64])


def prognosis_median(endpoint: str) -> CodedConcept:
    """The concept of the predicted median of ``endpoint``."""
    concept = prognosis_endpoint(endpoint)
    if concept == OVERALL_SURVIVAL:
        return MEDIAN_OS
    if concept == TIME_TO_RECURRENCE:
        return MEDIAN_TTR
    return private(_slug("MED", endpoint.strip().lower()), f"Predicted median {endpoint}"[:64])


def risk_group(name: str) -> CodedConcept:
    """The coded risk group (``low``/``intermediate``/``high``; others are private)."""
    key = name.strip().lower()
    return _RISK_GROUPS.get(key) or private(_slug("RISK", key), f"{name.strip()} risk")


def unit(value: str) -> CodedConcept:
    """A UCUM unit by its code; ``"1"`` is dimensionless."""
    return UNIT_ONE if value == "1" else ucum(value, value)


__all__ = [
    "ABSENT",
    "ANALYSIS",
    "ANALYSIS_STATUS",
    "ARTIFICIAL_INTELLIGENCE",
    "BACKGROUND_METHOD",
    "BACKGROUND_UPTAKE",
    "BIOLOGICAL_TUMOUR_VOLUME",
    "BODY_CAVITY",
    "BRAIN",
    "CLINICAL_TARGET_VOLUME",
    "COVARIATES",
    "CROSSES_MIDLINE",
    "CTV_SOURCE",
    "EDEMA",
    "ENHANCING_LESION",
    "GLIOBLASTOMA",
    "INTENDED_USE",
    "LATERALITY",
    "LESION",
    "LOBE",
    "LONG_AXIS",
    "MAXIMUM",
    "MEAN",
    "MEDIAN_OS",
    "MEDIAN_TTR",
    "METABOLIC_VOLUME",
    "MGMT_USED",
    "MORPHOLOGICALLY_ABNORMAL_STRUCTURE",
    "NECROSIS",
    "NEOPLASM",
    "NO",
    "NOTE",
    "PEAK",
    "PERPENDICULAR_PRODUCT",
    "PET_ANALYSIS",
    "PET_ONLY_REASON",
    "PET_SEGMENT_CATEGORY",
    "PET_SEGMENT_ID",
    "PET_SEGMENT_TYPE",
    "PET_UNITS",
    "POSTOP_REGION_FINDING",
    "POSTOP_REGION_LABEL",
    "POSTOP_SEGMENT_TYPE",
    "PRESENT",
    "PRIVATE_SCHEME",
    "PRIVATE_SCHEME_NAME",
    "PROBABILITY",
    "PROCEDURE_MR_BRAIN",
    "PROCEDURE_PET_BRAIN",
    "PROCESSING_EQUIPMENT",
    "RADIOPHARMACEUTICAL",
    "RANO_LESION",
    "RANO_METHOD",
    "REASON",
    "REGION_FINDING",
    "REGION_LABEL",
    "REGISTRATION_NMI",
    "REGISTRATION_PASSED",
    "RELATIVE_RISK",
    "RESIDUAL_PROBABILITY",
    "RESIDUAL_PROBABILITY_PET",
    "RESIDUAL_PROBABILITY_RADIOMICS",
    "RESIDUAL_TUMOUR",
    "RISK_GROUP",
    "RISK_SCORE",
    "SEGMENT_TYPE",
    "SERIES_ROLE",
    "SHORT_AXIS",
    "SPATIAL_AND_RELATIONAL_CONCEPT",
    "STANDARDIZED_UPTAKE_VALUE_BW",
    "STATUS",
    "SUM_OF_PRODUCTS",
    "SURVIVAL_AT",
    "TBR",
    "TBR_THRESHOLD",
    "TIME_TO_RECURRENCE",
    "UNIT_ARBITRARY",
    "UNIT_DAYS",
    "UNIT_ML",
    "UNIT_MM",
    "UNIT_MM2",
    "UNIT_ONE",
    "UNIT_SUVBW",
    "VOLUME",
    "YES",
    "algorithm_family",
    "prediction_label",
    "prediction_target",
    "prognosis_endpoint",
    "prognosis_median",
    "radiomic_feature",
    "region_finding",
    "region_label",
    "region_tag",
    "risk_group",
    "segment_type",
    "tracer",
    "ucum",
    "unit",
]
