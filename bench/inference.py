"""Segmentation inference of the reference model on one phantom study (issue #5).

All in this process, on this machine, the same volume, the same sliding window
(:func:`rgcds.inference.segment`, the card's patch, ``--overlap``), ``--threads`` intra-op
threads (2 by default):

* **ONNX Runtime** (what rgcds runs): the shipped ``models/brats-unet-phantom/model.onnx``
  through :func:`rgcds.inference.select_backend` (``onnxruntime``); the whole-study time
  (single pass) is the figure for the target (<= 20 s on 2 cores);
* **baseline, PyTorch eager on CPU**: per-patch time (``--patches`` random patches of the
  card's size, ``inference.batch_size`` per call; a whole study in eager mode takes
  minutes on 2 loaded cores) of the same U-Net (``pipelines/train_segmentation.py``
  ``build_unet``) with the training checkpoint ``/tmp/rgcds-train/best.pt`` (its
  ``args`` give the shape; the max |logit difference| against the shipped ONNX on one patch
  is printed, so you can see whether they are the same weights), through the same
  backend interface; target ORT >= 1.5 x PyTorch eager (per patch). Where either is missing, the
  script says that PyTorch eager could not be measured and why (``onnx2torch`` is not
  installed, so the ONNX file itself cannot be converted);
* mirror TTA (8 passes) against the single pass (from the former ``bench_inference.py``);
* TensorRT against ONNX Runtime only where a GPU is present, else ``no GPU: skipped``.

The volume is ``simulate_subject(seed, size="small")`` (template space at 2 mm, the model's
grid: what the pipeline feeds the model after preprocessing). Writes
``bench/results/inference.json``.

    .venv/bin/python bench/inference.py [--quick] [--repeats 3] [--threads 2] [--seed 100200]

``--quick``: one repeat and no TTA.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CHECKPOINT = Path("/tmp/rgcds-train/best.pt")
TARGET_RATIO = 1.5
TARGET_STUDY_S = 20.0


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


class TorchEagerBackend:
    """The same U-Net in PyTorch eager mode, shaped like an rgcds inference backend."""

    name = "pytorch-eager"

    def __init__(self, model: Any, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self._torch = torch
        self._model = model.eval()
        self.reason = f"baseline: PyTorch {torch.__version__} eager, CPU, {threads} threads"

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            out: np.ndarray = self._model(self._torch.from_numpy(np.ascontiguousarray(x))).numpy()
        return out


def torch_model() -> tuple[Any | None, str]:
    """The U-Net from the training checkpoint, or ``None`` and why not."""
    if importlib.util.find_spec("torch") is None:
        return None, "torch is not installed in this environment"
    script = ROOT / "pipelines" / "train_segmentation.py"
    if not script.is_file():
        return None, f"{script} (which defines the U-Net) is missing"
    if not CHECKPOINT.is_file():
        return None, (f"no checkpoint at {CHECKPOINT} (run pipelines/train_segmentation.py), "
                      "and onnx2torch is not installed to convert model.onnx")
    import torch

    sys.path.insert(0, str(ROOT))
    from pipelines.train_segmentation import build_unet

    saved = torch.load(CHECKPOINT, map_location="cpu", weights_only=False)
    shape = saved.get("args", {})
    model = build_unet(base=int(shape.get("base", 8)), levels=int(shape.get("levels", 4)))
    model.load_state_dict(saved["model"])
    return model.eval(), f"{CHECKPOINT} ({shape})"


def gpu_present() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        import subprocess

        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                              timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "GPU" in done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, no TTA")
    parser.add_argument("--model", default="brats-unet-phantom")
    parser.add_argument("--seed", type=int, default=100_200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patches", type=int, default=16,
                        help="patches for the per-patch ORT vs PyTorch comparison")
    parser.add_argument("--overlap", type=float, default=None,
                        help="sliding-window overlap (default: the production setting)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats

    from rgcds.config import load_settings
    from rgcds.inference import ModelRegistry, segment, select_backend
    from rgcds.logging import configure_logging
    from rgcds.phantom import simulate_subject

    configure_logging("WARNING", "console", sys.stderr)
    inference = load_settings(None).inference
    overlap = inference.overlap if args.overlap is None else args.overlap
    batch = inference.batch_size
    card = ModelRegistry(ROOT / "models").get(args.model)
    ort = select_backend(card, "onnxruntime", threads=args.threads)
    subject = simulate_subject(args.seed, size="small")
    x = np.stack([sitk.GetArrayFromImage(i).astype(np.float32)
                  for i in (subject.t1, subject.t1c, subject.t2, subject.flair)])
    brain = sitk.GetArrayFromImage(subject.brain_mask) > 0
    print(f"model {card.id} {card.version}; volume {x.shape[1:]} at {card.inputs.spacing_mm[0]} "
          f"mm, patch {card.inputs.patch_size}, overlap {overlap}, batch {batch}, "
          f"{args.threads} threads, median of {repeats}; cpus {os.cpu_count()}; load {load()}")

    def timed(backend: Any, tta: bool = False) -> float:
        backend.run(patches[:batch])  # warm-up: one network call
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            segment(x, card, backend, brain_mask=brain, overlap=overlap, batch_size=batch, tta=tta)
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    def per_patch(backend: Any) -> float:
        """Median seconds per patch over ``len(patches)`` patches in calls of ``batch``."""
        backend.run(patches[:batch])
        runs = []
        for _ in range(max(3, repeats)):
            start = time.perf_counter()
            for i in range(0, len(patches), batch):
                backend.run(patches[i:i + batch])
            runs.append((time.perf_counter() - start) / len(patches))
        return statistics.median(runs)

    patches = np.random.default_rng(0).standard_normal(
        (args.patches, len(card.inputs.channels), *card.inputs.patch_size)).astype(np.float32)
    figures: dict[str, Any] = {"load_start": load()}
    ort_s = timed(ort)
    ort_patch = per_patch(ort)
    figures.update(ort_study_s=ort_s, ort_patch_ms=ort_patch * 1e3)
    print(f"ONNX Runtime ({ort.name}: {ort.reason}): whole study {ort_s:.2f} s; "
          f"{ort_patch * 1e3:.1f} ms/patch")

    model, why = torch_model()
    torch_patch: float | None = None
    if model is None:
        print(f"PyTorch eager could not be measured: {why}")
        figures["torch_skipped"] = why
    else:
        backend = TorchEagerBackend(model, args.threads)
        diff = float(np.max(np.abs(backend.run(patches[:1]) - ort.run(patches[:1]))))
        torch_patch = per_patch(backend)
        figures.update(torch_patch_ms=torch_patch * 1e3, torch_weights=why,
                       max_abs_logit_diff=diff)
        print(f"PyTorch eager ({why}): {torch_patch * 1e3:.1f} ms/patch; max |logit diff| vs "
              f"ORT on one patch {diff:.2e}")

    tta_s: float | None = None
    if not args.quick:
        tta_s = timed(ort, tta=True)
        figures["ort_tta_s"] = tta_s

    trt: dict[str, Any] = {}
    if not gpu_present():
        print("TensorRT vs ONNX Runtime: no GPU: skipped")
        trt["skipped"] = "no GPU"
    else:
        try:
            engine = select_backend(card, "tensorrt")
            trt_s = timed(engine)
            trt = {"tensorrt_study_s": trt_s, "ratio_ort_over_trt": ort_s / trt_s}
            print(f"TensorRT ({engine.reason}): whole study {trt_s:.2f} s")
        except Exception as exc:
            trt["skipped"] = f"{type(exc).__name__}: {exc}"
            print(f"TensorRT could not run: {trt['skipped']}")
    figures["tensorrt"] = trt

    ratio = torch_patch / ort_patch if torch_patch is not None else None
    print()
    print(f"{'figure':38} {'value':>9}  {'target':>10}  met")
    print(f"{'whole study, ORT single pass (s)':38} {ort_s:9.2f}  {'<= 20 s':>10}  "
          f"{'yes' if ort_s <= TARGET_STUDY_S else 'NO'}")
    print(f"{'ORT ms/patch':38} {ort_patch * 1e3:9.1f}  {'-':>10}")
    if torch_patch is not None and ratio is not None:
        print(f"{'PyTorch eager ms/patch [baseline]':38} {torch_patch * 1e3:9.1f}  {'-':>10}")
        print(f"{'ratio PyTorch eager / ORT (per patch)':38} {ratio:9.2f}  {'>= 1.5':>10}  "
              f"{'yes' if ratio >= TARGET_RATIO else 'NO'}")
    else:
        print(f"{'ratio PyTorch eager / ORT':38} {'n/a':>9}  {'>= 1.5':>10}  not measured")
    if tta_s is not None:
        print(f"{'mirror TTA, ORT (s)':38} {tta_s:9.2f}  {'-':>10}   "
              f"({tta_s / ort_s:.2f}x the single pass)")
    if "tensorrt_study_s" in trt:
        print(f"{'ratio ORT / TensorRT':38} {trt['ratio_ort_over_trt']:9.2f}")
    print(f"machine {platform.machine()}, load after {load()}")
    figures.update(
        ratio_torch_over_ort=ratio, targets={"ratio": TARGET_RATIO, "study_s": TARGET_STUDY_S},
        met={"study": ort_s <= TARGET_STUDY_S,
             "ratio": None if ratio is None else ratio >= TARGET_RATIO},
        threads=args.threads, overlap=overlap, batch_size=batch, repeats=repeats,
        baseline="PyTorch eager, CPU, same network, per patch, same run",
        load_end=load(), cpus=os.cpu_count(),
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "inference.json").write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
