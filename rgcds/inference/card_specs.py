"""The building blocks of a segmentation model card (:mod:`rgcds.inference.card`).

Coded concepts and segment definitions, the input and output specifications (channels,
geometry, normalisation; softmax classes or sigmoid regions) and the weights entry, each
checked by pydantic with unknown keys refused. :class:`rgcds.inference.card.ModelCard`
assembles them; import them from there.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TaskValues(StrEnum):
    """What a model predicts."""

    SEGMENTATION = "segmentation"
    CLASSIFICATION = "classification"
    SURVIVAL = "survival"


class OutputModeValues(StrEnum):
    """How a segmentation model's output channels map to labels.

    ``softmax``: one channel per class (background included); the label of a voxel is the
    label of the class with the highest probability. ``sigmoid_regions``: one independent
    channel per (possibly overlapping) region, e.g. BraTS WT/TC/ET as nnU-Net's region
    training and MONAI's BraTS bundles export them; regions are painted in card order.
    """

    SOFTMAX = "softmax"
    SIGMOID_REGIONS = "sigmoid_regions"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodedConcept(_Strict):
    """A coded concept (code value, coding scheme designator, code meaning)."""

    code: str = Field(min_length=1)
    scheme: Literal["SCT", "DCM", "NCIt", "UMLS"] = "SCT"
    meaning: str = Field(min_length=1)


MORPHOLOGICALLY_ALTERED_STRUCTURE = CodedConcept(
    code="49755003", scheme="SCT", meaning="Morphologically Altered Structure"
)


class SegmentDefinition(_Strict):
    """A label value of a segmentation and the coded concepts that define it."""

    label: int = Field(ge=1, le=255)
    name: str = Field(min_length=1)
    category: CodedConcept = MORPHOLOGICALLY_ALTERED_STRUCTURE
    type: CodedConcept
    color_rgb: tuple[int, int, int] | None = None


class Normalisation(_Strict):
    """How each input channel is normalised before it is handed to the network.

    ``zscore`` subtracts the mean and divides by the standard deviation of the voxels in
    ``mask`` (``brain``: the brain mask; ``nonzero``: voxels where any channel is non-zero;
    ``all``). ``outside`` says whether voxels outside the mask keep their normalised value
    or are set to 0. ``clip`` bounds the normalised values.
    """

    method: Literal["zscore", "none"] = "zscore"
    mask: Literal["brain", "nonzero", "all"] = "brain"
    outside: Literal["keep", "zero"] = "keep"
    clip: tuple[float, float] | None = None


class InputSpec(_Strict):
    """What the network expects: channel order, geometry, normalisation, patch size."""

    tensor_name: str | None = None
    channels: list[str] = Field(min_length=1)
    axis_order: Literal["CZYX"] = "CZYX"
    spacing_mm: tuple[float, float, float]
    orientation: str = Field(default="LPS", pattern=r"^[LRAPSI]{3}$")
    normalisation: Normalisation = Field(default_factory=Normalisation)
    patch_size: tuple[int, int, int]
    divisible_by: int = Field(default=1, ge=1)


class ClassSpec(_Strict):
    """One softmax output channel and the label value it becomes (0 is background)."""

    index: int = Field(ge=0)
    label: int = Field(ge=0, le=255)
    name: str


class RegionSpec(_Strict):
    """One sigmoid output channel (a region) and the label painted where it is on."""

    index: int = Field(ge=0)
    name: str
    label: int = Field(ge=1, le=255)
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)


class OutputSpec(_Strict):
    """What the network returns and how it becomes labels."""

    tensor_name: str | None = None
    mode: OutputModeValues = OutputModeValues.SOFTMAX
    logits: bool = True
    classes: list[ClassSpec] = Field(default_factory=list)
    regions: list[RegionSpec] = Field(default_factory=list)
    segments: list[SegmentDefinition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> OutputSpec:
        if self.mode is OutputModeValues.SOFTMAX:
            if len(self.classes) < 2:
                raise ValueError(
                    "outputs.mode is softmax, so outputs.classes must list at least two "
                    "classes (background and one label)"
                )
            indices = sorted(c.index for c in self.classes)
            if indices != list(range(len(indices))):
                raise ValueError(
                    f"outputs.classes must number the output channels 0..{len(indices) - 1} "
                    f"once each, got indices {indices}"
                )
            labels = {c.label for c in self.classes if c.label != 0}
        else:
            if not self.regions:
                raise ValueError(
                    "outputs.mode is sigmoid_regions, so outputs.regions must list the "
                    "region channels (e.g. WT, TC, ET) and the label each one paints"
                )
            indices = sorted(r.index for r in self.regions)
            if len(set(indices)) != len(indices):
                raise ValueError(f"outputs.regions use an output channel twice: {indices}")
            labels = {r.label for r in self.regions}
        defined = {s.label for s in self.segments}
        missing = sorted(labels - defined)
        if self.segments and missing:
            raise ValueError(
                f"label value(s) {missing} are produced by the model but have no entry in "
                "outputs.segments; add a coded segment definition for each label"
            )
        return self

    @property
    def n_channels(self) -> int:
        """Number of output channels the network returns."""
        if self.mode is OutputModeValues.SOFTMAX:
            return len(self.classes)
        return max(r.index for r in self.regions) + 1


class WeightsSpec(_Strict):
    """The weights file, relative to the model folder, and its sha256."""

    file: str = Field(min_length=1)
    format: Literal["onnx"] = "onnx"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    opset: int | None = Field(default=None, ge=7)
