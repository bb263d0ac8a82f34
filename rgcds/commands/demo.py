"""``rgcds demo --out DIR``: the main job on embedded defaults, offline.

Writes a synthetic glioblastoma study (T1, T1c, T2, FLAIR, MET-PET), analyses it with the
shipped models exactly as the daemon would (sequence identification, registration, brain
extraction, segmentation, measurements, radiomics, predictions) and writes the DICOM SEG,
TID 1500 SR, Secondary Capture overlays and PDF, plus a montage of the input with its truth.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from rgcds import RESEARCH_USE_ONLY
from rgcds.commands import (
    add_config_argument,
    print_outcome,
    publish_outcome,
    settings_and_logging,
)

NAME = "demo"
HELP = "Generate a synthetic study and run the whole analysis on it offline."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser, required=False)
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", choices=["small", "full"], default="full")


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    from rgcds.phantom import write_montage, write_study
    from rgcds.pipeline import StudyContext, run_study

    args.out.mkdir(parents=True, exist_ok=True)
    study = write_study(args.out / "phantom", seed=args.seed, size=args.size, with_pet=True)
    write_montage(study, args.out / "phantom-montage.png")
    dicom = study.series[0].directory.parent
    print(f"synthetic study: {len(study.series)} series in {dicom}")
    work = args.out / "work"
    if work.exists():
        shutil.rmtree(work)
    outcome = run_study(StudyContext(inputs=(dicom,), work_dir=work, settings=settings))
    truth = json.loads(study.clinical_json_path.read_text())
    _record, results = publish_outcome(outcome, args.out, truth=truth)
    print_outcome(outcome)
    print(f"stage seconds: {outcome.stage_seconds}")
    print(f"{len(outcome.written)} result objects (SEG, SR, SC, PDF) in {results}")
    print(f"montage of the input: {args.out / 'phantom-montage.png'}")
    print(RESEARCH_USE_ONLY)
    return 0
