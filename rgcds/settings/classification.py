"""The ``[classification]`` settings section: override rules and the confidence floor."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rgcds.enums import SeriesRole


def _parse_role(value: str) -> SeriesRole:
    for role in SeriesRole:
        if value.strip().lower() in (role.value.lower(), role.name.lower()):
            return role
    allowed = ", ".join(r.value for r in SeriesRole)
    raise ValueError(f"role {value!r} is not one of {allowed}")


class ClassificationRule(BaseModel):
    """A configured rule: a Series Description matching the regex gets this role.

    The regex is searched case-insensitively. ``role`` is one of T1, T1c, T2, FLAIR, DWI,
    ADC, SWI, PET, CT or IGNORED.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    series_description_regex: str
    role: str

    @field_validator("series_description_regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(
                f"series_description_regex {value!r} is not a valid regex: {exc}"
            ) from exc
        return value

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        return _parse_role(value).value

    @property
    def series_role(self) -> SeriesRole:
        """The role as a :class:`SeriesRole`."""
        return _parse_role(self.role)


class ClassificationSettings(BaseModel):
    """The ``[classification]`` section: override rules and the confidence floor.

    Attributes
    ----------
    rules
        ``[[classification.rules]]`` entries, tried in order before the built-in rules.
    min_confidence
        Series classified below this confidence are not selected for analysis.
    inversion_time_over_name
        With an inversion pulse, the inversion time (and TE) decide between T1, FLAIR and
        STIR over the name (GE "T1 FLAIR" is a T1; see :mod:`rgcds.study.classify`).
    flair_min_inversion_ms
        Shortest TI of a fluid-attenuated (T2) FLAIR; 3D FLAIR (CUBE, SPACE, VISTA) uses
        about 1600-1900 ms, 2D FLAIR 2000-2800 ms.
    t1_max_inversion_ms
        Longest TI of a T1-weighted inversion recovery (MPRAGE ~900-1100 ms, T1 FLAIR /
        T1 dark-fluid 600-1000 ms, BRAVO/IR-FSPGR prep 400-600 ms).
    post_contrast_from_order
        Use the acquisition order for T1 series without any contrast evidence: one acquired
        after a contrast-enhanced series is a T1c; with no T1c in the study, the later of
        two of the same protocol is the T1c.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[ClassificationRule] = Field(default_factory=list)
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    inversion_time_over_name: bool = True
    flair_min_inversion_ms: float = Field(default=1500.0, gt=0.0)
    t1_max_inversion_ms: float = Field(default=1300.0, gt=0.0)
    post_contrast_from_order: bool = True


__all__ = ["ClassificationRule", "ClassificationSettings"]
