"""The content items every part of the SR is made of: algorithm identifications, texts,
numbers and the report's key."""

from __future__ import annotations

from collections.abc import Sequence

from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    ContentItem,
    Measurement,
    MeasurementsAndQualitativeEvaluations,
    NumContentItem,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    RelationshipTypeValues,
    TextContentItem,
    VolumetricROIMeasurementsAndQualitativeEvaluations,
)

from rgcds import __version__
from rgcds.results import codes
from rgcds.results._common import (
    ResultKey,
)
from rgcds.results.content import (
    AlgorithmInfo,
    ModelProvenance,
    ReportContent,
    SourceSeries,
)
from rgcds.results.seg import result_key

SURVIVAL_TIMEPOINTS_DAYS: tuple[tuple[int, str], ...] = (
    (183, "6 months"),
    (365, "12 months"),
    (730, "24 months"),
)
"""Time points at which the SR reports the predicted survival probability."""

_Group = (
    MeasurementsAndQualitativeEvaluations
    | VolumetricROIMeasurementsAndQualitativeEvaluations
    | PlanarROIMeasurementsAndQualitativeEvaluations
)


def report_key(
    content: ReportContent,
    source: SourceSeries | None,
    algorithm: AlgorithmInfo | None,
) -> ResultKey:
    """The UID key of a report: the SEG's key if analysed, else one per study and rgcds version."""
    if source is not None and algorithm is not None:
        return result_key(source, algorithm)
    return ResultKey(
        study_instance_uid=content.study.study_instance_uid,
        reference_series_uid=source.series_instance_uid if source is not None else "none",
        model_id=algorithm.model_id if algorithm is not None else "rgcds",
        model_version=algorithm.version if algorithm is not None else __version__,
    )


def _algorithm(name: str, version: str, parameters: Sequence[str] = ()) -> AlgorithmIdentification:
    return AlgorithmIdentification(
        name=name[:64], version=version[:64], parameters=list(parameters) or None
    )


def _provenance(p: ModelProvenance) -> AlgorithmIdentification:
    return _algorithm(p.model_id, p.model_version, [f"validation {p.describe_metric()}"])


def _text(name: CodedConcept, value: str) -> TextContentItem:
    return TextContentItem(
        name=name, value=value, relationship_type=RelationshipTypeValues.CONTAINS
    )


def _append(group: _Group, items: Sequence[ContentItem]) -> None:
    """Append TEXT (and NUM) content items to a measurement group's container."""
    container = group[0]
    for item in items:
        container.ContentSequence.append(item)


def _model_items(p: ModelProvenance) -> list[TextContentItem | NumContentItem]:
    """The validation metric (with its 95 % CI) as numbers; the model id and version are
    the group's Algorithm Name and Version (TID 4019)."""
    items: list[TextContentItem | NumContentItem] = []
    if p.metric_value == p.metric_value:  # not NaN: the model was validated
        items.append(_num(codes.validation_metric(p.metric_name), p.metric_value))
        if p.metric_ci is not None:
            items.append(_num(codes.VALIDATION_LOWER, p.metric_ci[0]))
            items.append(_num(codes.VALIDATION_UPPER, p.metric_ci[1]))
    return items


def _measurements(
    *entries: tuple[CodedConcept, float | None, CodedConcept],
) -> list[Measurement]:
    """A measurement for each ``(name, value, unit)`` whose value is known, in order."""
    return [
        Measurement(name, float(value), unit) for name, value, unit in entries if value is not None
    ]


def _num(name: CodedConcept, value: float, unit: CodedConcept | None = None) -> NumContentItem:
    return NumContentItem(
        name=name,
        value=float(value),
        unit=unit or codes.UNIT_ONE,
        relationship_type=RelationshipTypeValues.CONTAINS,
    )


def decision_rule(positive: str, negative: str, threshold: float) -> str:
    """The decision rule of a binary prediction, as the SR and the PDF state it."""
    return f"{positive} if probability >= {threshold:g}, else {negative}"
