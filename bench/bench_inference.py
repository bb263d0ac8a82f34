"""Sliding-window inference time of the reference model on one phantom, ONNX Runtime CPU.

Prints seconds per volume for the single pass (the baseline) and mirror TTA (8 passes), and
their ratio, all measured in this process on this machine. Figures, not assertions.

    .venv/bin/python bench/bench_inference.py [--repeats 3] [--threads 2] [--seed 100200]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import SimpleITK as sitk

from rgcds.inference import ModelRegistry, segment, select_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="brats-unet-phantom")
    parser.add_argument("--seed", type=int, default=100_200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--overlap", type=float, default=0.5)
    args = parser.parse_args()

    try:
        from rgcds.phantom import simulate_subject
    except ImportError:
        from rgcds.phantom.simulate import simulate_subject

    card = ModelRegistry().get(args.model)
    backend = select_backend(card, "onnxruntime", threads=args.threads)
    subject = simulate_subject(args.seed, size="small")
    x = np.stack([sitk.GetArrayFromImage(i).astype(np.float32)
                  for i in (subject.t1, subject.t1c, subject.t2, subject.flair)])
    brain = sitk.GetArrayFromImage(subject.brain_mask) > 0
    segment(x, card, backend, brain_mask=brain, overlap=args.overlap)  # warm-up

    def timed(tta: bool) -> float:
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            segment(x, card, backend, brain_mask=brain, overlap=args.overlap, tta=tta)
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    base = timed(False)
    tta = timed(True)
    print(f"model {card.id} {card.version}; backend {backend.name} ({backend.reason})")
    print(f"machine {platform.processor() or platform.machine()}, volume {x.shape[1:]} at "
          f"{card.inputs.spacing_mm[0]} mm, patch {card.inputs.patch_size}, "
          f"overlap {args.overlap}, median of {args.repeats}")
    print(f"single pass : {base:8.2f} s  (1.00x)")
    print(f"mirror TTA  : {tta:8.2f} s  ({tta / base:.2f}x the single pass)")


if __name__ == "__main__":
    main()
