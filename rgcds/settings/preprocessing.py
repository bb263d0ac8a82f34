"""The ``[preprocessing]`` settings section: which brain extractor runs, and how."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The brain extractors rgcds ships; ``bench/brain_extraction.py`` measures each.
BrainExtractorName = Literal["template", "deepbet"]


class PreprocessingSettings(BaseModel):
    """How a study is prepared for the models.

    Attributes
    ----------
    brain_extractor
        ``deepbet`` (default): the deepbet 1.0.2 networks (trained on real T1-weighted MR,
        run with ONNX Runtime); ``template``: affine registration of the full-head MNI
        ICBM152 2009a template and its brain mask. The extractor runs on the T1 (on the
        reference grid) when there is one, else on the reference; the mask carries to the other
        series through the kept registrations.
    deepbet_crop
        Edge (voxels) of the cube the deepbet segmenter sees the brain's bounding box at (its
        training size is 256; 192 measured the same Dice at half the time).
    threads
        ONNX Runtime intra-op threads for the extractor.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    brain_extractor: BrainExtractorName = "deepbet"
    deepbet_crop: int = Field(default=192, ge=96, le=320, multiple_of=32)
    threads: int = Field(default=2, ge=1, le=64)


__all__ = ["BrainExtractorName", "PreprocessingSettings"]
