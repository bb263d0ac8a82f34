"""``rgcds demo --out DIR``: the main job on embedded defaults, no network needed."""

from __future__ import annotations

import argparse
from pathlib import Path

from rgcds import RESEARCH_USE_ONLY
from rgcds.logging import configure_logging

NAME = "demo"
HELP = "Generate a synthetic study and run the whole analysis on it offline."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--seed", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level or "INFO", args.log_format or "auto")
    from rgcds.phantom import write_montage, write_study

    study = write_study(args.out / "phantom", seed=args.seed, size="full", with_pet=True)
    write_montage(study, args.out / "phantom-montage.png")
    print(f"synthetic study written to {args.out / 'phantom'}")
    print(RESEARCH_USE_ONLY)
    return 0
