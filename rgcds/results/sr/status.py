"""The analysis-status group and the qualitative container: what was analysed, from which
series, for what use, with which notes."""

from __future__ import annotations

from highdicom.sr import (
    CodeContentItem,
    ContainerContentItem,
    ContentSequence,
    MeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    RelationshipTypeValues,
    TextContentItem,
    TrackingIdentifier,
)

from rgcds import RESEARCH_USE_ONLY, __version__
from rgcds.results import codes
from rgcds.results._common import (
    ResultKey,
)
from rgcds.results.content import (
    ReportContent,
)
from rgcds.results.sr.items import _algorithm, _append, _text


def _status_items(content: ReportContent) -> list[CodeContentItem | TextContentItem]:
    """The analysis status, intended use, reason, series used and notes."""
    items: list[CodeContentItem | TextContentItem] = [
        CodeContentItem(
            name=codes.ANALYSIS_STATUS,
            value=codes.STATUS[content.status],
            relationship_type=RelationshipTypeValues.CONTAINS,
        ),
        _text(codes.INTENDED_USE, RESEARCH_USE_ONLY),
    ]
    if content.reason:
        items.append(_text(codes.REASON, content.reason))
    for used in content.series_used:
        label = used.series_description or "(no description)"
        items.append(
            _text(
                codes.SERIES_ROLE[used.role],
                f"{label} [SeriesInstanceUID {used.series_instance_uid}]",
            )
        )
    items += [_text(codes.NOTE, note) for note in content.notes]
    return items


def _status_group(content: ReportContent, key: ResultKey) -> MeasurementsAndQualitativeEvaluations:
    """The only group of a report of a study that was not analysed (no segments to index)."""
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=key.uid("tracking-status"), identifier="Analysis status"
        ),
        finding_type=codes.ANALYSIS,
        algorithm_id=_algorithm("rgcds", __version__),
        qualitative_evaluations=[
            QualitativeEvaluation(codes.ANALYSIS_STATUS, codes.STATUS[content.status])
        ],
    )
    _append(group, [i for i in _status_items(content)[1:] if isinstance(i, TextContentItem)])
    return group


def _qualitative_container(content: ReportContent) -> ContainerContentItem:
    """TID 1500 row 12, "Qualitative Evaluations": status, intended use, series, notes."""
    container = ContainerContentItem(
        name=codes.QUALITATIVE_EVALUATIONS,
        relationship_type=RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = ContentSequence(_status_items(content))
    return container
