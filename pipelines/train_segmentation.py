"""Train the reference tumour segmentation model (a small 3D U-Net) and ship it as ONNX.

Data come in the public BraTS layout: a folder of cases, each a folder ``<case>/`` holding
``<case>_t1.nii.gz``, ``<case>_t1ce.nii.gz``, ``<case>_t2.nii.gz``, ``<case>_flair.nii.gz``
and ``<case>_seg.nii.gz`` (labels 1 necrotic core, 2 oedema, 4 enhancing tumour). A case may
also hold ``<case>_brainmask.nii.gz`` (not part of BraTS); without it, the voxels where any
image is non-zero are the brain, which is right for BraTS's skull-stripped images.

``--phantoms N`` first writes N synthetic subjects from :func:`rgcds.phantom.simulate_subject`
(seeds 0..N-1) into that layout, and ``--test-phantoms M`` writes M held-out subjects
(seeds 100000..) the same way; training then reads the layout, so real BraTS data and
phantoms share every line after the writer.

``--kind postop`` (or ``--postop``) trains the post-operative model ``postop-unet-phantom``
instead: phantoms come from :func:`rgcds.phantom.simulate_postop` and the labels are
1 resection cavity, 2 oedema (FLAIR hyperintensity), 3 residual enhancing tumour (written as
4 in the label file, as BraTS writes enhancing tumour). About half of the post-operative
phantoms have no residual tumour; their label 3 is empty, which sampling and metrics allow
for. Inputs, normalisation, network, augmentation and training loop are the same; only the
phantom writer, the card text and segments, and the validation metrics differ (per label
Dice for cavity, oedema and whole lesion; residual Dice on the cases that have a residual,
and residual detection on all).

Everything is resampled to 2 mm isotropic in LPS orientation (array order z, y, x), and each
channel is z-score normalised inside the brain mask, as the card states. Training samples
64^3 patches (two thirds centred on tumour) with broad augmentation: rotations, scaling,
flips on all axes, per-channel bias field, gamma, intensity scale and shift, Gaussian noise,
blur, resampling to thick slices, and skull stripping at random (phantoms carry a skull).

Progress goes to ``<workdir>/train.log`` as JSON lines; checkpoints and partial metrics are
saved every few minutes, and ``--resume`` continues from the last one. At the end the best
checkpoint is exported to ONNX (opset 17, dynamic batch and spatial axes), its card is
written with the sha256, and Dice (WT, TC, ET) on the held-out cases, measured through
:func:`rgcds.inference.segment` with ONNX Runtime, goes into the card's validation metrics.

The code lives in :mod:`rgcds.training.segmentation`; this file is its command line.

Example (phantoms, ~40 min on 2 CPU cores)::

    python -m pipelines.train_segmentation --phantoms 120 --test-phantoms 24 \\
        --data-dir /tmp/rgcds-train/data --workdir /tmp/rgcds-train --minutes 35

Post-operative model (writes ``models/postop-unet-phantom``)::

    python -m pipelines.train_segmentation --postop --phantoms 60 --test-phantoms 16 \\
        --data-dir /tmp/rgcds-postop/data --workdir /tmp/rgcds-postop --minutes 30

BraTS 2021 (see docs/models.md)::

    python -m pipelines.train_segmentation --data-dir /data/BraTS2021_Training_Data \\
        --test-dir /data/BraTS2021_holdout --workdir /data/run1 --minutes 600
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rgcds.training.segmentation.data import CHANNELS as CHANNELS
from rgcds.training.segmentation.data import DEV_SEED_BASE, PATCH, TEST_SEED_BASE
from rgcds.training.segmentation.data import read_case as read_case
from rgcds.training.segmentation.data import write_phantom_case as write_phantom_case
from rgcds.training.segmentation.evaluation import OUTSIDE
from rgcds.training.segmentation.evaluation import postop_scores as postop_scores
from rgcds.training.segmentation.evaluation import summarise_postop as summarise_postop
from rgcds.training.segmentation.export import card_dict as card_dict
from rgcds.training.segmentation.export import evaluate, ship
from rgcds.training.segmentation.kinds import KINDS as KINDS
from rgcds.training.segmentation.loop import _Log, generate, train
from rgcds.training.segmentation.network import build_unet as build_unet


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="training cases in the BraTS layout (written first if --phantoms)")
    parser.add_argument("--test-dir", type=Path, default=None,
                        help="held-out cases (BraTS layout); default <workdir>/test")
    parser.add_argument("--dev-dir", type=Path, default=None,
                        help="model-selection cases (BraTS layout); default <workdir>/dev")
    parser.add_argument("--workdir", type=Path, required=True, help="checkpoints and log")
    parser.add_argument("--out", type=Path, default=None,
                        help="model folder to write model.onnx and model.yaml into; default "
                        "models/<model id> of the repository")
    parser.add_argument("--kind", choices=sorted(KINDS), default="preop",
                        help="preop: tumour model brats-unet-phantom; postop: post-operative "
                        "model postop-unet-phantom (phantoms from simulate_postop)")
    parser.add_argument("--postop", dest="kind", action="store_const", const="postop",
                        help="same as --kind postop")
    parser.add_argument("--eval-kind", choices=sorted(KINDS), default=None,
                        help="generator of the dev and test phantoms (default: --kind)")
    parser.add_argument("--phantoms", type=int, default=0, help="phantoms to generate")
    parser.add_argument("--test-phantoms", type=int, default=0,
                        help=f"held-out phantoms to generate (seeds {TEST_SEED_BASE}..)")
    parser.add_argument("--dev-phantoms", type=int, default=0,
                        help=f"model-selection phantoms to generate (seeds {DEV_SEED_BASE}..)")
    parser.add_argument("--minutes", type=float, default=35.0, help="training wall-time budget")
    parser.add_argument("--eval-every", type=float, default=5.0, help="minutes between checks")
    parser.add_argument("--base", type=int, default=8)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patch", type=int, default=PATCH, help="training and inference patch")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strip-fraction", type=float, default=0.3,
                        help="share of patches with zero outside a (jittered) brain mask")
    parser.add_argument("--channel-dropout", type=float, default=0.0,
                        help="share of patches with T1, T2 or FLAIR replaced by its nearest "
                        "stand-in (T1c, FLAIR, T2), as the pipeline fills a missing sequence")
    parser.add_argument("--outside", choices=["keep", "zero"], default="keep",
                        help="the card's normalisation outside the brain mask (training, "
                        "evaluation and the shipped card)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--stage", choices=["all", "generate", "train", "ship", "evaluate"],
                        default="all")
    args = parser.parse_args(argv)
    args.test_dir = args.test_dir or args.workdir / "test"
    args.dev_dir = args.dev_dir or args.workdir / "dev"
    args.out = args.out or root / "models" / KINDS[args.kind].model_id
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the stages named by ``--stage``."""
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    OUTSIDE["value"] = args.outside
    log = _Log(args.workdir / "train.log")
    log("start", argv=sys.argv[1:] if argv is None else argv)
    if args.stage in ("all", "generate"):
        generate(args, log)
    if args.stage in ("all", "train"):
        best = train(args, log)
    else:
        best = args.workdir / "best.pt"
    if args.stage in ("all", "ship"):
        ship(args, best, log)
    if args.stage in ("all", "evaluate"):
        evaluate(args, log)
    log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
