"""``rgcds demo --out DIR``: the main job on embedded defaults, offline; ``--pacs``: the same
as a hospital runs it (:mod:`rgcds.demo.hospital`: Orthanc, ``rgcds serve``, storescu, OHIF).

Writes a synthetic glioblastoma study (T1, T1c, T2, FLAIR, MET-PET), analyses it with the
shipped models exactly as the daemon would (sequence identification, registration, brain
extraction, segmentation, measurements, radiomics, predictions) and writes the DICOM SEG,
TID 1500 SR, Secondary Capture overlays and PDF, plus a montage of the input with its truth.

Then the post-operative case: a post-operative MR study (with an RT Structure Set holding
the CTV) and a separate [11C]MET PET/CT study of the same synthetic patient, analysed as the
daemon pairs them: PET measurements in the CTV, residual tumour, prognosis, the PET SEG in
the PET study and the fused PET/MR overlays (``--no-postop`` skips it).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from rgcds import RESEARCH_USE_ONLY
from rgcds.commands import (
    add_analysed_at_argument,
    add_config_argument,
    print_outcome,
    publish_outcome,
    settings_and_logging,
)
from rgcds.config import Settings

NAME = "demo"
HELP = "Generate a synthetic study and run the whole analysis on it offline."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser, required=False)
    add_analysed_at_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", choices=["small", "full"], default="full")
    parser.add_argument("--no-postop", action="store_true",
                        help="skip the post-operative MR + MET-PET/CT pair")
    parser.add_argument("--pacs", action="store_true",
                        help="run it as a hospital does: a private Orthanc PACS, rgcds serve, "
                             "the studies pushed with storescu, results read in OHIF")
    parser.add_argument("--keep", action="store_true",
                        help="with --pacs: leave the PACS, rgcds serve and the viewer running "
                             "until Ctrl-C")
    parser.add_argument("--viewer-port", type=int, default=0,
                        help="with --pacs: the viewer's loopback port (0: a free one)")


def run(args: argparse.Namespace) -> int:
    if args.pacs:
        from rgcds.demo.hospital import DemoError
        from rgcds.demo.hospital import run as run_hospital

        try:
            return run_hospital(args.out, seed=args.seed, size=args.size,
                                postop=not args.no_postop, keep=args.keep,
                                viewer_port=args.viewer_port)
        except DemoError as error:
            print(f"rgcds demo --pacs: {error}")
            return 1
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
    outcome = run_study(
        StudyContext(
            inputs=(dicom,), work_dir=work, settings=settings, analysed_at=args.analysed_at
        )
    )
    truth = json.loads(study.clinical_json_path.read_text())
    _record, results = publish_outcome(outcome, args.out, truth=truth)
    print_outcome(outcome)
    print(f"stage seconds: {outcome.stage_seconds}")
    print(f"{len(outcome.written)} result objects (SEG, SR, SC, PDF) in {results}")
    print(f"montage of the input: {args.out / 'phantom-montage.png'}")
    if not args.no_postop:
        _postop(args, settings)
    print(RESEARCH_USE_ONLY)
    return 0


def _postop(args: argparse.Namespace, settings: Settings) -> None:
    from rgcds.phantom import write_postop_study
    from rgcds.pipeline import StudyContext, run_study

    out = args.out / "postop"
    pair = write_postop_study(out / "phantom", seed=args.seed, size="small", rtstruct=True)
    print(f"\npost-operative pair: MR study in {pair.mr_dir}, MET-PET/CT study in "
          f"{pair.petct_dir}")
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    ctx = StudyContext(
        inputs=(pair.mr_dir,), work_dir=work, settings=settings,
        partner_inputs=(pair.petct_dir,),
        notes=("Demo: the MR study paired with the PET/CT study of the same patient.",),
        analysed_at=args.analysed_at,
    )
    outcome = run_study(ctx)
    truth = json.loads(pair.clinical_json_path.read_text())
    _record, results = publish_outcome(outcome, out, truth=truth)
    print_outcome(outcome)
    print(f"{len(outcome.written)} result objects (MR study and PET study) in {results}")
