"""Model cards: the schema of ``model.yaml`` and how a card is read and checked.

A model folder holds ``model.yaml`` (its card) and its weights. The card says what the
model is for, what it expects (channels, spacing, orientation, normalisation, patch size),
what it returns (softmax classes or sigmoid regions, mapped to label values and coded
segment definitions), what it was trained and validated on, and the sha256 of its weights.
Reading a card checks the schema (unknown keys are errors) and, on request, the checksum;
every problem is reported as one full sentence that names the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from rgcds.inference.card_specs import (
    MORPHOLOGICALLY_ALTERED_STRUCTURE,
    ClassSpec,
    CodedConcept,
    InputSpec,
    Normalisation,
    OutputModeValues,
    OutputSpec,
    RegionSpec,
    SegmentDefinition,
    TaskValues,
    WeightsSpec,
    _Strict,
)
from rgcds.inference.errors import ChecksumMismatchError, ModelCardError
from rgcds.inference.monai_card import MonaiSpec

CARD_FILENAME = "model.yaml"

_CHUNK = 1 << 20


NnunetNormalisation = Literal[
    "ZScoreNormalization", "CTNormalization", "NoNormalization", "RescaleTo01Normalization"
]
"""The nnU-Net v2 normalisation schemes rgcds reproduces (``RGBTo01Normalization`` is refused)."""


class NnunetIntensity(_Strict):
    """A channel's foreground intensity statistics from nnU-Net's fingerprint (CT schemes)."""

    mean: float
    std: float
    percentile_00_5: float
    percentile_99_5: float


class NnunetResampling(_Strict):
    """nnU-Net's resampling of images or logits: order in plane, along z, and the z rule."""

    order: int = Field(ge=0, le=5)
    order_z: int = Field(default=0, ge=0, le=5)
    force_separate_z: bool | None = None


class NnunetFold(_Strict):
    """One fold of an imported nnU-Net model and its exported ONNX weights."""

    fold: int | str
    weights: WeightsSpec
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class NnunetSpec(_Strict):
    """What an imported nnU-Net v2 model's plans, dataset.json and checkpoints say.

    rgcds runs it with :mod:`rgcds.inference.nnunet`, which reproduces ``nnUNetPredictor``:
    the spatial fields are in nnU-Net's (transposed) axis order of the ``(Z, Y, X)`` array.
    """

    dataset_name: str = Field(min_length=1)
    trainer: str = Field(min_length=1)
    plans_identifier: str = Field(min_length=1)
    configuration: str = Field(min_length=1)
    channel_names: list[str] = Field(min_length=1)
    labels: dict[str, int | list[int]] = Field(min_length=1)
    transpose_forward: tuple[int, int, int]
    transpose_backward: tuple[int, int, int]
    spacing: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    normalization_schemes: list[NnunetNormalisation] = Field(min_length=1)
    use_mask_for_norm: list[bool] = Field(min_length=1)
    intensity_properties: list[NnunetIntensity] = Field(default_factory=list)
    resampling_data: NnunetResampling
    resampling_probabilities: NnunetResampling
    anisotropy_threshold: float = Field(default=3.0, gt=1.0)
    tile_step_size: float = Field(default=0.5, gt=0.0, le=1.0)
    mirror_axes: list[int] = Field(default_factory=list)
    folds: list[NnunetFold] = Field(min_length=1)
    skull_stripped: bool = True
    """Trained on skull-stripped images (BraTS): rgcds zeroes the channels outside the brain."""

    @model_validator(mode="after")
    def _consistent(self) -> NnunetSpec:
        n = len(self.channel_names)
        if len(self.normalization_schemes) != n or len(self.use_mask_for_norm) != n:
            raise ValueError(
                f"nnunet.normalization_schemes and nnunet.use_mask_for_norm need one entry per "
                f"channel ({n})"
            )
        if "CTNormalization" in self.normalization_schemes and len(self.intensity_properties) != n:
            raise ValueError(
                "nnunet.intensity_properties needs one entry per channel for CTNormalization"
            )
        for name in ("transpose_forward", "transpose_backward"):
            if sorted(getattr(self, name)) != [0, 1, 2]:
                raise ValueError(f"nnunet.{name} must be a permutation of 0, 1, 2")
        if any(a not in (0, 1, 2) for a in self.mirror_axes):
            raise ValueError("nnunet.mirror_axes must be spatial axes 0, 1 or 2")
        return self


class ValidationSpec(_Strict):
    """How the model was validated: on what, how many cases, with which results."""

    dataset: str
    n_cases: int = Field(ge=1)
    metrics: dict[str, float] = Field(min_length=1)
    notes: str | None = None


class ModelCard(_Strict):
    """A model's card (``model.yaml``), checked against the schema.

    Attributes
    ----------
    path
        The folder the card was read from (set by :func:`load_card`, not written in YAML).
    validated
        ``True`` when the card reports validation metrics. Callers refuse an unvalidated
        model unless they run in research mode.
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = Field(min_length=1)
    name: str = Field(min_length=1)
    task: TaskValues
    description: str = ""
    research_use_only: bool
    intended_use: str = Field(min_length=1)
    training_data: str = Field(min_length=1)
    authors: list[str] = Field(default_factory=list)
    license: str | None = None
    weights: WeightsSpec
    inputs: InputSpec
    outputs: OutputSpec
    validation: ValidationSpec | None = None
    nnunet: NnunetSpec | None = None
    monai: MonaiSpec | None = None
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _task_outputs(self) -> ModelCard:
        if self.nnunet is not None:
            if len(self.nnunet.channel_names) != len(self.inputs.channels):
                raise ValueError(
                    f"inputs.channels maps {len(self.inputs.channels)} study sequence(s) but the "
                    f"nnU-Net model takes {len(self.nnunet.channel_names)} channel(s) "
                    f"({', '.join(self.nnunet.channel_names)}); give one sequence per channel"
                )
            if self.nnunet.folds[0].weights != self.weights:
                raise ValueError("weights must be the first of nnunet.folds")
        if self.monai is not None:
            if self.nnunet is not None:
                raise ValueError("a card is an nnU-Net import or a MONAI bundle import, not both")
            if len(self.monai.channel_names) != len(self.inputs.channels):
                raise ValueError(
                    f"inputs.channels maps {len(self.inputs.channels)} study sequence(s) but the "
                    f"MONAI bundle takes {len(self.monai.channel_names)} channel(s); give one "
                    "sequence per channel"
                )
        if self.task is TaskValues.SEGMENTATION and not self.outputs.segments:
            raise ValueError(
                "a segmentation card must define outputs.segments (label value, name and "
                "coded category and type for each label)"
            )
        return self

    @property
    def validated(self) -> bool:
        """Whether the card reports validation metrics."""
        return self.validation is not None and bool(self.validation.metrics)

    @property
    def weights_path(self) -> Path:
        """Absolute path of the weights file."""
        base = self.path if self.path is not None else Path(".")
        return base / self.weights.file

    @property
    def label_values(self) -> dict[int, SegmentDefinition]:
        """Segment definitions by label value."""
        return {s.label: s for s in self.outputs.segments}


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks.

    Parameters
    ----------
    path
        The file to hash.

    Returns
    -------
    str
        64 lower-case hex digits.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _explain(error: ValidationError, source: Path) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "the card"
        kind = item["type"]
        if kind == "extra_forbidden":
            parts.append(f"'{where}' is not a known key (check its spelling or remove it)")
        elif kind == "missing":
            parts.append(f"'{where}' is required but missing")
        else:
            msg = str(item["msg"]).removeprefix("Value error, ")
            parts.append(f"'{where}' is invalid: {msg}")
    return (
        f"The model card {source} does not follow the schema: " + "; ".join(parts)
        + ". Fix the card and run 'rgcds models verify' again."
    )


def parse_card(data: Any, source: Path, folder: Path | None = None) -> ModelCard:
    """Check a card's parsed YAML against the schema.

    Parameters
    ----------
    data
        The mapping read from ``model.yaml``.
    source
        Where the data came from, for messages.
    folder
        The model folder, stored as :attr:`ModelCard.path`.

    Returns
    -------
    ModelCard
        The checked card.

    Raises
    ------
    ModelCardError
        When the data does not follow the schema; the message lists every problem.
    """
    if not isinstance(data, dict):
        raise ModelCardError(
            f"The model card {source} must be a YAML mapping of keys to values, "
            f"but it holds a {type(data).__name__}."
        )
    if "path" in data:
        raise ModelCardError(
            f"The model card {source} must not set 'path'; the folder it lies in is its path."
        )
    try:
        card = ModelCard.model_validate(data)
    except ValidationError as exc:
        raise ModelCardError(_explain(exc, source)) from None
    return card.model_copy(update={"path": folder})


def load_card(folder: Path, check_checksum: bool = True) -> ModelCard:
    """Read and check the card of the model in ``folder``.

    Parameters
    ----------
    folder
        A model folder holding ``model.yaml`` and the weights it names.
    check_checksum
        Also hash the weights and compare with the card (the default).

    Returns
    -------
    ModelCard
        The checked card, with :attr:`ModelCard.path` set to ``folder``.

    Raises
    ------
    ModelCardError
        The card is missing, not YAML, or does not follow the schema, or the weights file
        it names does not exist.
    ChecksumMismatchError
        The weights' sha256 differs from the card's.
    """
    folder = Path(folder).resolve()
    source = folder / CARD_FILENAME
    if not source.is_file():
        raise ModelCardError(
            f"The model folder {folder} has no {CARD_FILENAME}; every model needs a card "
            "that describes it and the sha256 of its weights."
        )
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelCardError(f"The model card {source} cannot be read as YAML: {exc}.") from exc
    card = parse_card(data, source, folder)
    weights = card.weights_path
    if not weights.is_file():
        raise ModelCardError(
            f"The model card {source} names the weights file '{card.weights.file}', "
            f"which does not exist in {folder}; copy the weights there or fix 'weights.file'."
        )
    if check_checksum:
        verify_checksum(card)
    return card


def verify_checksum(card: ModelCard) -> None:
    """Compare the sha256 of the card's weights with the one it declares.

    Raises
    ------
    ChecksumMismatchError
        When they differ, naming both values.
    """
    specs = [card.weights]
    if card.nnunet is not None:
        specs += [f.weights for f in card.nnunet.folds[1:]]
    base = card.path if card.path is not None else Path(".")
    for spec in specs:
        path = base / spec.file
        if not path.is_file():
            raise ChecksumMismatchError(
                f"The weights {path} of model '{card.id}' are missing; restore the file the "
                "card names."
            )
        actual = sha256_file(path)
        if actual != spec.sha256:
            raise ChecksumMismatchError(
                f"The weights {path} of model '{card.id}' have sha256 {actual}, "
                f"but its card declares {spec.sha256}; the file is corrupt or was "
                "replaced. Restore the original weights, or, if the new ones are intended, "
                "validate them and update the card's sha256."
            )


__all__ = [
    "CARD_FILENAME",
    "MORPHOLOGICALLY_ALTERED_STRUCTURE",
    "ClassSpec",
    "CodedConcept",
    "InputSpec",
    "ModelCard",
    "NnunetFold",
    "NnunetIntensity",
    "NnunetResampling",
    "NnunetSpec",
    "Normalisation",
    "OutputModeValues",
    "OutputSpec",
    "RegionSpec",
    "SegmentDefinition",
    "TaskValues",
    "ValidationSpec",
    "WeightsSpec",
    "load_card",
    "parse_card",
    "sha256_file",
    "verify_checksum",
]
