"""The installed segmenter on full-head phantoms, and the quality gate's verdicts on it.

Per case: a held-out full-head phantom (template space, 2 mm), its four MR channels z-scored in
the truth brain and zero outside it (what the pipeline feeds the model), the model's labels,
BraTS Dice (WT, TC, ET), the segmentation of the mirrored images, and the ``[qc]`` gate
(default thresholds). A gate failure on a case whose Dice WT is at least ``--good`` counts as
a false alarm; a pass on a case below it as a miss.

    .venv/bin/python bench/segmentation_qc.py --n 12 [--model brats-unet-phantom] [--json out]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rgcds.analysis.qc import check_segmentation, whole_tumour_dice
from rgcds.inference import ModelRegistry, brats_dice, segment, select_backend
from rgcds.phantom.simulate import simulate_subject
from rgcds.pipeline.stages import remove_small_components
from rgcds.settings import QcSettings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seed", type=int, default=800_000)
    parser.add_argument("--model", default="brats-unet-phantom")
    parser.add_argument("--good", type=float, default=0.8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    card = ModelRegistry().get(args.model)
    backend = select_backend(card, "onnxruntime")
    qc = QcSettings()
    rows = []
    for seed in range(args.seed, args.seed + args.n):
        s = simulate_subject(seed, "small")
        x = np.stack([sitk.GetArrayFromImage(i).astype(np.float32)
                      for i in (s.t1, s.t1c, s.t2, s.flair)])
        brain = sitk.GetArrayFromImage(s.brain_mask) > 0
        truth = sitk.GetArrayFromImage(s.labels)
        # As the pipeline feeds the model: z-scored inside the brain, 0 outside it.
        for c in range(len(x)):
            inside = x[c][brain]
            x[c] = np.where(brain, (x[c] - inside.mean()) / max(float(inside.std()), 1e-6), 0.0)
        start = time.perf_counter()
        labels = remove_small_components(segment(x, card, backend, brain_mask=brain), (2.0,) * 3)
        seconds = time.perf_counter() - start
        mirrored = remove_small_components(
            segment(np.ascontiguousarray(x[..., ::-1]), card, backend,
                    brain_mask=np.ascontiguousarray(brain[..., ::-1])), (2.0,) * 3)[..., ::-1]
        flip = whole_tumour_dice(labels, mirrored)
        verdict = check_segmentation(labels, brain, (2.0,) * 3, qc, flip_dice=flip)
        dice = brats_dice(labels, truth)
        row = {"seed": seed, **{k: round(v, 4) for k, v in dice.items()},
               "truth_wt_ml": round(float((truth > 0).sum()) * 0.008, 1),
               "qc_passed": verdict.passed, "qc_reason": verdict.reason,
               **{f"qc_{k}": v for k, v in verdict.measures.items()},
               "segment_seconds": round(seconds, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    good = [r for r in rows if r["WT"] >= args.good]
    bad = [r for r in rows if r["WT"] < args.good]
    lines = [
        f"model {args.model}, {len(rows)} full-head phantoms (seeds {args.seed}..)",
        "Dice median WT {:.3f} TC {:.3f} ET {:.3f}; min WT {:.3f}".format(
            statistics.median(r["WT"] for r in rows), statistics.median(r["TC"] for r in rows),
            statistics.median(r["ET"] for r in rows), min(r["WT"] for r in rows)),
        f"QC: passed {sum(r['qc_passed'] for r in rows)}/{len(rows)}; false alarms "
        f"{sum(not r['qc_passed'] for r in good)}/{len(good)} (WT >= {args.good}); misses "
        f"{sum(r['qc_passed'] for r in bad)}/{len(bad)} (WT < {args.good})",
        "segmentation s median {:.1f} (x2 with the mirrored twin)".format(
            statistics.median(r["segment_seconds"] for r in rows)),
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": lines}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
