"""Model cards of the prediction models (radiogenomic classifiers and survival models).

A model folder ``models/<id>/`` holds ``model.yaml`` and one weights file. The card follows the
registry's ``model.yaml`` style and adds what a prediction model needs::

    id: mgmt-phantom-demo
    version: 0.1.0
    task: classification            # or survival
    target: mgmt_methylated
    intended_use: ...
    training_data: ...
    synthetic_training_data: true
    research_use_only: true
    validation: {metric: AUC, value: 0.71, ci95: [0.62, 0.80], method: ..., n: 160}
    weights: {file: model.skops, sha256: <64 hex>, format: skops}   # or json, onnx
    features: [age_years, sex_male, TC_T1c_firstorder_Mean, ...]
    requires:                       # optional; derived from the features when absent
      sequences: [T1, T1c, T2, FLAIR]
      regions: [TC, ET, ED]
      clinical: [age_years, sex_male]
    family: radiogenomics           # optional; residual, prognosis (rgcds.analysis.residual)

``requires`` states the model's inputs in a radiologist's terms: the series the study must
contain (:data:`SEQUENCE_NAMES`), the tumour sub-regions its radiomics come from
(:data:`REGION_NAMES`) and the clinical variables read from the DICOM header
(:data:`CLINICAL_NAMES`). A card without it (older cards) gets it derived from its feature
names, ``{region}_{sequence}_{feature}`` (``sequence`` ``mask`` for shape features, which need
the segmentation only) plus ``age_years`` and ``sex_male``: see :func:`inputs_from_features`.
A declared block must cover every feature's sequence, region and clinical variable.

``family`` groups cards by the code that runs them: ``radiogenomics`` (the default) are run by
:func:`rgcds.analysis.predict.predict_all` on pre-operative radiomics; ``residual`` (post-op
residual-tumour detection, ONNX or skops) and ``prognosis`` (post-op Cox models) are run by
:mod:`rgcds.analysis.residual` and :mod:`rgcds.analysis.prognosis`, and
:func:`discover_cards` leaves them out unless asked for them.

A card without ``validation`` is read, but :func:`require_validated` refuses it unless research
mode is on. Loading always checks the weights' sha256.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml

from rgcds.inference.errors import ChecksumMismatchError, ModelCardError, ModelNotFoundError
from rgcds.inference.prediction_inputs import (
    CLINICAL_NAMES,
    MASK_SEQUENCE,
    REGION_NAMES,
    SEQUENCE_NAMES,
    ModelInputs,
    _requires,
    inputs_from_features,
    parse_feature_name,
)

logger = structlog.get_logger(__name__)

CARD_FILE = "model.yaml"
TASKS = ("classification", "survival")
WEIGHT_FORMATS = ("skops", "json", "onnx")
FAMILIES = ("radiogenomics", "residual", "prognosis")
DEFAULT_FAMILY = "radiogenomics"
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class UnvalidatedModelError(ModelCardError):
    """A model card has no validation metrics and research mode is off."""


@dataclass(frozen=True)
class ValidationMetric:
    """How well a model did in validation.

    Attributes
    ----------
    metric
        ``AUC`` or ``C-index`` (or another named metric).
    value
        Point estimate.
    ci95
        95 % confidence interval ``(low, high)``.
    method
        How it was estimated (e.g. nested cross-validation, bootstrap).
    n
        Number of cases.
    """

    metric: str
    value: float
    ci95: tuple[float, float]
    method: str = ""
    n: int | None = None


@dataclass(frozen=True)
class ModelCard:
    """A prediction model's card (see the module docstring for the YAML form).

    Attributes
    ----------
    id, version, task, target
        Identification; ``task`` is ``classification`` or ``survival``.
    intended_use, training_data
        Free text shown with every result.
    synthetic_training_data
        True for demo models trained on phantoms.
    research_use_only
        Always true for rgcds models.
    validation
        ``None`` when the card declares no validation.
    weights_file, sha256, weights_format
        The weights and their checksum; format ``skops``, ``json`` or ``onnx``.
    features
        Model inputs in order.
    folder
        The model folder.
    extra
        Other card keys (kept for reports).
    family
        Which code runs the model (see the module docstring); ``radiogenomics`` by default.
    requires
        The card's ``requires`` block; ``None`` when it has none (see :attr:`inputs`).
    """

    id: str
    version: str
    task: str
    target: str
    intended_use: str
    training_data: str
    synthetic_training_data: bool
    research_use_only: bool
    validation: ValidationMetric | None
    weights_file: str
    sha256: str
    weights_format: str
    features: tuple[str, ...]
    folder: Path
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    family: str = DEFAULT_FAMILY
    requires: ModelInputs | None = None

    @property
    def weights_path(self) -> Path:
        """Absolute path of the weights file."""
        return self.folder / self.weights_file

    @property
    def inputs(self) -> ModelInputs:
        """The declared inputs, or those derived from the feature names (older cards)."""
        return self.requires if self.requires is not None else inputs_from_features(self.features)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _need(data: Mapping[str, Any], key: str, where: Path) -> Any:
    if key not in data or data[key] in (None, ""):
        raise ModelCardError(f"The model card {where} lacks '{key}'; add it and retry.")
    return data[key]


def _validation(data: Any, where: Path) -> ValidationMetric | None:
    if data in (None, {}, []):
        return None
    if not isinstance(data, Mapping):
        raise ModelCardError(f"The model card {where}: 'validation' must be a mapping.")
    try:
        ci = data.get("ci95")
        if ci is None or len(ci) != 2:
            raise ModelCardError(
                f"The model card {where}: 'validation.ci95' must be a [low, high] pair."
            )
        low, high = float(ci[0]), float(ci[1])
        value = float(data["value"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelCardError(
            f"The model card {where} has an invalid 'validation' block ({exc}); it needs "
            "metric, value and ci95: [low, high]."
        ) from None
    if not low <= value <= high:
        raise ModelCardError(
            f"The model card {where}: validation value {value} is outside its ci95 [{low}, {high}]."
        )
    n = data.get("n")
    return ValidationMetric(
        metric=str(_need(data, "metric", where)),
        value=value,
        ci95=(low, high),
        method=str(data.get("method", "")),
        n=int(n) if n is not None else None,
    )


def read_card(folder: Path) -> ModelCard:
    """Read and check ``folder/model.yaml`` (not the weights' checksum: see :func:`verify_weights`).

    Raises
    ------
    ModelNotFoundError
        If the folder has no card.
    ModelCardError
        If the card is not valid YAML or misses or mistypes a required key.
    """
    path = folder / CARD_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"No model card at {path}; a model folder needs a {CARD_FILE}.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ModelCardError(f"The model card {path} is not valid YAML: {exc}.") from None
    if not isinstance(data, dict):
        raise ModelCardError(f"The model card {path} must be a YAML mapping.")
    model_id = str(_need(data, "id", path))
    if not _ID.match(model_id):
        raise ModelCardError(f"The model card {path} has an invalid id {model_id!r}.")
    task = str(_need(data, "task", path))
    if task not in TASKS:
        raise ModelCardError(f"The model card {path} has task {task!r}; expected one of {TASKS}.")
    weights = _need(data, "weights", path)
    if not isinstance(weights, Mapping):
        raise ModelCardError(f"The model card {path}: 'weights' must map file, sha256 and format.")
    file_name = str(_need(weights, "file", path))
    if Path(file_name).name != file_name:
        raise ModelCardError(f"The model card {path}: weights file must be a plain file name.")
    sha = str(_need(weights, "sha256", path)).lower()
    if not _SHA.match(sha):
        raise ModelCardError(f"The model card {path}: weights.sha256 must be 64 hex digits.")
    fmt = str(weights.get("format", Path(file_name).suffix.lstrip(".")))
    if fmt not in WEIGHT_FORMATS:
        raise ModelCardError(
            f"The model card {path}: weights format {fmt!r} is not one of {WEIGHT_FORMATS}."
        )
    if data.get("research_use_only") is not True:
        raise ModelCardError(
            f"The model card {path} must declare research_use_only: true; rgcds runs only "
            "research-use models."
        )
    family = str(data.get("family") or DEFAULT_FAMILY)
    if family not in FAMILIES:
        raise ModelCardError(
            f"The model card {path} has family {family!r}; expected one of {FAMILIES}."
        )
    features = data.get("features") or []
    if not isinstance(features, list) or not features:
        raise ModelCardError(f"The model card {path} must list its input 'features'.")
    known = {
        "id",
        "version",
        "task",
        "target",
        "intended_use",
        "training_data",
        "synthetic_training_data",
        "research_use_only",
        "validation",
        "weights",
        "features",
        "family",
        "requires",
    }
    feature_names = tuple(str(f) for f in features)
    return ModelCard(
        id=model_id,
        version=str(_need(data, "version", path)),
        task=task,
        target=str(_need(data, "target", path)),
        intended_use=str(_need(data, "intended_use", path)),
        training_data=str(_need(data, "training_data", path)),
        synthetic_training_data=bool(data.get("synthetic_training_data", False)),
        research_use_only=True,
        validation=_validation(data.get("validation"), path),
        weights_file=file_name,
        sha256=sha,
        weights_format=fmt,
        features=feature_names,
        folder=folder,
        extra={k: v for k, v in data.items() if k not in known},
        family=family,
        requires=_requires(data.get("requires"), feature_names, path),
    )


def verify_weights(card: ModelCard) -> None:
    """Check that the weights file exists and has the card's sha256.

    Raises
    ------
    ModelCardError
        If the weights file is missing.
    ChecksumMismatchError
        If its sha256 differs from the card's.
    """
    path = card.weights_path
    if not path.is_file():
        raise ModelCardError(f"The weights file {path} of model {card.id} does not exist.")
    actual = sha256_of(path)
    if actual != card.sha256:
        raise ChecksumMismatchError(
            f"The weights file {path} of model {card.id} has sha256 {actual}, but its card "
            f"declares {card.sha256}; the file was changed or corrupted. Restore it or retrain."
        )


def require_validated(card: ModelCard, *, research_mode: bool = False) -> None:
    """Refuse a card without validation metrics unless ``research_mode`` is on.

    Raises
    ------
    UnvalidatedModelError
        If ``card.validation`` is ``None`` and ``research_mode`` is false.
    """
    if card.validation is not None:
        return
    if not research_mode:
        raise UnvalidatedModelError(
            f"Model {card.id} {card.version} has no validation metrics in its card, so its "
            "results cannot be reported. Validate it (the training pipelines write the "
            "metrics), or pass research_mode=True for research use."
        )
    logger.warning("unvalidated_model_used", model_id=card.id, version=card.version)


def write_card(folder: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as ``folder/model.yaml`` and check that it reads back.

    Returns
    -------
    Path
        The card file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CARD_FILE
    path.write_text(
        yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    read_card(folder)
    return path


def discover_cards(
    root: Path,
    task: str | None = None,
    family: str | None = DEFAULT_FAMILY,
    *,
    on_error: Callable[[Path, ModelCardError], None] | None = None,
) -> list[ModelCard]:
    """Cards of all prediction-model folders under ``root`` (sorted by id).

    Folders whose card has another task (e.g. ``segmentation``) are skipped; broken cards of
    prediction models raise.

    Parameters
    ----------
    root
        The models folder.
    task
        Keep only this task (``classification`` or ``survival``); ``None``: both.
    family
        Keep only this family (default ``radiogenomics``, the models
        :func:`rgcds.analysis.predict.predict_all` runs); ``None``: every family.
    on_error
        Called with the folder and the error for a broken prediction card, which is then
        skipped; ``None``: the error is raised.

    Raises
    ------
    ModelCardError
        If a prediction card is invalid and ``on_error`` is ``None``.
    """
    cards: list[ModelCard] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        path = folder / CARD_FILE
        if not path.is_file():
            continue
        try:
            declared = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("task")
        except (yaml.YAMLError, AttributeError):
            declared = None
        if declared not in TASKS or (task is not None and declared != task):
            continue
        try:
            card = read_card(folder)
        except ModelCardError as exc:
            if on_error is None:
                raise
            on_error(folder, exc)
            continue
        if family is None or card.family == family:
            cards.append(card)
    return cards


__all__ = [
    "CARD_FILE",
    "CLINICAL_NAMES",
    "DEFAULT_FAMILY",
    "FAMILIES",
    "MASK_SEQUENCE",
    "REGION_NAMES",
    "SEQUENCE_NAMES",
    "TASKS",
    "WEIGHT_FORMATS",
    "ModelCard",
    "ModelInputs",
    "UnvalidatedModelError",
    "ValidationMetric",
    "discover_cards",
    "inputs_from_features",
    "parse_feature_name",
    "read_card",
    "require_validated",
    "sha256_of",
    "verify_weights",
    "write_card",
]
