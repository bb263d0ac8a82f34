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
    btv_min_component_ml, btv_max_distance_mm, btv_margin_mm, btv_margin_fraction,
    btv_grey_matter_fraction, btv_confounder_tbr_factor, btv_core_reach_mm, btv_brain_edge_mm
        The BTV's plausibility rules (:mod:`rgcds.analysis.btv`, justified in
        ``docs/pet.md``): a supra-threshold component is left out when it is smaller than
        ``btv_min_component_ml``, when its nearest voxel is more than
        ``btv_max_distance_mm`` from the cavity or residual enhancement, or, when its TBRmax
        is below threshold x ``btv_confounder_tbr_factor``, when ``btv_margin_fraction`` of
        it lies within ``btv_margin_mm`` of the cavity or ``btv_grey_matter_fraction`` of it
        in the grey-matter prior; a component with a hot core loses its mild grey-matter or
        margin voxels farther than ``btv_core_reach_mm`` from that core; mild uptake within
        ``btv_brain_edge_mm`` of the brain mask's surface (marrow, dura, scalp where the mask
        leaks) is left out too.
    ctv_max_ml, ctv_max_brain_fraction, ctv_excess_margin_mm
        CTV sanity: a CTV (derived or from an RT Structure Set) larger than ``ctv_max_ml``
        or than ``ctv_max_brain_fraction`` of the brain is refused, and so is a derived CTV
        larger than a ball of the GTV's volume grown by the margin + ``ctv_excess_margin_mm``
        (the bound of a compact GTV; a scattered GTV, the sign of a failed segmentation,
        exceeds it).
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
    btv_min_component_ml: float = Field(default=0.5, ge=0)
    btv_max_distance_mm: float = Field(default=6.0, ge=0)
    btv_margin_mm: float = Field(default=5.0, ge=0)
    btv_margin_fraction: float = Field(default=0.9, gt=0, le=1)
    btv_grey_matter_fraction: float = Field(default=0.6, gt=0, le=1)
    btv_confounder_tbr_factor: float = Field(default=1.25, ge=1.0)
    btv_core_reach_mm: float = Field(default=4.0, ge=0)
    btv_brain_edge_mm: float = Field(default=4.0, ge=0)
    ctv_max_ml: float = Field(default=600.0, gt=0)
    ctv_max_brain_fraction: float = Field(default=0.5, gt=0, le=1)
    ctv_excess_margin_mm: float = Field(default=5.0, ge=0)

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
