"""The command-line options the nested cross-validation trainers share
(``pipelines/train_radiogenomics.py`` and ``pipelines/train_survival.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rgcds.analysis.validation import parse_sequences


def add_nested_cv_arguments(parser: argparse.ArgumentParser, *, sequences_help: str) -> None:
    """The model's identity, output folder, folds, bootstrap, seed and inputs options."""
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--version", default="0.1.0")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--outer-folds", type=int, default=5)
    parser.add_argument("--inner-folds", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true", help="trained on phantoms (demo)")
    parser.add_argument("--radiomics-params", default="radiomics_fast.yaml")
    parser.add_argument("--sequences", default=None, help=sequences_help)


def nested_cv_options(args: argparse.Namespace) -> dict[str, Any]:
    """The trainer's keyword arguments from the options of :func:`add_nested_cv_arguments`."""
    return {
        "out_dir": args.out,
        "model_id": args.model_id,
        "version": args.version,
        "outer_folds": args.outer_folds,
        "inner_folds": args.inner_folds,
        "n_bootstrap": args.bootstrap,
        "seed": args.seed,
        "synthetic": args.synthetic,
        "radiomics_params": args.radiomics_params,
        "sequences": parse_sequences(args.sequences),
    }
