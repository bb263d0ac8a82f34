"""Preprocessing time and peak memory of one four-sequence study (issue #4).

A phantom study (``write_study(seed, size="full")``, T1/T1c/T2/FLAIR + PET) is indexed,
classified and converted (``rgcds.pipeline.stages``), then preprocessed exactly as the
pipeline does (``preprocess_study`` onto the reference model's grid, template brain
extraction). Each run is a child process, so its peak memory is the child's ``ru_maxrss``
(``os.wait4``). Two runs in the same invocation:

* **rgcds** (measured): SimpleITK's default thread count (all CPUs of this machine);
* **baseline**: the same with ``sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)``.

Prints conversion time, every ``PreprocessedStudy.timings`` stage, the total, peak RSS, the
ratio baseline/rgcds, and the targets (total <= 30 s on 2 cores, peak <= 3 GB). Writes
``bench/results/preprocess.json``.

    .venv/bin/python bench/preprocess.py [--quick] [--seed 1] [--size full]

``--quick`` skips the single-threaded baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TARGET_SECONDS = 30.0
TARGET_PEAK_GB = 3.0


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def child(study: Path, threads: int, out: Path) -> int:
    """Convert and preprocess ``study``; write the timings to ``out``."""
    import SimpleITK as sitk

    if threads > 0:
        sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(threads)
    from rgcds.config import Settings, load_settings
    from rgcds.logging import configure_logging
    from rgcds.pipeline import StudyContext, stages

    configure_logging("WARNING", "console", sys.stderr)
    data = load_settings(None).model_dump()
    data["inference"]["models_root"] = str(ROOT / "models")
    work = Path(tempfile.mkdtemp(prefix="rgcds-bench-pre-"))
    ctx = StudyContext(inputs=(study,), work_dir=work, settings=Settings(**data))
    try:
        t0 = time.perf_counter()
        selection = stages.classify(ctx, stages.index(ctx))
        t1 = time.perf_counter()
        converted = stages.convert(ctx, selection)
        t2 = time.perf_counter()
        card = stages.segmentation_card(ctx)
        pre, _to_mni = stages.preprocess(ctx, converted, card)
        t3 = time.perf_counter()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "threads": sitk.ProcessObject_GetGlobalDefaultNumberOfThreads(),
        "roles": sorted(r.value for r in converted.volumes),
        "index_classify_s": round(t1 - t0, 3),
        "convert_s": round(t2 - t1, 3),
        "preprocess_s": round(t3 - t2, 3),
        "stages": dict(pre.timings),
        "total_s": round(t3 - t0, 3),
        "model_grid": list(next(iter(pre.images.values())).GetSize()),
    }
    out.write_text(json.dumps(result))
    return 0


def run_child(study: Path, threads: int, tmp: Path) -> dict[str, Any]:
    out = tmp / f"child-{threads}.json"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(study), "--threads", str(threads),
         "--out", str(out)],
    )
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"the preprocessing child failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["peak_rss_gb"] = round(usage.ru_maxrss * 1024 / 1e9, 3)  # ru_maxrss is KiB
    result["load"] = load()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the single-thread baseline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", default="full", choices=("small", "full"))
    parser.add_argument("--study", type=Path, default=None, help="an existing DICOM folder")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.threads, args.out)

    tmp = Path(tempfile.mkdtemp(prefix="rgcds-bench-pre-"))
    try:
        if args.study is not None:
            study = args.study
        else:
            from rgcds.phantom import write_study

            t0 = time.perf_counter()
            written = write_study(tmp / "study", seed=args.seed, size=args.size, with_pet=True)
            study = written.series[0].directory.parent
            print(f"phantom seed {args.seed} ({args.size}) written in "
                  f"{time.perf_counter() - t0:.1f} s")
        print(f"study {study}; cpus {os.cpu_count()}; load before {load()}")
        measured = run_child(study, 0, tmp)
        baseline = None if args.quick else run_child(study, 1, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nroles {', '.join(measured['roles'])}; model grid {measured['model_grid']}")
    cols = [("rgcds", measured)] + ([("1 thread", baseline)] if baseline else [])
    header = f"{'stage (s)':24}" + "".join(f"{name:>12}" for name, _ in cols)
    print(header)
    print(f"{'SimpleITK threads':24}" + "".join(f"{r['threads']:>12}" for _, r in cols))
    print(f"{'index + classify':24}" + "".join(f"{r['index_classify_s']:12.2f}" for _, r in cols))
    print(f"{'convert':24}" + "".join(f"{r['convert_s']:12.2f}" for _, r in cols))
    for stage in measured["stages"]:
        print(f"{'  ' + stage:24}" + "".join(f"{r['stages'].get(stage, 0.0):12.2f}"
                                             for _, r in cols))
    print(f"{'total (convert+preproc)':24}" + "".join(f"{r['total_s']:12.2f}" for _, r in cols))
    print(f"{'peak RSS (GB)':24}" + "".join(f"{r['peak_rss_gb']:12.2f}" for _, r in cols))
    ratio = baseline["total_s"] / measured["total_s"] if baseline else None
    print()
    print(f"{'figure':34} {'value':>8}  {'target':>10}  met")
    print(f"{'total s (index..preprocess)':34} {measured['total_s']:8.2f}  {'<= 30 s':>10}  "
          f"{'yes' if measured['total_s'] <= TARGET_SECONDS else 'NO'}")
    print(f"{'peak RSS GB (child ru_maxrss)':34} {measured['peak_rss_gb']:8.2f}  {'<= 3 GB':>10}  "
          f"{'yes' if measured['peak_rss_gb'] <= TARGET_PEAK_GB else 'NO'}")
    if ratio is not None:
        print(f"{'ratio 1-thread baseline / rgcds':34} {ratio:8.2f}  {'-':>10}")
    else:
        print("baseline (1 SimpleITK thread) skipped (--quick)")
    print(f"load after {load()}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "preprocess.json").write_text(json.dumps({
        "size": args.size, "seed": args.seed, "measured": measured, "baseline_1_thread": baseline,
        "ratio_baseline_over_measured": ratio,
        "targets": {"total_s": TARGET_SECONDS, "peak_rss_gb": TARGET_PEAK_GB},
        "met": {"total": measured["total_s"] <= TARGET_SECONDS,
                "peak": measured["peak_rss_gb"] <= TARGET_PEAK_GB},
        "cpus": os.cpu_count(),
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
