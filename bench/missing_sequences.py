"""Whole-tumour Dice when a study lacks its T1, T2 or FLAIR, per channel-substitution method.

For each phantom (``write_study(seed, size="small")``, never seen in training: the model was
trained on seeds 0-59 and validated on 100000-100023), the study goes through the pipeline's
own stages (index, classify, convert, preprocess, then the segmentation of
:func:`rgcds.pipeline.stages.run_segmentation`: :func:`~rgcds.pipeline.stages.model_channels`,
``segment``, small-component removal, back to the native T1c grid), and the labels are
compared with the phantom's truth on the T1c grid (``truth/labels_t1c_native.nii.gz``).

Conditions: all four sequences (the baseline of the same run), then each of T1, T2 and FLAIR
removed, each with every substitution method:

* ``nearest``: the closest available contrast after z-scoring in the brain (T1c for T1,
  FLAIR for T2, T2 for FLAIR) — what the pipeline does;
* ``synthetic``: that contrast made to resemble the missing one (T1 = T1c with intensities
  above the brain's 95th percentile clipped; FLAIR = T2 times a weight that rises from 0 at
  the T1's 5th brain percentile (fluid) to 1 at its median, as the inversion nulls long-T1
  fluid; T2 = FLAIR with that fluid made bright);
* ``zero``: an empty channel (0, the brain mean after z-scoring).

Without T1 the study is preprocessed again without it (brain extraction then runs on the
T1c); without T2 or FLAIR the other images are exactly those of the full study (each series is
registered to the T1c on its own), so that image is just left out.

    .venv/bin/python bench/missing_sequences.py [--seeds 200001 200002 200003]

Prints a table of Dice WT/TC/ET per condition and method (mean over seeds, and per seed) and
writes ``bench/results/missing_sequences.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
METHODS = ("nearest", "synthetic", "zero")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def run_seed(
    seed: int, tmp: Path, methods: tuple[str, ...], missing_roles: tuple[str, ...]
) -> list[dict[str, Any]]:
    import numpy as np
    import SimpleITK as sitk

    from rgcds.config import Settings, load_settings
    from rgcds.inference import segment, select_backend
    from rgcds.inference.metrics import brats_dice
    from rgcds.phantom import write_study
    from rgcds.pipeline import StudyContext, stages
    from rgcds.study import SeriesRole

    study = write_study(tmp / f"seed{seed}", seed=seed, size="small", with_pet=False)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(study.labels_native_path)))
    data = load_settings(None).model_dump()
    data["inference"]["models_root"] = str(ROOT / "models")
    settings = Settings(**data)
    ctx = StudyContext(inputs=(study.out_dir / "dicom",), work_dir=tmp / f"work{seed}",
                       settings=settings)
    selection = stages.classify(ctx, stages.index(ctx))
    converted = stages.convert(ctx, selection)
    card = stages.segmentation_card(ctx)
    t0 = time.perf_counter()
    pre_full, _ = stages.preprocess(ctx, converted, card)
    pre_no_t1 = None
    if "T1" in missing_roles:
        without_t1 = replace(
            converted,
            volumes={r: v for r, v in converted.volumes.items() if r is not SeriesRole.T1},
        )
        pre_no_t1, _ = stages.preprocess(ctx, without_t1, card)
    preprocess_s = time.perf_counter() - t0
    inference = settings.inference
    backend = select_backend(card, inference.backend)

    def dice_of(pre: Any, images: Any, method: str) -> dict[str, Any]:
        mask = sitk.GetArrayFromImage(pre.brain_mask).astype(bool)
        stacked, notes = stages.model_channels(images, list(card.inputs.channels), card.id,
                                               method=method, brain_mask=mask)
        labels = segment(stacked, card, backend, brain_mask=mask, overlap=inference.overlap,
                         batch_size=inference.batch_size, tta=inference.tta).astype(np.uint8)
        labels = stages.remove_small_components(labels, pre.brain_mask.GetSpacing())
        image = sitk.GetImageFromArray(labels)
        image.CopyInformation(pre.brain_mask)
        native = sitk.GetArrayFromImage(pre.labels_to_native(image))
        return {**brats_dice(native, truth), "notes": list(notes)}

    rows = [{"seed": seed, "missing": "none", "method": "-",
             **dice_of(pre_full, pre_full.images, "nearest")}]
    for missing in (SeriesRole(m) for m in missing_roles):
        pre = pre_no_t1 if missing is SeriesRole.T1 else pre_full
        images = {r: im for r, im in pre.images.items() if r is not missing}
        for method in methods:
            rows.append({"seed": seed, "missing": missing.value, "method": method,
                         **dice_of(pre, images, method)})
    for row in rows:
        row["preprocess_s"] = round(preprocess_s, 1)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[200001, 200002, 200003])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--missing", nargs="+", default=["T1", "T2", "FLAIR"],
                        choices=["T1", "T2", "FLAIR"])
    args = parser.parse_args()
    from rgcds.logging import configure_logging

    configure_logging("WARNING", "console", sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="rgcds-bench-missing-"))
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    try:
        for seed in args.seeds:
            seed_rows = run_seed(seed, tmp, tuple(args.methods), tuple(args.missing))
            rows += seed_rows
            for r in seed_rows:
                print(f"seed {seed}  missing {r['missing']:<5} {r['method']:<7} "
                      f"WT {r['WT']:.3f}  TC {r['TC']:.3f}  ET {r['ET']:.3f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nmean over {len(args.seeds)} phantoms (seeds {', '.join(map(str, args.seeds))}); "
          f"load {load()}; {time.perf_counter() - t0:.0f} s")
    print(f"{'missing':<8} {'method':<8} {'WT':>6} {'TC':>6} {'ET':>6}  WT - baseline")
    base = [r["WT"] for r in rows if r["missing"] == "none"]
    base_wt = sum(base) / len(base)
    summary = []
    for missing in ("none", "T1", "T2", "FLAIR"):
        for method in ("-", *METHODS):
            sel = [r for r in rows if r["missing"] == missing and r["method"] == method]
            if not sel:
                continue
            mean = {k: sum(r[k] for r in sel) / len(sel) for k in ("WT", "TC", "ET")}
            summary.append({"missing": missing, "method": method, **mean,
                            "wt_min": min(r["WT"] for r in sel)})
            print(f"{missing:<8} {method:<8} {mean['WT']:6.3f} {mean['TC']:6.3f} "
                  f"{mean['ET']:6.3f}  {mean['WT'] - base_wt:+.3f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "missing_sequences.json").write_text(
        json.dumps({"seeds": args.seeds, "rows": rows, "summary": summary, "load": load()},
                   indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
