"""The ``[pet]`` settings section (PET analysis: BTV thresholds, background VOI, CTV)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rgcds.enums import PetTracer


class PetSettings(BaseModel):
    """PET analysis settings (to be wired as ``Settings.pet``, env ``RGCDS_PET__*``).

    Attributes
    ----------
    tbr_thresholds
        BTV threshold (tumour-to-background ratio) per tracer. MET 1.3: Law et al. 2019
        guideline (citing Kracht et al. 2004, biopsy-validated [11C]MET threshold 1.3);
        FET 1.6: Pauleit et al. 2005 (biopsy-validated), as recommended by Law et al. 2019;
        FDOPA 1.7: project default; FDOPA ratios to normal brain of about 1.7-2.0 are
        reported in the literature — verify against local validation before clinical use.
        FDG is never thresholded (high normal grey-matter uptake).
    background_method
        Only ``contralateral_mirror`` (see :mod:`rgcds.analysis.pet`).
    background_radius_mm, background_exclusion_mm, background_min_ml
        Geometry of the background VOI.
    ctv_margin_mm
        Margin of the CTV (ESTRO-EANO 2023: 15 mm) and of the search region when only a
        tumour mask is given.
    pairing_window_days
        Largest interval between the PET and the MR study to pair them (used by study
        pairing, not here).
    ctv_roi_patterns
        Case-insensitive regexes, in priority order, that pick a CTV among RT Structure Set
        ROI names.
    nmi_threshold
        Registration passes when the normalised mutual information (1 = independent, 2 =
        identical) of MR and PET on the brain + 15 mm is at least this (see
        :func:`rgcds.analysis.pet.registration_quality`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tbr_thresholds: dict[str, float] = Field(
        default_factory=lambda: {"MET": 1.3, "FET": 1.6, "FDOPA": 1.7}
    )
    background_method: Literal["contralateral_mirror"] = "contralateral_mirror"
    background_radius_mm: float = Field(default=25.0, gt=0)
    background_exclusion_mm: float = Field(default=20.0, ge=0)
    background_min_ml: float = Field(default=5.0, gt=0)
    ctv_margin_mm: float = Field(default=15.0, ge=0)
    pairing_window_days: int = Field(default=14, ge=0)
    ctv_roi_patterns: tuple[str, ...] = (r"^ctv$", r"^ctv[\s_-]*1?$", r"\bctv\b", r"ctv")
    nmi_threshold: float = Field(default=1.05, gt=1.0, lt=2.0)

    @field_validator("tbr_thresholds")
    @classmethod
    def _known_tracers(cls, value: dict[str, float]) -> dict[str, float]:
        allowed = {PetTracer.MET.value, PetTracer.FET.value, PetTracer.FDOPA.value}
        for name, threshold in value.items():
            if name not in allowed:
                raise ValueError(
                    f"tbr_thresholds has tracer {name!r}; use MET, FET or FDOPA (FDG is not "
                    "thresholded)."
                )
            if not threshold > 1.0:
                raise ValueError(f"The TBR threshold of {name} must be above 1, got {threshold}.")
        return value

    @field_validator("ctv_roi_patterns")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"ctv_roi_patterns: {pattern!r} is not a regex: {exc}") from exc
        return value


__all__ = ["PetSettings"]
