"""Marker and survival predictions, with each model's provenance and decision rule."""

from __future__ import annotations

from highdicom.sr import (
    Measurement,
    MeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    TrackingIdentifier,
)

from rgcds import RESEARCH_USE_ONLY
from rgcds.results import codes
from rgcds.results._common import (
    ResultKey,
)
from rgcds.results.content import (
    ReportContent,
)
from rgcds.results.sr.items import (
    SURVIVAL_TIMEPOINTS_DAYS,
    _append,
    _Group,
    _measurements,
    _model_items,
    _provenance,
    _text,
    decision_rule,
)


def _prediction_groups(content: ReportContent, key: ResultKey) -> list[_Group]:
    """One group per marker: probability, decision threshold and the call that follows from
    them (``probability >= threshold``), model id and version, validation metric."""
    groups: list[_Group] = []
    for i, pred in enumerate(content.predictions):
        target = codes.prediction_target(pred.target)
        probability = codes.prediction_probability(pred.target, pred.positive_label)
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=key.uid("tracking-prediction", i),
                    identifier=f"Prediction: {pred.target}"[:64],
                ),
                finding_type=target,
                algorithm_id=_provenance(pred.provenance),
                measurements=[
                    Measurement(probability, float(pred.probability), codes.UNIT_ONE),
                    Measurement(codes.DECISION_THRESHOLD, float(pred.threshold), codes.UNIT_ONE),
                ],
                qualitative_evaluations=[
                    QualitativeEvaluation(
                        target, codes.prediction_label(pred.target, pred.predicted_label)
                    )
                ],
            )
        )
        _append(
            groups[-1],
            [
                _text(
                    codes.DECISION_RULE,
                    decision_rule(pred.positive_label, pred.negative_label, pred.threshold),
                ),
                *_model_items(pred.provenance),
                _text(codes.INTENDED_USE, RESEARCH_USE_ONLY),
            ],
        )
    survival = content.survival
    if survival is not None:
        measurements = _measurements(
            (codes.RELATIVE_RISK, survival.relative_risk, codes.UNIT_ONE),
            (codes.MEDIAN_OS, survival.median_os_days, codes.UNIT_DAYS),
        )
        for days, label in SURVIVAL_TIMEPOINTS_DAYS:
            value = survival.survival_at(days)
            if value is not None:
                name = codes.private(
                    f"OS-PROB-{days}D", f"Predicted overall survival probability at {label}"
                )
                measurements.append(Measurement(name, float(value), codes.UNIT_ONE))
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=key.uid("tracking-survival"), identifier="Survival prediction"
                ),
                finding_type=codes.OVERALL_SURVIVAL,
                algorithm_id=_provenance(survival.provenance),
                measurements=measurements,
                qualitative_evaluations=[
                    QualitativeEvaluation(codes.RISK_GROUP, codes.risk_group(survival.risk_group))
                ],
            )
        )
        _append(
            groups[-1],
            [*_model_items(survival.provenance), _text(codes.INTENDED_USE, RESEARCH_USE_ONLY)],
        )
    return groups
