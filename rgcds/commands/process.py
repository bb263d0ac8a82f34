"""``rgcds process --out DIR INPUT...``: run the pipeline on files, offline, no network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rgcds import RESEARCH_USE_ONLY
from rgcds.commands import (
    add_analysed_at_argument,
    add_config_argument,
    print_outcome,
    publish_outcome,
    settings_and_logging,
)

NAME = "process"
HELP = "Analyse one study from DICOM files offline and write the result objects to --out."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser, required=False)
    add_analysed_at_argument(parser)
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--partner", type=Path, action="append", default=[], metavar="DIR",
        help="files of the paired study of the same patient (the PET/CT study of an MR "
        "study, or the reverse); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    from rgcds.pipeline import StudyContext, run_study

    missing = [str(p) for p in (*args.inputs, *args.partner) if not p.exists()]
    if missing:
        print(f"rgcds process: no such input: {', '.join(missing)}")
        return 1
    work = args.out / "work"
    ctx = StudyContext(
        inputs=tuple(args.inputs), work_dir=work, settings=settings,
        partner_inputs=tuple(args.partner),
        notes=("Paired offline with the given partner study.",) if args.partner else (),
        analysed_at=args.analysed_at,
    )
    outcome = run_study(ctx)
    record, results = publish_outcome(outcome, args.out)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print_outcome(outcome)
        print(f"{len(outcome.written)} result object(s) in {results}")
        print(RESEARCH_USE_ONLY)
    return 0
