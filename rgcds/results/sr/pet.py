"""The PET analysis: uptake, BTV and CTV, the residual-tumour call and the prognosis."""

from __future__ import annotations

import pydicom
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    ContentItem,
    Measurement,
    MeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    ReferencedSegment,
    TextContentItem,
    TrackingIdentifier,
    VolumetricROIMeasurementsAndQualitativeEvaluations,
)

from rgcds import RESEARCH_USE_ONLY, __version__
from rgcds.results import codes
from rgcds.results._common import (
    ResultKey,
)
from rgcds.results.content import (
    AlgorithmInfo,
    PetReport,
    PetSegment,
    ResidualAssessment,
)
from rgcds.results.pet_seg import pet_segment_numbers
from rgcds.results.seg import result_key
from rgcds.results.sr.items import (
    _algorithm,
    _append,
    _Group,
    _measurements,
    _model_items,
    _provenance,
    _text,
    decision_rule,
)
from rgcds.results.sr.regions import referenced_segment


def _pet_uptake_unit(pet: PetReport) -> CodedConcept:
    return codes.UNIT_SUVBW if pet.is_suv else codes.UNIT_ARBITRARY


def _pet_measurements(pet: PetReport) -> list[Measurement]:
    items = [Measurement(codes.TBR, float(pet.tbr_max), codes.UNIT_ONE, derivation=codes.MAXIMUM)]
    if pet.tbr_mean is not None:
        items.append(
            Measurement(codes.TBR, float(pet.tbr_mean), codes.UNIT_ONE, derivation=codes.MEAN)
        )
    for value, derivation in (
        (pet.suv_max, codes.MAXIMUM),
        (pet.suv_mean, codes.MEAN),
        (pet.suv_peak, codes.PEAK),
    ):
        if value is not None:
            items.append(
                Measurement(
                    codes.STANDARDIZED_UPTAKE_VALUE_BW,
                    float(value),
                    codes.UNIT_SUVBW,
                    derivation=derivation,
                )
            )
    items += [
        Measurement(
            codes.BACKGROUND_UPTAKE,
            float(pet.background_mean),
            _pet_uptake_unit(pet),
            derivation=codes.MEAN,
        ),
        Measurement(codes.TBR_THRESHOLD, float(pet.threshold_tbr), codes.UNIT_ONE),
        Measurement(codes.METABOLIC_VOLUME, float(pet.btv_ml), codes.UNIT_ML),
    ]
    if pet.registration is not None and pet.registration.nmi is not None:
        items.append(
            Measurement(codes.REGISTRATION_NMI, float(pet.registration.nmi), codes.UNIT_ONE)
        )
    return items


def _pet_texts(pet: PetReport) -> list[TextContentItem]:
    texts = [
        _text(codes.PET_UNITS, pet.units),
        _text(codes.BACKGROUND_METHOD, pet.background_method),
        _text(codes.CTV_SOURCE, pet.ctv_source),
    ]
    if pet.pet_only_reason is not None:
        texts.append(_text(codes.PET_ONLY_REASON, pet.pet_only_reason))
    texts.append(_text(codes.INTENDED_USE, RESEARCH_USE_ONLY))
    texts += [_text(codes.NOTE, note) for note in pet.notes]
    return texts


def residual_consistency(
    residual: ResidualAssessment, residual_enhancing_ml: float | None
) -> str | None:
    """A plain statement when the segmentation and the residual-tumour call disagree
    (residual enhancing tissue segmented but tumour called absent, or the reverse)."""
    if residual_enhancing_ml is None:
        return None
    rule = (
        f"probability {residual.probability:.2f} against threshold {residual.threshold:g}"
        if residual.threshold is not None
        else f"probability {residual.probability:.2f}"
    )
    if not residual.call and residual_enhancing_ml >= 0.1:
        return (
            f"The MR segmentation shows {residual_enhancing_ml:.1f} ml of residual enhancing "
            f"tissue, but the residual-tumour model calls tumour absent ({rule}). Enhancement "
            "after surgery is not always tumour; both findings are reported as they are. "
            "Review the images."
        )
    if residual.call and residual_enhancing_ml < 0.1:
        return (
            "The MR segmentation shows no residual enhancing tissue, but the residual-tumour "
            f"model calls tumour present ({rule}). Both findings are reported as they are. "
            "Review the images."
        )
    return None


def _pet_groups(
    pet: PetReport,
    key: ResultKey,
    pet_seg: pydicom.Dataset | None,
    pet_algorithm: AlgorithmInfo | None,
    residual_enhancing_ml: float | None = None,
) -> list[_Group]:
    """The PET measurement, residual tumour, CTV and prognosis groups."""
    numbers = pet_segment_numbers(pet_seg) if pet_seg is not None else {}
    seg_key = result_key(pet.pet_source, pet_algorithm) if pet_algorithm is not None else key
    algo = (
        _algorithm(
            pet_algorithm.display_name,
            pet_algorithm.version,
            [f"model_id {pet_algorithm.model_id}"],
        )
        if pet_algorithm is not None
        else _algorithm("rgcds", __version__)
    )

    def referenced(segment: PetSegment) -> ReferencedSegment | None:
        if pet_seg is None or segment not in numbers:
            return None
        return referenced_segment(pet_seg, numbers[segment], pet.pet_source)

    def tracking(segment: PetSegment, label: str) -> TrackingIdentifier:
        ident = codes.PET_SEGMENT_ID[segment]
        return TrackingIdentifier(uid=seg_key.uid(f"tracking-pet-{ident}"), identifier=label)

    def group(
        segment: PetSegment,
        label: str,
        finding: CodedConcept,
        algorithm_id: AlgorithmIdentification,
        measurements: list[Measurement] | None,
        evaluations: list[QualitativeEvaluation] | None,
    ) -> _Group:
        ref = referenced(segment)
        if ref is not None:
            return VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking(segment, label),
                referenced_segment=ref,
                finding_type=finding,
                algorithm_id=algorithm_id,
                measurements=measurements or None,
                qualitative_evaluations=evaluations or None,
            )
        return MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking(segment, label),
            finding_type=finding,
            algorithm_id=algorithm_id,
            measurements=measurements or None,
            qualitative_evaluations=evaluations or None,
        )

    evaluations = [
        QualitativeEvaluation(codes.RADIOPHARMACEUTICAL, codes.tracer(pet.tracer, pet.tracer_code))
    ]
    if pet.registration is not None and pet.registration.passed is not None:
        evaluations.append(
            QualitativeEvaluation(
                codes.REGISTRATION_PASSED, codes.YES if pet.registration.passed else codes.NO
            )
        )
    groups: list[_Group] = [
        group(
            PetSegment.BTV,
            f"PET {pet.tracer}: biological tumour volume (BTV)"[:64],
            codes.BIOLOGICAL_TUMOUR_VOLUME,
            algo,
            _pet_measurements(pet),
            evaluations,
        )
    ]
    _append(groups[-1], _pet_texts(pet))
    residual = pet.residual
    if residual is not None:
        probabilities = _measurements(
            (codes.RESIDUAL_PROBABILITY, residual.probability, codes.UNIT_ONE),
            (codes.RESIDUAL_PROBABILITY_PET, residual.probability_pet, codes.UNIT_ONE),
            (codes.RESIDUAL_PROBABILITY_RADIOMICS, residual.probability_radiomics, codes.UNIT_ONE),
        )
        models = residual.models
        residual_algo = (
            _algorithm(
                models[0].model_id if len(models) == 1 else "rgcds residual tumour assessment",
                models[0].model_version if len(models) == 1 else __version__,
                [
                    f"{m.model_id} {m.model_version} validation {m.describe_metric()}"
                    for m in models
                ],
            )
            if models
            else algo
        )
        if residual.threshold is not None:
            probabilities.append(
                Measurement(codes.DECISION_THRESHOLD, float(residual.threshold), codes.UNIT_ONE)
            )
        groups.append(
            group(
                PetSegment.RESIDUAL,
                "Residual tumour",
                codes.RESIDUAL_TUMOUR,
                residual_algo,
                probabilities,
                [
                    QualitativeEvaluation(
                        codes.RESIDUAL_TUMOUR, codes.PRESENT if residual.call else codes.ABSENT
                    )
                ],
            )
        )
        texts: list[ContentItem] = []
        if residual.threshold is not None:
            texts.append(
                _text(
                    codes.DECISION_RULE,
                    decision_rule("present", "absent", residual.threshold)
                    + (f" ({residual.decided_by} probability)" if residual.decided_by else ""),
                )
            )
        for model in residual.models:
            texts += _model_items(model)
        consistency = residual_consistency(residual, residual_enhancing_ml)
        if consistency is not None:
            texts.append(_text(codes.CONSISTENCY_NOTE, consistency))
        texts.append(_text(codes.INTENDED_USE, RESEARCH_USE_ONLY))
        _append(groups[-1], texts)
    if PetSegment.CTV in numbers:
        groups.append(
            group(
                PetSegment.CTV,
                "Clinical target volume",
                codes.CLINICAL_TARGET_VOLUME,
                algo,
                (
                    [Measurement(codes.VOLUME, float(pet.ctv_ml), codes.UNIT_ML)]
                    if pet.ctv_ml is not None else None
                ),
                None,
            )
        )
        _append(groups[-1], [_text(codes.CTV_SOURCE, pet.ctv_source)])
    for i, item in enumerate(pet.prognosis):
        measurements = [Measurement(codes.RISK_SCORE, float(item.risk_score), codes.UNIT_ONE)]
        if item.median_days is not None:
            measurements.append(
                Measurement(
                    codes.prognosis_median(item.endpoint), float(item.median_days), codes.UNIT_DAYS
                )
            )
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=key.uid("tracking-prognosis", i),
                    identifier=f"Prognosis: {item.endpoint}"[:64],
                ),
                finding_type=codes.prognosis_endpoint(item.endpoint),
                algorithm_id=_provenance(item.provenance),
                measurements=measurements,
                qualitative_evaluations=[
                    QualitativeEvaluation(codes.RISK_GROUP, codes.risk_group(item.risk_group)),
                    QualitativeEvaluation(
                        codes.MGMT_USED, codes.YES if item.mgmt_used else codes.NO
                    ),
                ],
            )
        )
        _append(
            groups[-1],
            [
                _text(codes.COVARIATES, ", ".join(item.covariates) or "(none)"),
                *_model_items(item.provenance),
                _text(codes.INTENDED_USE, RESEARCH_USE_ONLY),
            ],
        )
    return groups
