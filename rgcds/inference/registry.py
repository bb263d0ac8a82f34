"""The model registry: a folder of model folders, each with a card and its weights."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from pathlib import Path

import structlog

from rgcds.exceptions import ModelError
from rgcds.inference.card import CARD_FILENAME, ModelCard, load_card
from rgcds.inference.errors import ModelCardError, ModelNotFoundError
from rgcds.inference.prediction_card import read_card, verify_weights

logger = structlog.get_logger(__name__)

DEFAULT_MODELS_ROOT = Path(__file__).resolve().parents[2] / "models"


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking one model folder.

    Attributes
    ----------
    folder
        The model folder.
    model_id
        The card's id, or the folder name when the card could not be read.
    ok
        Whether the card follows the schema and the weights match their sha256.
    validated
        Whether the card reports validation metrics (``False`` when not ``ok``).
    message
        A full sentence: what was checked, or what is wrong.
    """

    folder: Path
    model_id: str
    ok: bool
    validated: bool
    message: str


class ModelRegistry:
    """The models under one root folder (``models/`` of the repository by default).

    Parameters
    ----------
    root
        A folder whose sub-folders each hold a ``model.yaml`` and weights.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else DEFAULT_MODELS_ROOT

    def _folders(self) -> builtins.list[Path]:
        """Folders of ONNX models (segmentation); prediction models are read elsewhere."""
        return [f for f in self._all_folders() if not _is_prediction_card(f)]

    def _all_folders(self) -> builtins.list[Path]:
        if not self.root.is_dir():
            raise ModelNotFoundError(
                f"The models folder {self.root} does not exist; set [inference] models_root "
                "to the folder that holds the model folders."
            )
        return sorted(p for p in self.root.iterdir() if (p / CARD_FILENAME).is_file())

    def list(self) -> list[ModelCard]:
        """Read every card (schema only, no checksum) and return those that are valid.

        Invalid cards are logged and left out; :meth:`verify` reports them.

        Returns
        -------
        list of ModelCard
            Sorted by id.
        """
        cards = []
        for folder in self._folders():
            try:
                cards.append(load_card(folder, check_checksum=False))
            except ModelError as exc:
                logger.warning("model_card_invalid", folder=str(folder), error=str(exc))
        return sorted(cards, key=lambda c: c.id)

    def get(self, model_id: str, check_checksum: bool = True) -> ModelCard:
        """Return the card of ``model_id``, checked against the schema and its sha256.

        Parameters
        ----------
        model_id
            The ``id`` in the card (usually also the folder name).
        check_checksum
            Hash the weights and compare them with the card (the default).

        Raises
        ------
        ModelNotFoundError
            No card has that id.
        ModelCardError, ChecksumMismatchError
            The card is invalid or the weights do not match.
        """
        folders = self._folders()
        direct = self.root / model_id
        ordered = ([direct] if direct in folders else []) + [f for f in folders if f != direct]
        for folder in ordered:
            try:
                card = load_card(folder, check_checksum=False)
            except ModelCardError:
                if folder == direct:
                    raise
                continue
            if card.id == model_id:
                if check_checksum:
                    card = load_card(folder, check_checksum=True)
                logger.info(
                    "model_loaded", model_id=card.id, version=card.version,
                    validated=card.validated, research_use_only=card.research_use_only,
                )
                return card
        known = ", ".join(f.name for f in folders) or "none"
        raise ModelNotFoundError(
            f"No model with id '{model_id}' is in {self.root} (model folders: {known}); "
            "check the id or add the model's folder with its model.yaml."
        )

    def verify(self) -> builtins.list[VerifyResult]:
        """Check every model folder: schema, weights present, sha256.

        Returns
        -------
        list of VerifyResult
            One per folder with a ``model.yaml``, in folder order.
        """
        results = []
        for folder in self._all_folders():
            if _is_prediction_card(folder):
                results.append(_verify_prediction_card(folder))
                continue
            try:
                card = load_card(folder, check_checksum=True)
            except ModelError as exc:
                results.append(VerifyResult(folder, folder.name, False, False, str(exc)))
                continue
            note = (
                "reports validation metrics"
                if card.validated
                else "reports NO validation metrics and is refused outside research mode"
            )
            results.append(
                VerifyResult(
                    folder, card.id, True, card.validated,
                    f"Model '{card.id}' {card.version}: card valid, sha256 matches, {note}.",
                )
            )
        return results


__all__ = ["DEFAULT_MODELS_ROOT", "ModelRegistry", "VerifyResult"]


_PREDICTION_TASKS = ("classification", "survival")


def _is_prediction_card(folder: Path) -> bool:
    """Whether ``folder`` holds a marker or survival model (a prediction card)."""
    import yaml

    try:
        data = yaml.safe_load((folder / CARD_FILENAME).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and data.get("task") in _PREDICTION_TASKS and (
        "target" in data or "features" in data
    )


def _verify_prediction_card(folder: Path) -> VerifyResult:
    try:
        card = read_card(folder)
        verify_weights(card)
    except ModelError as exc:
        return VerifyResult(folder, folder.name, False, False, str(exc))
    validated = card.validation is not None
    note = (
        f"{card.validation.metric} {card.validation.value:.3f}"
        if card.validation is not None
        else "NO validation metrics (refused outside research mode)"
    )
    return VerifyResult(
        folder, card.id, True, validated,
        f"Model '{card.id}' {card.version} ({card.task}): card valid, sha256 matches, {note}.",
    )
