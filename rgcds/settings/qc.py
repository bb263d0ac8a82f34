"""The ``[qc]`` settings section: when an automatic segmentation is not reported as fact."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class QcSettings(BaseModel):
    """Thresholds of the segmentation quality-control gate (:mod:`rgcds.analysis.qc`).

    A segmentation that fails any check is withheld: no SEG, RANO, radiomics or predictions;
    the SR and PDF say "automatic segmentation failed quality control: <reason>".

    Attributes
    ----------
    enabled
        Run the gate (default on).
    max_outside_brain_fraction
        Largest fraction of tumour voxels more than ``outside_margin_mm`` outside the brain
        mask (a tumour at the cortex spills a voxel or two over the mask's edge; a "tumour" in
        the scalp or the orbit lies further out).
    outside_margin_mm
        How far outside the brain mask a tumour voxel must lie to count as outside.
    max_components
        Most separate tumour components (each at least ``min_component_ml``) one study may
        have. Glioblastoma is multifocal in a minority, rarely with more than three foci; the
        default leaves room for a few small false-positive satellites (the demo segmenter
        leaves up to about 8 on full-head phantoms) and refuses the scatter of a segmenter that
        does not recognise the images (83-123 components on independently generated studies).
    min_component_ml
        Components smaller than this are ignored by the count (and dropped from the labels).
    max_whole_tumour_brain_fraction
        Largest whole tumour (oedema included) as a fraction of the brain volume.
    min_whole_tumour_ml
        Smaller than this, "no tumour was found": reported, not measured.
    flip_check
        Segment the left-right mirrored images too and compare (doubles inference time).
    min_flip_dice
        Smallest whole-tumour Dice between the prediction and its mirrored twin.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_outside_brain_fraction: float = Field(default=0.05, ge=0.0, le=1.0)
    outside_margin_mm: float = Field(default=4.0, ge=0.0)
    max_components: int = Field(default=10, ge=1)
    min_component_ml: float = Field(default=1.0, ge=0.0)
    max_whole_tumour_brain_fraction: float = Field(default=0.18, gt=0.0, le=1.0)
    min_whole_tumour_ml: float = Field(default=0.5, ge=0.0)
    flip_check: bool = True
    min_flip_dice: float = Field(default=0.7, ge=0.0, le=1.0)


__all__ = ["QcSettings"]
