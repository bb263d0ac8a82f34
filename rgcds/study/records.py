"""What classification decides: a role per series with its confidence and reasons, and the
study's selection of one series per role."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rgcds.study.enums import PetTracer, SeriesRole
from rgcds.study.index import SeriesInfo


@dataclass(frozen=True, slots=True)
class SeriesClassification:
    """The role given to one series, how sure we are (0-1), and why."""

    series_instance_uid: str
    role: SeriesRole
    confidence: float
    reasons: tuple[str, ...]
    tracer: PetTracer | None = None


@dataclass(frozen=True)
class SequenceSelection:
    """The series chosen for each role, and the choices that needed a tie-break.

    Attributes
    ----------
    chosen
        Role -> the selected series.
    classifications
        Every series' classification, in index order.
    ambiguities
        One full sentence per role that had several candidates, naming the rule that chose.
    """

    chosen: Mapping[SeriesRole, SeriesInfo]
    classifications: tuple[SeriesClassification, ...]
    ambiguities: tuple[str, ...] = field(default=())

    def series_for(self, role: SeriesRole) -> SeriesInfo | None:
        """Return the series chosen for ``role``, or ``None``."""
        return self.chosen.get(role)

    def classification_of(self, series_instance_uid: str) -> SeriesClassification:
        """Return the classification of one series.

        Raises
        ------
        KeyError
            If the series was not classified.
        """
        for c in self.classifications:
            if c.series_instance_uid == series_instance_uid:
                return c
        raise KeyError(series_instance_uid)


__all__ = ["SequenceSelection", "SeriesClassification"]
