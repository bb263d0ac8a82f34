"""Imported MONAI bundles: rgcds (ONNX Runtime, CPU) against MONAI (PyTorch, CPU), same bundle.

One run writes a bundle shaped like the Model Zoo's ``brats_mri_segmentation`` with its own
network (SegResNet, blocks 1-2-2-4, 16 filters, seeded weights, untrained) and transforms
(Orientationd RAS, Spacingd 1 mm bilinear, NormalizeIntensityd non-zero channel-wise, sliding
window ``--roi``, sigmoid, Invertd, threshold 0.5), imports it with
``python -m rgcds.inference.import_monai``, and predicts three NIfTI cases (axial, thick
slices, oblique) with both: MONAI in the nnU-Net venv (``tests/peers/monai_peer.py time``:
the bundle's transforms, inferer and network loaded once, per case load + preprocess +
infer + postprocess + save; plus ``python -m monai.bundle run`` for the agreement) and
:func:`rgcds.inference.monai_bundle.predict_monai` here (per case: read the NIfTIs + predict).
Both use 2 threads. Printed: voxel agreement, Dice per label, seconds of each and the ratio
rgcds / MONAI (target: at most 1).

    .venv/bin/python bench/imported_models.py --monai --json bench/results/imported_bundles.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rgcds.inference.backends import select_backend  # noqa: E402
from rgcds.inference.card import load_card  # noqa: E402
from rgcds.inference.monai_bundle import predict_monai, to_labels  # noqa: E402
from tests.peers.monai_cases import CASES, read_case, write_cases  # noqa: E402

PEER = ROOT / "tests" / "peers" / "monai_peer.py"


def _run(python: str, *args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2")
    done = subprocess.run([python, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{args[:2]} failed:\n{done.stderr[-3000:]}")


def _scaled_cases(scale: float) -> dict[str, tuple[int, tuple[int, int, int],
                                                   tuple[float, float, float],
                                                   tuple[float, ...]]]:
    return {name: (seed, (int(shape[0] * scale), int(shape[1] * scale), int(shape[2] * scale)),
                   spacing, direction)
            for name, (seed, shape, spacing, direction) in CASES.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=os.environ.get("RGCDS_NNUNET_PYTHON",
                                                           str(ROOT / ".venv-nnunet/bin/python")))
    parser.add_argument("--roi", type=int, nargs=3, default=[96, 96, 64])
    parser.add_argument("--scale", type=float, default=3.0,
                        help="case size as a multiple of the test's cases (3: ~120x130x120)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not Path(args.python).is_file():
        print(f"no nnU-Net venv at {args.python}: run 'make nnunet-extra'")
        return 1
    work = args.work or Path(tempfile.mkdtemp(prefix="rgcds-bench-monai-"))
    bundle, model = work / "bundle", work / "model"
    cases = write_cases(work / "cases", _scaled_cases(args.scale))
    started = time.perf_counter()
    _run(args.python, str(PEER), "make-bundle", str(bundle), "--brats-net", "--roi",
         *map(str, args.roi))
    _run(args.python, "-m", "rgcds.inference.import_monai", str(bundle), "--id", "bench-monai",
         "--out", str(model), "--license", "bench", "--training-data", "none (seeded)")
    print(f"bundle built and imported in {time.perf_counter() - started:.0f} s ({work})")
    _run(args.python, str(PEER), "run", str(bundle), str(cases), str(work / "monai.npz"))
    _run(args.python, str(PEER), "time", str(bundle), str(cases), str(work / "timed.npz"))
    reference, timed = np.load(work / "monai.npz"), np.load(work / "timed.npz")

    os.environ.setdefault("OMP_NUM_THREADS", "2")
    card = load_card(model)
    backend = select_backend(card, "onnxruntime")
    rows = []
    for name in sorted(CASES):
        t0 = time.perf_counter()
        volume, image, affine = read_case(cases / name)
        pred = predict_monai(volume, image.GetSpacing(), image.GetDirection(),
                             image.GetOrigin(), card, backend, affine=affine)
        seconds = time.perf_counter() - t0
        ours = to_labels(pred, card)
        theirs = to_labels(reference[name].transpose(0, 3, 2, 1), card)
        dice: dict[int, float | None] = {}
        for label in (1, 2, 3):
            a, b = ours == label, theirs == label
            both = int(a.sum() + b.sum())
            dice[label] = float(2 * (a & b).sum() / both) if both else None
        rows.append({"case": name, "shape": list(volume.shape[1:]),
                     "equal": float((ours == theirs).mean()), "dice": dice,
                     "rgcds_s": seconds, "monai_s": float(timed[f"{name}_seconds"]),
                     "monai_bundle_run_s": float(reference[f"{name}_seconds"])})
    print(f"{'case':13} {'shape':14} {'equal':>9} {'Dice 1/2/3':>22} {'rgcds s':>8} "
          f"{'MONAI s':>8} {'ratio':>6}")
    for r in rows:
        d = "/".join("absent" if r["dice"][k] is None else f"{r['dice'][k]:.4f}"
                     for k in (1, 2, 3))
        print(f"{r['case']:13} {'x'.join(map(str, r['shape'])):14} {r['equal']:9.6f} {d:>22} "
              f"{r['rgcds_s']:8.2f} {r['monai_s']:8.2f} {r['rgcds_s'] / r['monai_s']:6.2f}")
    ratio = statistics.median(r["rgcds_s"] / r["monai_s"] for r in rows)
    print(f"median time ratio rgcds / MONAI: {ratio:.2f} (target <= 1); min voxel agreement "
          f"{min(r['equal'] for r in rows):.6f} (target >= 0.995)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"roi": args.roi, "cases": rows, "median_ratio": ratio},
                                        indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
