"""Study-level decisions: contrast inferred from the acquisition order, then one series per
role by the documented preference (see :mod:`rgcds.study.classify`)."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from rgcds.settings.classification import ClassificationRule, ClassificationSettings
from rgcds.study import names as patterns
from rgcds.study.classify import NO_CONTRAST_EVIDENCE, classify_study, contrast_agent
from rgcds.study.enums import SeriesRole
from rgcds.study.index import SeriesInfo, StudyIndex
from rgcds.study.records import SequenceSelection, SeriesClassification

logger = structlog.get_logger(__name__)


def _acquired(series: SeriesInfo) -> tuple[float, float] | None:
    """A sortable acquisition order (series time, then number), or ``None`` if unknown."""
    tm = series.series_time or series.acquisition_time
    if not tm and series.series_number is None:
        return None
    return (_time_seconds(tm) if tm else -1.0, float(series.series_number or 0))


def _before(a: SeriesInfo, b: SeriesInfo) -> bool:
    """Whether ``a`` was acquired before ``b`` (times if both have them, else numbers)."""
    ta, tb = a.series_time or a.acquisition_time, b.series_time or b.acquisition_time
    if ta and tb and _time_seconds(ta) != _time_seconds(tb):
        return _time_seconds(ta) < _time_seconds(tb)
    if a.series_number is not None and b.series_number is not None:
        return a.series_number < b.series_number
    return False


def _protocol_key(series: SeriesInfo) -> str:
    name = patterns.normalise(series.series_description)
    return patterns.WITH_AND_WITHOUT.sub(" ", name).strip() or (
        f"{series.scanning_sequence} {series.repetition_time} {series.echo_time} "
        f"{series.inversion_time}"
    )


def _label(series: SeriesInfo) -> str:
    return f"series {series.series_number} {series.series_description!r}"


def _post_contrast_from_order(
    series: Sequence[SeriesInfo], classifications: Sequence[SeriesClassification]
) -> tuple[list[SeriesClassification], list[str]]:
    """Re-label unmarked T1 series that the acquisition order shows to be post-contrast."""
    out = list(classifications)
    notes: list[str] = []
    unmarked = [
        k
        for k, c in enumerate(out)
        if c.role is SeriesRole.T1 and NO_CONTRAST_EVIDENCE in c.reasons
    ]
    # Contrast-enhanced: a T1c, or any MR series given an agent (a DSC perfusion is the
    # injection itself).
    enhanced = [
        k
        for k, c in enumerate(out)
        if c.role is SeriesRole.T1C or (series[k].modality == "MR" and contrast_agent(series[k]))
    ]

    def relabel(k: int, why: str, penalty: float) -> None:
        c = out[k]
        out[k] = SeriesClassification(
            c.series_instance_uid,
            SeriesRole.T1C,
            round(max(c.confidence - penalty, 0.0), 2),
            (*c.reasons, why),
            c.tracer,
        )

    if enhanced:
        first = min((series[k] for k in enhanced), key=lambda s: _acquired(s) or (1e9, 1e9))
        for k in unmarked:
            if _before(first, series[k]):
                why = (
                    f"acquired after the contrast-enhanced {_label(first)}, so it is "
                    "post-contrast (the agent stays in the tissue)"
                )
                relabel(k, why, 0.0)
                notes.append(
                    f"{_label(series[k])} has no contrast marker but was acquired after the "
                    f"contrast-enhanced {_label(first)}; it was taken as post-contrast (T1c)."
                )
        if any(o.role is SeriesRole.T1C for o in out):
            return out, notes
        unmarked = [k for k in unmarked if out[k].role is SeriesRole.T1]

    groups: dict[str, list[int]] = {}
    for k in unmarked:
        groups.setdefault(_protocol_key(series[k]), []).append(k)
    for members in groups.values():
        if len(members) < 2:
            continue
        ordered = sorted(members, key=lambda k: _acquired(series[k]) or (1e9, 1e9))
        first_series = series[ordered[0]]
        for k in ordered[1:]:
            between = any(
                _before(first_series, other) and _before(other, series[k])
                for other in series
                if other is not first_series and other is not series[k]
            )
            # An immediate repeat is a motion repeat; the contrast goes in between series.
            if not _before(first_series, series[k]) or not between:
                continue
            why = (
                f"a later repeat of {_label(first_series)} with no contrast marker in a "
                "study without any contrast-enhanced T1: taken as the post-contrast acquisition"
            )
            relabel(k, why, 0.1)
            notes.append(
                f"The study has no T1 series marked as contrast-enhanced; {_label(series[k])} "
                f"repeats {_label(first_series)} later and was taken as the post-contrast T1 "
                "(T1c). Mark post-contrast series (e.g. '+C') or add a "
                "[[classification.rules]] entry if this is wrong."
            )
    return out, notes


# --- selection ----------------------------------------------------------------------------

_VOLUME_ROLES = frozenset(SeriesRole) - {SeriesRole.IGNORED}
_MIN_FRAMES = 3


def _preference(series: SeriesInfo, c: SeriesClassification) -> tuple[float, ...]:
    thickness = series.slice_thickness if series.slice_thickness is not None else 99.0
    return (
        1.0 if c.confidence >= 0.8 else 0.0,
        1.0 if series.is_3d else 0.0,
        -round(thickness, 2),
        float(series.n_frames),
        float(_time_seconds(series.series_time or series.acquisition_time)),
        float(series.series_number or 0),
    )


def _time_seconds(tm: str) -> float:
    digits = tm.strip().split("T")[-1]
    try:
        hh, mm, ss = int(digits[0:2] or 0), int(digits[2:4] or 0), float(digits[4:] or 0)
    except ValueError:
        return 0.0
    return hh * 3600 + mm * 60 + ss


def select_sequences(
    index: StudyIndex,
    settings: ClassificationSettings | None = None,
    overrides: Sequence[ClassificationRule] | None = None,
) -> SequenceSelection:
    """Classify every series and choose one per role.

    Parameters
    ----------
    index
        The study index.
    settings
        The ``[classification]`` settings (rules, confidence floor, physics thresholds,
        acquisition-order contrast inference); defaults apply if ``None``.
    overrides
        Extra rules tried before ``settings.rules``.

    Returns
    -------
    SequenceSelection
        Chosen series per role; roles with several candidates are decided by the documented
        preference (confidence band, 3D over 2D, thinner slices, more slices, later
        acquisition) and reported in ``ambiguities``, as are T1 series taken as
        post-contrast from the acquisition order.
    """
    settings = settings or ClassificationSettings()
    rules = [*(overrides or ()), *settings.rules]
    classifications = list(classify_study(index, rules, settings))
    ambiguities: list[str] = []
    if settings.post_contrast_from_order:
        classifications, order_notes = _post_contrast_from_order(index.series, classifications)
        ambiguities += order_notes
    by_role: dict[SeriesRole, list[tuple[SeriesInfo, SeriesClassification]]] = {}
    for series, c in zip(index.series, classifications, strict=True):
        if c.role not in _VOLUME_ROLES or c.confidence < settings.min_confidence:
            continue
        if series.n_frames < _MIN_FRAMES:
            continue
        by_role.setdefault(c.role, []).append((series, c))
    chosen: dict[SeriesRole, SeriesInfo] = {}
    for role, candidates in by_role.items():
        ranked = sorted(candidates, key=lambda sc: _preference(*sc), reverse=True)
        chosen[role] = ranked[0][0]
        if len(ranked) > 1:
            others = ", ".join(f"{s.series_number} {s.series_description!r}" for s, _ in ranked[1:])
            best = ranked[0][0]
            ambiguities.append(
                f"{len(ranked)} series qualify as {role.value}; chose series "
                f"{best.series_number} {best.series_description!r} "
                f"({'3D' if best.is_3d else '2D'}, {best.slice_thickness} mm slices) over "
                f"{others} by the preference: confidence, 3D over 2D, thinner slices, more "
                "slices, later acquisition."
            )
    logger.info(
        "sequences selected",
        roles=sorted(r.value for r in chosen),
        n_ambiguities=len(ambiguities),
    )
    return SequenceSelection(chosen, tuple(classifications), tuple(ambiguities))


__all__ = ["select_sequences"]
