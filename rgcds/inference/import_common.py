"""What the nnU-Net and MONAI bundle importers share (:mod:`rgcds.inference.import_nnunet`,
:mod:`rgcds.inference.import_monai`).

rgcds' tumour tissues and their coded segment definitions, the guesses of a channel's study
sequence and of a label's tissue from their names, ``--labels`` parsing, the output folder,
the card's YAML and the ``python -m`` entry point.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from rgcds.inference.card import (
    CARD_FILENAME,
    MORPHOLOGICALLY_ALTERED_STRUCTURE,
    CodedConcept,
    SegmentDefinition,
)
from rgcds.inference.errors import ModelCardError
from rgcds.inference.onnx_export import ImportRefusedError

#: rgcds' tumour labels (the BraTS convention its reports use) and their coded types.
TISSUES: dict[str, tuple[int, str, CodedConcept, tuple[int, int, int]]] = {
    "necrosis": (1, "Necrotic core", CodedConcept(code="6574001", scheme="SCT",
                                                  meaning="Necrosis"), (255, 0, 0)),
    "oedema": (2, "Oedema", CodedConcept(code="79654002", scheme="SCT", meaning="Edema"),
               (0, 255, 0)),
    "enhancing": (3, "Enhancing tumour", CodedConcept(code="C113842", scheme="NCIt",
                                                      meaning="Enhancing Lesion"), (255, 255, 0)),
}

_TISSUE_WORDS = {
    "necrosis": ("necro", "ncr", "net", "non-enhancing", "non_enhancing", "nonenhancing",
                 "core"),
    "oedema": ("edema", "oedema", "ed", "snfh", "peritumoral", "flair"),
    "enhancing": ("enhancing", "et", "enhance"),
}

_CHANNEL_WORDS = (
    ("T1c", re.compile(r"t1[-_ ]?(c|ce|gd|post|contrast)|t1ce|t1c|gad", re.I)),
    ("FLAIR", re.compile(r"flair", re.I)),
    ("T2", re.compile(r"^t2|t2w|t2[-_ ]?weighted", re.I)),
    ("T1", re.compile(r"^t1(n|w|[-_ ]?native|[-_ ]?pre)?$", re.I)),
)

SEQUENCES = ("T1", "T1c", "T2", "FLAIR")

#: The card's intended use when the person importing gives none.
DEFAULT_INTENDED_USE = (
    "Research use only: tumour segmentation in rgcds as the site's model, on the "
    "sequences and acquisitions it was trained on. Not a medical device.")


def parse_label_map(text: str | None) -> dict[int, str]:
    """``"1=oedema,2=necrosis,3=enhancing"`` to ``{1: 'oedema', ...}`` (checked names)."""
    out: dict[int, str] = {}
    if not text:
        return out
    for part in text.split(","):
        value, _, tissue = part.partition("=")
        tissue = tissue.strip().lower()
        if not value.strip().isdigit() or tissue not in TISSUES:
            raise ImportRefusedError(
                f"--labels entry '{part}' is not VALUE=TISSUE with TISSUE one of "
                f"{', '.join(TISSUES)}."
            )
        out[int(value)] = tissue
    return out


def _guess_channels(names: list[str]) -> tuple[str, ...] | None:
    found = []
    for name in names:
        role = next((r for r, rx in _CHANNEL_WORDS if rx.search(name.strip())), None)
        if role is None:
            return None
        found.append(role)
    return tuple(found) if len(set(found)) == len(found) else None


def _guess_tissue(name: str) -> str | None:
    words = re.split(r"[\s_/()-]+", name.lower())
    for tissue, keys in _TISSUE_WORDS.items():
        if any(k in words or (len(k) > 3 and k in name.lower()) for k in keys):
            return tissue
    return None


def segment_definitions(tissues: Iterable[str]) -> list[dict[str, Any]]:
    """The card's ``outputs.segments``: one coded definition per tissue, by label value."""
    return [
        SegmentDefinition(label=TISSUES[t][0], name=TISSUES[t][1],
                          category=MORPHOLOGICALLY_ALTERED_STRUCTURE, type=TISSUES[t][2],
                          color_rgb=TISSUES[t][3]).model_dump(mode="json")
        for t in sorted(set(tissues), key=lambda t: TISSUES[t][0])
    ]


def new_model_folder(path: Path) -> Path:
    """Resolve ``path`` and create it; refuse a folder that exists and is not empty."""
    out = path.resolve()
    if out.exists() and any(out.iterdir()):
        raise ImportRefusedError(f"{out} exists and is not empty; give a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_card_yaml(out: Path, card: dict[str, Any]) -> None:
    """Write ``card`` as ``out/model.yaml``.

    Through JSON first, so that shared sub-mappings are written out, not as YAML aliases.
    """
    (out / CARD_FILENAME).write_text(
        yaml.safe_dump(json.loads(json.dumps(card)), sort_keys=False, width=100)
    )


def run_module(argv: list[str] | None, *, prog: str, description: str, command: str,
               add_arguments: Callable[[argparse.ArgumentParser], None],
               run: Callable[[argparse.Namespace, Path], int],
               json_help: str | None = None) -> int:
    """``python -m`` an importer: its options plus ``--json`` and ``--models-root``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--models-root", type=Path, default=Path("models"))
    args = parser.parse_args(argv)
    try:
        return run(args, args.models_root)
    except ModelCardError as exc:
        print(f"rgcds models {command}: {exc}", file=sys.stderr)
        return 1


__all__ = [
    "DEFAULT_INTENDED_USE",
    "SEQUENCES",
    "TISSUES",
    "new_model_folder",
    "parse_label_map",
    "run_module",
    "segment_definitions",
    "write_card_yaml",
]
