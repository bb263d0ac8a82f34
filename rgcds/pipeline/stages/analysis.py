"""Measurements, radiomics, predictions and the PET summary of a segmented study."""


from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pydicom
import structlog

from rgcds.analysis.measure import Measurements
from rgcds.analysis.measure import measure as measure_tumour
from rgcds.analysis.pet import PetMeasurements, PetNotAnalysed, analyse_pet
from rgcds.analysis.predict import ClinicalInputs, Predictions, predict_all
from rgcds.analysis.radiomics import extract_radiomics, to_wide, write_features
from rgcds.exceptions import DicomInputError
from rgcds.pipeline.context import StudyContext
from rgcds.pipeline.stages.inputs import Converted
from rgcds.pipeline.stages.segmentation import Segmentation
from rgcds.study import SeriesRole, identify_tracer

logger = structlog.get_logger(__name__)

# --- measure, radiomics, predict ------------------------------------------------------


def measure(ctx: StudyContext, seg: Segmentation) -> Measurements:
    """Volumes, RANO, multifocality and location on the native reference grid."""
    result = measure_tumour(seg.labels_native, to_mni=seg.to_mni)
    ctx.path("measurements.json").write_text(
        json.dumps(
            {
                r.region: {"volume_cm3": r.volume_cm3, "components": r.n_components}
                for r in result.regions
            }
            | {"rano_sum_of_products_mm2": result.rano.sum_of_products_mm2},
            indent=2,
        )
    )
    return result


def radiomics(ctx: StudyContext, seg: Segmentation, study_uid: str) -> pd.DataFrame:
    """Radiomic features per sub-region and sequence (model grid); ``features.csv``."""
    path = ctx.work_dir / "features.csv"
    if path.exists():
        try:
            table = pd.read_csv(path)
            logger.info("radiomics resumed from the work directory", n=len(table))
            return table
        except (OSError, ValueError):
            pass
    table = extract_radiomics(
        dict(seg.model_images),
        seg.labels_model,
        study_uid=study_uid,
        regions=tuple(ctx.settings.processing.radiomics_regions),
        params=ctx.settings.processing.radiomics_params,
        max_workers=ctx.settings.processing.radiomics_workers,
    )
    write_features(table, path)
    logger.info("radiomics extracted", n_features=len(table))
    return table


def clinical_inputs(dataset: pydicom.Dataset) -> ClinicalInputs:
    """Age (years) and sex from the header: PatientAge, else birth date and study date."""
    age: float | None = None
    text = str(dataset.get("PatientAge", "") or "")
    if len(text) == 4 and text[:3].isdigit():
        factor = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}.get(text[3])
        if factor is not None:
            age = int(text[:3]) * factor
    if age is None:
        birth = str(dataset.get("PatientBirthDate", "") or "")
        study = str(dataset.get("StudyDate", "") or "")
        if len(birth) == 8 and len(study) == 8 and birth.isdigit() and study.isdigit():
            age = (int(study[:4]) - int(birth[:4])) - (study[4:] < birth[4:])
    sex = str(dataset.get("PatientSex", "") or "") or None
    return ClinicalInputs(age_years=age, sex=sex)


def predict(
    ctx: StudyContext, features: pd.DataFrame, clinical: ClinicalInputs
) -> Predictions:
    """Marker and survival predictions from every prediction model in the registry."""
    wide = to_wide(features)
    values: dict[str, float] = {}
    if len(wide):
        row = wide.iloc[0]
        values = {str(k): float(v) for k, v in row.items() if pd.notna(v)}
    root = ctx.settings.inference.models_root
    if root is None:
        from rgcds.inference import DEFAULT_MODELS_ROOT

        root = DEFAULT_MODELS_ROOT
    research = ctx.settings.research_mode or ctx.settings.inference.research_mode
    return predict_all(Path(root), values, clinical, research_mode=research)


def pet_summary(result: PetMeasurements) -> dict[str, object]:
    """PHI-free figures of a PET analysis."""

    def r(value: float | None, n: int = 2) -> float | None:
        return None if value is None else round(float(value), n)

    return {
        "tracer": result.tracer.value,
        "units": result.units,
        "threshold_tbr": result.threshold_tbr,
        "tbr_max": r(result.tbr_max),
        "tbr_mean": r(result.tbr_mean),
        "suv_max": r(result.suv_max),
        "suv_mean": r(result.suv_mean),
        "suv_peak": r(result.suv_peak),
        "background_mean": r(result.background_mean, 3),
        "background_method": result.background_method,
        "btv_ml": r(result.btv_ml, 1),
        "btv_candidate_ml": r(result.btv_candidate_ml, 1),
    }


def pet_notes(result: PetMeasurements | PetNotAnalysed | None) -> tuple[str, ...]:
    """Sentences for the report on the PET analysis."""
    if result is None:
        return ()
    if isinstance(result, PetNotAnalysed):
        return (f"PET ({result.tracer.value}) not analysed: {result.reason}",)
    suv = (
        f"SUVmax {result.suv_max:.2f}, SUVpeak {result.suv_peak:.2f}, "
        if result.suv_max is not None and result.suv_peak is not None
        else f"SUV not available ({result.suv_reason}); "
    )
    return (
        f"Amino-acid PET ({result.tracer.value}): TBRmax {result.tbr_max:.2f}, "
        + (f"TBRmean {result.tbr_mean:.2f}, " if result.tbr_mean is not None else "")
        + suv
        + f"BTV {result.btv_ml:.1f} ml at TBR {result.threshold_tbr}; background "
        f"{result.background_method}.",
        *result.notes,
    )


def pet_only_analysis(
    ctx: StudyContext, converted: Converted
) -> PetMeasurements | PetNotAnalysed:
    """Amino-acid PET measurements on the PET grid alone (no MR partner).

    The brain is estimated from the PET, the search region is the brain and the background
    the mirrored contralateral region of the hottest spot (see ``docs/pet.md``).
    """
    volume = converted.volumes[SeriesRole.PET]
    tracer = identify_tracer(converted.series[SeriesRole.PET])
    try:
        result = analyse_pet(
            volume.image, tracer=tracer, suv=volume.pet, brain_mask=None,
            settings=ctx.settings.pet,
        )
    except DicomInputError as exc:
        logger.warning("PET not analysed", reason=str(exc))
        return PetNotAnalysed(tracer=tracer, reason=str(exc))
    if isinstance(result, PetMeasurements):
        ctx.path("pet.json").write_text(json.dumps(pet_summary(result), indent=2))
        logger.info("PET analysed alone", tracer=result.tracer.value,
                    tbr_max=round(result.tbr_max, 2))
    return result
