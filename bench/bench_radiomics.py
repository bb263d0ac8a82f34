"""Radiomics extraction time of one phantom study: serial vs parallel (same process).

Prints the wall-clock time of :func:`rgcds.analysis.radiomics.extract_radiomics` on one
``simulate_subject(seed, size)`` study with ``max_workers=1`` (inline) and with
``max_workers=N`` (process pool), and their ratio. Run::

    .venv/bin/python bench/bench_radiomics.py [--size small] [--params radiomics_mri.yaml] \
        [--workers 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import structlog

from rgcds.analysis.radiomics import DEFAULT_REGIONS, default_workers, extract_radiomics
from rgcds.phantom import simulate_subject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--size", default="small")
    parser.add_argument("--params", default="radiomics_mri.yaml")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    subject = simulate_subject(args.seed, args.size)
    images = {
        "T1": subject.t1,
        "T1c": subject.t1c,
        "T2": subject.t2,
        "FLAIR": subject.flair,
        "PET": subject.pet,
    }
    print(
        f"study: phantom seed {args.seed} ({args.size}), {len(images)} sequences, regions "
        f"{','.join(DEFAULT_REGIONS)}, params {args.params}, cpus {os.cpu_count()}"
    )
    timings: dict[int, float] = {}
    rows = 0
    for workers in (1, args.workers):
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            table = extract_radiomics(
                images, subject.labels, study_uid="bench", params=args.params, max_workers=workers
            )
            best = min(best, time.perf_counter() - start)
            rows = len(table)
        timings[workers] = best
        print(f"max_workers={workers}: {best:.2f} s ({rows} feature rows)")
    if args.workers != 1:
        print(f"speed-up serial/parallel: {timings[1] / timings[args.workers]:.2f}x")


if __name__ == "__main__":
    main()
