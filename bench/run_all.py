"""Run every benchmark in ``bench/`` once, at a size that fits a working session (``make bench``).

Each benchmark is its own script and prints its own figures, each as a ratio against a
baseline measured in the same run (see its docstring); this runner only calls them, one
after the other, each as a child process with the arguments below, and ends with one line
per benchmark: its exit status and wall time. Nothing is asserted: a benchmark that fails is
reported and the others still run (exit status 1 at the end).

    .venv/bin/python bench/run_all.py [--only NAME ...] [--full]

``--full`` runs each with its own defaults (the sizes quoted in the issues and the README;
hours in all on 2 cores). ``bench/head_montage.py`` writes a picture and is not run here.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> the quick arguments (``--full``: none, each script's defaults).
BENCHMARKS: dict[str, list[str]] = {
    "ingest": ["--instances", "200", "--rounds", "1"],
    "fuzz": ["--cases", "500", "--workers", "8", "--loris", "20"],
    "preprocess": ["--quick", "--size", "small"],
    "inference": ["--quick"],
    "radiomics_parallel": ["--quick"],
    "segmentation_qc": ["--n", "3"],
    "segmentation": ["--n", "1", "--sets", "synth,phantom"],
    "brain_extraction": ["--subjects", "2", "--postop", "1"],
    "missing_sequences": ["--seeds", "200001"],
    "pet": ["--n", "3"],
    "e2e": ["--quick"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=None)
    parser.add_argument("--full", action="store_true", help="each benchmark's own defaults")
    args = parser.parse_args()
    rows = []
    for name, quick in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        command = [sys.executable, str(HERE / f"{name}.py"), *([] if args.full else quick)]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, check=False)
        rows.append((name, done.returncode, time.perf_counter() - start))
    print("\nbenchmark            status  seconds")
    for name, status, seconds in rows:
        print(f"{name:20} {status:6d}  {seconds:7.1f}")
    return 1 if any(status for _, status, _ in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
