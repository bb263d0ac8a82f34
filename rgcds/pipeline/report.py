"""From the analysis records to the report content the DICOM writers take."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import pandas as pd

from rgcds.analysis.location import Location as AnalysisLocation
from rgcds.analysis.measure import Measurements
from rgcds.analysis.pet import PetMeasurements
from rgcds.analysis.predict import MarkerPrediction, ModelProvenance, Predictions
from rgcds.analysis.predict import SurvivalPrediction as AnalysisSurvival
from rgcds.analysis.prognosis import PrognosisPrediction
from rgcds.analysis.residual import ResidualPrediction
from rgcds.results.content import (
    PET_UNITS_ARBITRARY,
    PET_UNITS_SUV,
    Hemisphere,
    LesionDiameters,
    Lobe,
    Location,
    PetRegistration,
    PetReport,
    Prediction,
    PrognosisItem,
    RadiomicFeature,
    RanoMeasurement,
    Region,
    RegionMeasurement,
    ReportContent,
    ReportStatus,
    ResidualAssessment,
    SeriesRole,
    SeriesUsed,
    SourceSeries,
    StudyIdentity,
    SurvivalPrediction,
)
from rgcds.results.content import ModelProvenance as ReportProvenance

DAYS_PER_MONTH = 365.25 / 12

#: Marker target -> (report name, positive label, negative label).
MARKERS: Mapping[str, tuple[str, str, str]] = {
    "mgmt_methylated": ("MGMT promoter methylation", "methylated", "unmethylated"),
    "idh_mutant": ("IDH mutation", "IDH-mutant", "IDH-wildtype"),
    "egfr_amplified": ("EGFR amplification", "amplified", "not amplified"),
}

_LOBES: Mapping[str, Lobe] = {
    "frontal": Lobe.FRONTAL,
    "temporal": Lobe.TEMPORAL,
    "parietal": Lobe.PARIETAL,
    "occipital": Lobe.OCCIPITAL,
    "insula": Lobe.INSULA,
    "cerebellum": Lobe.CEREBELLUM,
    "brainstem": Lobe.BRAINSTEM,
    "deep grey matter": Lobe.BASAL_GANGLIA,
    "corpus callosum": Lobe.CORPUS_CALLOSUM,
    "thalamus": Lobe.THALAMUS,
}

#: Radiomic features copied into the SR (the full table stays in the work directory).
SR_FEATURES: tuple[str, ...] = (
    "original_shape_Sphericity",
    "original_shape_Maximum3DDiameter",
    "original_firstorder_Mean",
    "original_firstorder_Entropy",
    "original_glcm_Contrast",
    "original_glszm_ZonePercentage",
)
SR_REGIONS = ("ET", "NCR", "ED")
SR_SEQUENCES = ("T1c", "FLAIR", "PET")

#: The roles a report names (the analysed sequences); the others are not reported as used.
_ROLES = {r.value.upper(): r for r in (SeriesRole.T1, SeriesRole.T1C, SeriesRole.T2,
                                        SeriesRole.FLAIR, SeriesRole.PET)}


def _provenance(p: ModelProvenance) -> ReportProvenance:
    return ReportProvenance(
        model_id=p.model_id,
        model_version=p.version,
        metric_name=p.metric or "not validated",
        metric_value=float(p.value) if p.value is not None else float("nan"),
        metric_ci=p.ci95,
    )


def regions(measurements: Measurements) -> tuple[RegionMeasurement, ...]:
    """Volumes per sub-region."""
    return tuple(
        RegionMeasurement(region=Region(r.region), volume_ml=float(r.volume_cm3))
        for r in measurements.regions
    )


def rano(measurements: Measurements) -> RanoMeasurement | None:
    """The RANO target lesions, or ``None`` when no enhancing lesion is measurable."""
    targets = measurements.rano.target_lesions
    if not targets:
        return None
    return RanoMeasurement(
        lesions=tuple(
            LesionDiameters(
                lesion=lesion.index,
                longest_diameter_mm=float(lesion.longest_diameter_mm),
                perpendicular_diameter_mm=float(lesion.perpendicular_diameter_mm),
                slice_index=lesion.slice_index,
            )
            for lesion in targets
        )
    )


def location(loc: AnalysisLocation | None) -> Location | None:
    """Hemisphere, lobes (where coded) and midline crossing."""
    if loc is None:
        return None
    lobes = tuple(dict.fromkeys(_LOBES[name] for name in loc.lobes if name in _LOBES))
    return Location(
        hemisphere=Hemisphere(loc.hemisphere),
        lobes=lobes,
        crosses_midline=bool(loc.midline_crossing),
    )


def features(table: pd.DataFrame) -> tuple[RadiomicFeature, ...]:
    """The SR's selection of radiomic features (tidy table in, report records out)."""
    out: list[RadiomicFeature] = []
    if table.empty:
        return ()
    chosen = table[
        table["feature"].isin(SR_FEATURES)
        & table["region"].isin(SR_REGIONS)
        & table["sequence"].str.upper().isin([s.upper() for s in SR_SEQUENCES])
    ]
    for row in chosen.itertuples(index=False):
        value = float(row.value)
        if value != value:  # NaN
            continue
        ibsi = getattr(row, "ibsi_name", None)
        out.append(
            RadiomicFeature(
                region=Region(str(row.region)),
                sequence=_ROLES[str(row.sequence).upper()],
                name=str(row.feature).removeprefix("original_"),
                ibsi_name=str(ibsi) if isinstance(ibsi, str) and ibsi else None,
                value=value,
            )
        )
    return tuple(out)


def marker_predictions(markers: Iterable[MarkerPrediction]) -> tuple[Prediction, ...]:
    """Marker predictions with their model provenance."""
    out = []
    for m in markers:
        name, positive, negative = MARKERS.get(
            m.marker, (m.marker.replace("_", " "), "positive", "negative")
        )
        out.append(
            Prediction(
                target=name,
                positive_label=positive,
                negative_label=negative,
                probability=float(m.probability),
                provenance=_provenance(m.provenance),
                threshold=float(m.threshold),
            )
        )
    return tuple(out)


def survival(items: Iterable[AnalysisSurvival]) -> SurvivalPrediction | None:
    """The first survival prediction, in days."""
    for s in items:
        return SurvivalPrediction(
            relative_risk=float(s.relative_risk),
            risk_group=s.risk_group,
            median_os_days=(
                float(s.median_os_months) * DAYS_PER_MONTH
                if s.median_os_months is not None
                else None
            ),
            curve=tuple(
                (float(m) * DAYS_PER_MONTH, float(p))
                for m, p in zip(s.curve_months, s.curve_survival, strict=True)
            ),
            provenance=_provenance(s.provenance),
        )
    return None


def series_used(used: Mapping[str, tuple[str, str]]) -> tuple[SeriesUsed, ...]:
    """Role value -> (series UID, description) as report records."""
    return tuple(
        SeriesUsed(role=_ROLES[role.upper()], series_instance_uid=uid, series_description=desc)
        for role, (uid, desc) in used.items()
        if role.upper() in _ROLES
    )


def complete_report(
    study: StudyIdentity,
    measurements: Measurements,
    table: pd.DataFrame,
    predictions: Predictions,
    used: Mapping[str, tuple[str, str]],
    notes: Iterable[str] = (),
    analysed_at: datetime | None = None,
    pet: PetReport | None = None,
    postoperative: bool = False,
) -> ReportContent:
    """The content of the report of an analysed study.

    ``postoperative``: the labels are the post-operative model's (resection cavity, oedema,
    residual enhancing tumour) and are named so.
    """
    return ReportContent(
        study=study,
        status=ReportStatus.COMPLETE,
        regions=regions(measurements),
        rano=rano(measurements),
        location=location(measurements.location),
        features=features(table),
        predictions=marker_predictions(predictions.markers),
        survival=survival(predictions.survival),
        series_used=series_used(used),
        analysed_at=analysed_at or datetime.now(UTC).replace(microsecond=0),
        notes=tuple(notes),
        pet=pet,
        postoperative=postoperative,
    )


def not_analysed_report(
    study: StudyIdentity,
    reason: str,
    used: Mapping[str, tuple[str, str]] | None = None,
    notes: Iterable[str] = (),
    analysed_at: datetime | None = None,
) -> ReportContent:
    """The content of the report of a study that could not be analysed, saying why."""
    return ReportContent(
        study=study,
        status=ReportStatus.NOT_ANALYSED,
        reason=reason,
        series_used=series_used(used or {}),
        analysed_at=analysed_at or datetime.now(UTC).replace(microsecond=0),
        notes=tuple(notes),
    )


def residual_assessment(residual: ResidualPrediction | None) -> ResidualAssessment | None:
    """The residual-tumour detection as reported."""
    if residual is None:
        return None
    deciding = {
        "combined": residual.probability_combined,
        "pet": residual.probability_pet,
        "radiomics": residual.probability_radiomics,
    }.get(residual.decided_by)
    probability = next(
        p for p in (deciding, residual.probability_combined, residual.probability_pet,
                    residual.probability_radiomics, 0.0) if p is not None
    )
    return ResidualAssessment(
        present=residual.present,
        probability=float(probability),
        models=tuple(_provenance(p) for p in residual.provenance),
        probability_pet=residual.probability_pet,
        probability_radiomics=residual.probability_radiomics,
        threshold=float(residual.threshold) if deciding is not None else None,
        decided_by=residual.decided_by if deciding is not None else "",
    )


def prognosis_items(prognosis: PrognosisPrediction | None) -> tuple[PrognosisItem, ...]:
    """Time to recurrence and overall survival as reported."""
    if prognosis is None:
        return ()
    return tuple(
        PrognosisItem(
            endpoint=e.endpoint,
            risk_score=float(e.relative_risk),
            risk_group=e.risk_group,
            provenance=_provenance(e.provenance),
            median_days=e.median_days,
            covariates=tuple(e.covariates_used),
            mgmt_used=e.mgmt_used,
        )
        for e in prognosis.endpoints
    )


def pet_report(
    result: PetMeasurements,
    pet_source: SourceSeries,
    *,
    ctv_source: str | None,
    ctv_ml: float | None = None,
    ctv_refused: str | None = None,
    residual: ResidualPrediction | None = None,
    prognosis: PrognosisPrediction | None = None,
    pet_only_reason: str | None = None,
    notes: Iterable[str] = (),
) -> PetReport:
    """The PET analysis as reported (SR measurement group, PDF page, fused overlays)."""
    quality = result.registration
    return PetReport(
        tracer=result.tracer.value,
        units=PET_UNITS_SUV if result.suv_available else PET_UNITS_ARBITRARY,
        threshold_tbr=float(result.threshold_tbr),
        tbr_max=float(result.tbr_max),
        background_mean=float(result.background_mean),
        background_method=result.background_method,
        btv_ml=float(result.btv_ml),
        ctv_source=(
            f"refused ({ctv_source}); search region {result.search_region}"
            if ctv_refused is not None and ctv_source is not None
            else ctv_source or f"none: search region {result.search_region}"
        ),
        ctv_ml=ctv_ml,
        ctv_refused=ctv_refused,
        btv_candidate_ml=float(result.btv_candidate_ml),
        pet_source=pet_source,
        tbr_mean=result.tbr_mean,
        suv_max=result.suv_max,
        suv_mean=result.suv_mean,
        suv_peak=result.suv_peak,
        registration=(
            PetRegistration(passed=quality.passed, nmi=float(quality.nmi))
            if quality is not None else None
        ),
        pet_only_reason=pet_only_reason,
        residual=residual_assessment(residual),
        prognosis=prognosis_items(prognosis),
        notes=tuple(notes),
    )


def pet_only_report(
    study: StudyIdentity,
    used: Mapping[str, tuple[str, str]],
    pet: PetReport,
    notes: Iterable[str] = (),
    analysed_at: datetime | None = None,
) -> ReportContent:
    """The report of a PET analysed without an MR (in the PET study)."""
    return ReportContent(
        study=study,
        status=ReportStatus.COMPLETE,
        series_used=series_used(used),
        analysed_at=analysed_at or datetime.now(UTC).replace(microsecond=0),
        notes=tuple(notes),
        pet=pet,
    )


__all__ = [
    "MARKERS",
    "SR_FEATURES",
    "complete_report",
    "features",
    "location",
    "marker_predictions",
    "not_analysed_report",
    "pet_only_report",
    "pet_report",
    "prognosis_items",
    "rano",
    "regions",
    "residual_assessment",
    "series_used",
    "survival",
]
