"""``rgcds phantom OUT_DIR [--seed N]``: write a synthetic glioblastoma study."""

from __future__ import annotations

import argparse
from pathlib import Path

from rgcds.logging import configure_logging

NAME = "phantom"
HELP = "Write a synthetic glioblastoma DICOM study with its ground truth (for tests and demos)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", choices=["small", "full"], default="full")
    parser.add_argument("--no-pet", action="store_true", help="leave out the MET-PET series")
    parser.add_argument("--montage", type=Path, default=None, help="also write a PNG montage")


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level or "INFO", args.log_format or "auto")
    from rgcds.phantom import write_montage, write_study

    study = write_study(args.out_dir, seed=args.seed, size=args.size, with_pet=not args.no_pet)
    for series in study.series:
        print(f"{series.role:6s} {series.n_instances:4d} instances  {series.directory}")
    if args.montage is not None:
        write_montage(study, args.montage)
        print(f"montage {args.montage}")
    return 0
