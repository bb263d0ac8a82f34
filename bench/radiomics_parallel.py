"""Radiomics extraction of one phantom study: rgcds's parallel extraction against a plain
sequential pyradiomics loop, same process (issue #6).

Every (region, sequence) pair of one ``simulate_subject(seed, size)`` study (T1, T1c, T2,
FLAIR, PET on the 2 mm model grid, the truth labels), with the production settings: the
parameter file and regions of rgcds's default configuration
(``processing.radiomics_params``, ``processing.radiomics_regions``; ``--params`` and
``--regions`` override them).

* **baseline**: a plain sequential loop, one ``RadiomicsFeatureExtractor(...).execute`` per
  pair (the shape class once per region, as rgcds does), in this process;
* **rgcds**: :func:`rgcds.analysis.radiomics.extract_radiomics` with ``max_workers=2``
  (process pool).

Prints both times (best of ``--repeat``), the ratio baseline/rgcds (target >= 1.8 x on 2
cores), and checks that both give the same features (count and max |difference|). Writes
``bench/results/radiomics.json``.

    .venv/bin/python bench/radiomics.py [--quick] [--size small] [--workers 2] [--repeat 2]

``--quick``: one repeat. The former ``bench_radiomics.py`` (1 vs N workers of
``extract_radiomics``) is ``--workers N --inline-baseline``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

# This file is named like the pyradiomics package: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.8


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def plain_loop(images: dict[str, sitk.Image], labels: sitk.Image, regions: tuple[str, ...],
               params: Any) -> dict[tuple[str, str, str], float]:
    """Sequential pyradiomics over every (region, sequence) pair, no rgcds machinery."""
    import radiomics
    from radiomics import featureextractor

    from rgcds.analysis.radiomics import REGIONS

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    out: dict[tuple[str, str, str], float] = {}
    array = sitk.GetArrayFromImage(labels)
    for region in regions:
        mask = sitk.GetImageFromArray(np.isin(array, REGIONS[region]).astype(np.uint8))
        mask.CopyInformation(labels)
        if not sitk.GetArrayViewFromImage(mask).any():
            continue
        with_shape = "shape" in params.feature_classes
        for sequence, image in images.items():
            extractor = featureextractor.RadiomicsFeatureExtractor(
                params.for_sequence(sequence, with_shape=with_shape))
            result = extractor.execute(image, mask, label=1)
            with_shape = False
            for key, value in result.items():
                if key.startswith("diagnostics_"):
                    continue
                seq = "mask" if "_shape_" in key else sequence
                out[(region, seq, str(key))] = float(np.asarray(value))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--size", default="small", choices=("small", "full"))
    parser.add_argument("--params", default=None, help="default: the configured production file")
    parser.add_argument("--regions", default=None, help="comma-separated; default: configured")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--inline-baseline", action="store_true",
                        help="baseline = extract_radiomics(max_workers=1) instead of the loop")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat

    from rgcds.analysis.radiomics import extract_radiomics, load_params
    from rgcds.config import load_settings
    from rgcds.logging import configure_logging
    from rgcds.phantom import simulate_subject

    configure_logging("WARNING", "console", sys.stderr)
    processing = load_settings(None).processing
    params_name = args.params or processing.radiomics_params
    regions = tuple(args.regions.split(",")) if args.regions else tuple(
        processing.radiomics_regions)
    params = load_params(params_name)
    subject = simulate_subject(args.seed, args.size)
    images = {"T1": subject.t1, "T1c": subject.t1c, "T2": subject.t2, "FLAIR": subject.flair,
              "PET": subject.pet}
    print(f"study: phantom seed {args.seed} ({args.size}), sequences {','.join(images)}, "
          f"regions {','.join(regions)}, params {params.name} (classes "
          f"{','.join(params.feature_classes)}), workers {args.workers}, best of {repeat}; "
          f"cpus {os.cpu_count()}; load {load()}")

    def rgcds_run(workers: int) -> tuple[float, dict[tuple[str, str, str], float]]:
        best, table = float("inf"), None
        for _ in range(repeat):
            start = time.perf_counter()
            table = extract_radiomics(images, subject.labels, study_uid="bench",
                                      regions=regions, params=params, max_workers=workers)
            best = min(best, time.perf_counter() - start)
        assert table is not None
        return best, {(r.region, r.sequence, r.feature): float(r.value)
                      for r in table.itertuples()}

    if args.inline_baseline:
        base_s, base = rgcds_run(1)
        base_name = "extract_radiomics(max_workers=1)"
    else:
        base_name = "plain sequential pyradiomics loop"
        base_s = float("inf")
        base = {}
        for _ in range(repeat):
            start = time.perf_counter()
            base = plain_loop(images, subject.labels, regions, params)
            base_s = min(base_s, time.perf_counter() - start)
    par_s, par = rgcds_run(args.workers)

    common = set(base) & set(par)
    diffs = [abs(base[k] - par[k]) for k in common if np.isfinite(base[k]) and np.isfinite(par[k])]
    max_diff = max(diffs) if diffs else float("nan")
    identical = set(base) == set(par) and max_diff <= 1e-9
    ratio = base_s / par_s
    pairs = len({(k[0], k[1]) for k in par if k[1] != "mask"})
    print()
    print(f"{'figure':44} {'value':>9}  {'target':>8}  met")
    print(f"{'baseline: ' + base_name + ' (s)':44} {base_s:9.2f}")
    print(f"{f'rgcds extract_radiomics workers={args.workers} (s)':44} {par_s:9.2f}")
    print(f"{'ratio baseline / rgcds':44} {ratio:9.2f}  {'>= 1.8':>8}  "
          f"{'yes' if ratio >= TARGET_RATIO else 'NO'}")
    print(f"{'features baseline / rgcds / common':44} {len(base)} / {len(par)} / {len(common)} "
          f"({pairs} region x sequence pairs)")
    print(f"{'max |difference| over common features':44} {max_diff:9.3g}  "
          f"{'same (<= 1e-9)' if identical else 'DIFFERENT'}")
    print(f"load after {load()}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "radiomics.json").write_text(json.dumps({
        "params": params.name, "regions": regions, "size": args.size, "seed": args.seed,
        "baseline": base_name, "baseline_s": base_s, "rgcds_s": par_s, "workers": args.workers,
        "ratio": ratio, "target": TARGET_RATIO, "met": ratio >= TARGET_RATIO,
        "n_features": {"baseline": len(base), "rgcds": len(par), "common": len(common)},
        "max_abs_diff": max_diff, "identical": identical, "load_end": load(),
        "cpus": os.cpu_count(),
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
