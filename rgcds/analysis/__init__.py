"""Tumour analysis: measurements (volumes, RANO, location), radiomics and predictions.

Stages are plain functions on SimpleITK images and frozen dataclasses:

* :func:`measure` - volumes per sub-region, RANO bidimensional products, multifocality and
  location (hemisphere, lobes, midline crossing);
* :func:`extract_radiomics` - pyradiomics features per (region, sequence), a tidy table;
* :func:`predict_all` / :func:`load_model` - radiogenomic marker and survival predictions from
  models whose cards (:mod:`rgcds.analysis.cards`) carry validation metrics and a sha256.

Everything here is for research use only (:data:`rgcds.RESEARCH_USE_ONLY`).
"""

from __future__ import annotations

from rgcds.analysis.cards import (
    ModelCard,
    UnvalidatedModelError,
    ValidationMetric,
    discover_cards,
    read_card,
)
from rgcds.analysis.ctv import (
    CtvResult,
    RtStructError,
    derive_ctv,
    rasterise_roi,
    select_ctv_roi,
)
from rgcds.analysis.location import LobeAtlas, Location, load_lobe_atlas, locate
from rgcds.analysis.measure import (
    REGIONS,
    Measurements,
    RanoLesion,
    RanoResult,
    RegionMeasurement,
    measure,
    measure_volumes,
    rano,
)
from rgcds.analysis.pet import (
    BackgroundVoi,
    PetGeometryError,
    PetMeasurements,
    PetNotAnalysed,
    PetSettings,
    RegistrationQuality,
    analyse_pet,
    contralateral_background,
    register_pet_to_mr,
    registration_quality,
)
from rgcds.analysis.predict import (
    ClassifierModel,
    ClinicalInputs,
    MarkerPrediction,
    ModelProvenance,
    Predictions,
    SurvivalModel,
    SurvivalPrediction,
    load_model,
    predict_all,
)
from rgcds.analysis.radiomics import (
    FEATURE_COLUMNS,
    RadiomicsParams,
    extract_radiomics,
    load_params,
    to_wide,
    write_features,
)

__all__ = [
    "FEATURE_COLUMNS",
    "REGIONS",
    "BackgroundVoi",
    "ClassifierModel",
    "ClinicalInputs",
    "CtvResult",
    "LobeAtlas",
    "Location",
    "MarkerPrediction",
    "Measurements",
    "ModelCard",
    "ModelProvenance",
    "PetGeometryError",
    "PetMeasurements",
    "PetNotAnalysed",
    "PetSettings",
    "Predictions",
    "RadiomicsParams",
    "RanoLesion",
    "RanoResult",
    "RegionMeasurement",
    "RegistrationQuality",
    "RtStructError",
    "SurvivalModel",
    "SurvivalPrediction",
    "UnvalidatedModelError",
    "ValidationMetric",
    "analyse_pet",
    "contralateral_background",
    "derive_ctv",
    "discover_cards",
    "extract_radiomics",
    "load_lobe_atlas",
    "load_model",
    "load_params",
    "locate",
    "measure",
    "measure_volumes",
    "predict_all",
    "rano",
    "rasterise_roi",
    "read_card",
    "register_pet_to_mr",
    "registration_quality",
    "select_ctv_roi",
    "to_wide",
    "write_features",
]
