"""Imported nnU-Net v2 models: rgcds (ONNX Runtime, CPU) against nnUNetPredictor (PyTorch, CPU).

One run builds an nnU-Net model as ``tests/peers`` does (nnunetv2's
``nnUNetv2_plan_and_preprocess`` on synthetic four-channel cases of ``--train-shape``, the
network from the plans, two folds saved as checkpoints; untrained), imports it with
``python -m rgcds.inference.import_nnunet`` and predicts ``--cases`` cases of
``--case-shape`` (and one thick-slice case) with both: nnU-Net's own ``nnUNetPredictor``
(``predict_single_npy_array``, mirroring on, both folds) in the nnU-Net venv, and
:func:`rgcds.inference.nnunet.segment_nnunet` in this process. Both use 2 threads; times
exclude loading the model. Printed: voxel agreement and Dice per label, the seconds per case
of each, and the ratio rgcds / nnU-Net (target: at most 1).

    .venv/bin/python bench/imported_models.py --json bench/results/imported_models.json

``--monai`` runs the MONAI bundle half instead (:mod:`bench.imported_bundles`).
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

from rgcds.inference.card import load_card  # noqa: E402
from rgcds.inference.nnunet import open_folds, segment_nnunet  # noqa: E402
from tests.peers.nnunet_cases import make_case, write_raw_dataset  # noqa: E402

PEER = ROOT / "tests" / "peers" / "nnunet_peer.py"


def _run(python: str, *args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2")
    done = subprocess.run([python, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{args[:2]} failed:\n{done.stderr[-3000:]}")


def main() -> int:
    if "--monai" in sys.argv[1:]:  # the MONAI bundle half (bench/imported_bundles.py)
        from bench.imported_bundles import main as bundles

        return bundles([a for a in sys.argv[1:] if a != "--monai"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=os.environ.get("RGCDS_NNUNET_PYTHON",
                                                           str(ROOT / ".venv-nnunet/bin/python")))
    parser.add_argument("--train-shape", type=int, nargs=3, default=[64, 72, 64])
    parser.add_argument("--case-shape", type=int, nargs=3, default=[100, 116, 100])
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--regions", action="store_true", help="a region-based model")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not Path(args.python).is_file():
        print(f"no nnU-Net venv at {args.python}: run 'make nnunet-extra'")
        return 1
    work = args.work or Path(tempfile.mkdtemp(prefix="rgcds-bench-nnunet-"))
    kind = "Regions" if args.regions else "Labels"
    raw = write_raw_dataset(work / f"Dataset903_{kind}", 4, tuple(args.train_shape),
                            (1.5, 1.5, 1.5), args.regions)
    results, model = work / "results", work / "model"
    started = time.perf_counter()
    _run(args.python, str(PEER), "make-model", str(raw), str(results), "--work", str(work / "w"))
    extra = ["--labels", "1=oedema,2=necrosis,3=enhancing"] if args.regions else []
    _run(args.python, "-m", "rgcds.inference.import_nnunet", str(results), "--id", "bench-nnunet",
         "--out", str(model), "--license", "bench", "--training-data", "synthetic", *extra)
    print(f"model built and imported in {time.perf_counter() - started:.0f} s ({work})")
    cases: dict[str, np.ndarray] = {}
    shape = tuple(args.case_shape)
    for i in range(args.cases):
        cases[f"iso{i}"] = make_case(50 + i, shape, (1.5, 1.5, 1.5))[0]
        cases[f"iso{i}_spacing"] = np.array([1.5, 1.5, 1.5])
    thick = (max(8, shape[0] * 3 // 10), int(shape[1] * 1.5), int(shape[2] * 1.5))
    cases["thick"] = make_case(99, thick, (5.0, 1.0, 1.0))[0]
    cases["thick_spacing"] = np.array([5.0, 1.0, 1.0])
    np.savez(work / "cases.npz", **cases)
    _run(args.python, str(PEER), "predict", str(results), str(work / "cases.npz"),
         str(work / "nnunet.npz"))
    reference = np.load(work / "nnunet.npz")

    os.environ.setdefault("OMP_NUM_THREADS", "2")
    card = load_card(model)
    folds = open_folds(card, "onnxruntime")
    lut = np.zeros(256, dtype=np.uint8)
    if card.outputs.mode.value == "softmax":
        for cls in card.outputs.classes:
            lut[cls.index] = cls.label
    else:
        order = json.loads((model / "dataset.json").read_text())["regions_class_order"]
        for region, value in zip(card.outputs.regions, order, strict=True):
            lut[value] = region.label
    rows = []
    for name in [k for k in cases if not k.endswith("_spacing")]:
        t0 = time.perf_counter()
        ours = segment_nnunet(cases[name], cases[f"{name}_spacing"], card, folds)
        seconds = time.perf_counter() - t0
        theirs = lut[reference[name]]
        dice: dict[int, float | None] = {}
        for label in (1, 2, 3):
            a, b = ours == label, theirs == label
            both = int(a.sum() + b.sum())
            dice[label] = float(2 * (a & b).sum() / both) if both else None  # absent in both
        rows.append({
            "case": name, "shape": list(cases[name].shape[1:]),
            "equal": float((ours == theirs).mean()), "dice": dice,
            "rgcds_s": seconds, "nnunet_s": float(reference[f"{name}_seconds"]),
        })
    print(f"{'case':8} {'shape':16} {'equal':>9} {'Dice 1/2/3':>22} {'rgcds s':>8} "
          f"{'nnU-Net s':>9} {'ratio':>6}")
    for r in rows:
        d = "/".join("absent" if r["dice"][k] is None else f"{r['dice'][k]:.4f}"
                     for k in (1, 2, 3))
        print(f"{r['case']:8} {'x'.join(map(str, r['shape'])):16} {r['equal']:9.6f} {d:>22} "
              f"{r['rgcds_s']:8.2f} {r['nnunet_s']:9.2f} {r['rgcds_s'] / r['nnunet_s']:6.2f}")
    ratio = statistics.median(r["rgcds_s"] / r["nnunet_s"] for r in rows)
    print(f"median time ratio rgcds / nnUNetPredictor: {ratio:.2f} (target <= 1); "
          f"min voxel agreement {min(r['equal'] for r in rows):.6f} (target >= 0.995)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "model": {"patch_size": list(card.inputs.patch_size), "folds": len(folds),
                      "mode": card.outputs.mode.value,
                      "train_shape": args.train_shape},
            "cases": rows, "median_ratio": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
