"""The ``monai`` section of an imported MONAI bundle's card (issue 20).

``rgcds models import-monai-bundle`` reads the bundle's ``configs/inference.json`` with MONAI's
own ``ConfigParser``, instantiates its ``preprocessing``, ``inferer`` and ``postprocessing``
and writes what each transform does here; :mod:`rgcds.inference.monai_bundle` replays it with
NumPy and SciPy (the daemon has no PyTorch). A transform rgcds cannot replay is refused at
import, so a card with this section only ever names steps rgcds runs exactly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MonaiOrientation(_Strict):
    """``Orientationd(axcodes=...)``: flip and permute the array axes to ``axcodes``."""

    transform: Literal["Orientationd"] = "Orientationd"
    axcodes: str = Field(pattern=r"^[LRAPSI]{3}$")


class MonaiSpacing(_Strict):
    """``Spacingd(pixdim=..., mode=..., padding_mode=...)`` with MONAI's output grid rule."""

    transform: Literal["Spacingd"] = "Spacingd"
    pixdim: tuple[float, float, float]
    mode: Literal["bilinear", "nearest"] = "bilinear"
    padding_mode: Literal["border", "zeros"] = "border"


class MonaiNormalise(_Strict):
    """``NormalizeIntensityd(nonzero=..., channel_wise=...)``: z-score, population std."""

    transform: Literal["NormalizeIntensityd"] = "NormalizeIntensityd"
    nonzero: bool = False
    channel_wise: bool = False


class MonaiScaleRange(_Strict):
    """``ScaleIntensityRanged(a_min, a_max, b_min, b_max, clip)``."""

    transform: Literal["ScaleIntensityRanged"] = "ScaleIntensityRanged"
    a_min: float
    a_max: float
    b_min: float | None = None
    b_max: float | None = None
    clip: bool = False


MonaiStep = MonaiOrientation | MonaiSpacing | MonaiNormalise | MonaiScaleRange


class MonaiSpec(_Strict):
    """What an imported MONAI bundle's configs say, in the order its transforms run.

    Spatial fields are in MONAI's array order (the NIfTI ``i, j, k`` axes after
    ``Orientationd``), not rgcds' ``(Z, Y, X)``.
    """

    bundle_name: str = Field(min_length=1)
    bundle_version: str = Field(min_length=1)
    channel_names: list[str] = Field(min_length=1)
    output_names: list[str] = Field(min_length=1)
    preprocessing: list[MonaiStep] = Field(default_factory=list)
    roi_size: tuple[int, int, int]
    sw_batch_size: int = Field(default=1, ge=1)
    overlap: float = Field(default=0.25, ge=0.0, lt=1.0)
    blend: Literal["constant", "gaussian"] = "constant"
    sigma_scale: float = Field(default=0.125, gt=0.0)
    pad_value: float = 0.0
    postprocessing: list[Literal["sigmoid", "softmax", "invert", "argmax", "threshold"]]
    invert_nearest: bool = False
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    transforms_read: list[str] = Field(default_factory=list)
    """The ``_target_`` of every pre/post transform as the bundle names them (a record)."""
    skull_stripped: bool = True
    """Trained on skull-stripped images (BraTS): rgcds zeroes the channels outside the brain."""
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _consistent(self) -> MonaiSpec:
        post = self.postprocessing
        if sum(p in ("argmax", "threshold") for p in post) != 1:
            raise ValueError("monai.postprocessing must end the prediction with exactly one "
                             "of argmax or threshold")
        if post.count("invert") > 1 or sum(p in ("sigmoid", "softmax") for p in post) > 1:
            raise ValueError("monai.postprocessing names invert or an activation twice")
        return self


__all__ = ["MonaiNormalise", "MonaiOrientation", "MonaiScaleRange", "MonaiSpacing", "MonaiSpec",
           "MonaiStep"]
