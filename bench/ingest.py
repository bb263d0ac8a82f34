"""DICOM ingest throughput (issue #3): rgcds's listener against dcmtk's storescp, same run.

The same phantom study (``write_study(size="full")``, about 540 instances with PET; two of
them with ``--instances 1000``) is sent by dcmtk's ``storescu`` to

* **baseline**: dcmtk's ``storescp`` writing every instance to a tmp dir;
* **rgcds**: the rgcds ``Daemon`` in this process (listener, spool with fsync, job store,
  trigger; no processor and no delivery, so only ingest is measured),

``storescu`` and ``storescp`` both run with ``TCP_NODELAY=1`` (without it dcmtk leaves
Nagle's algorithm on and a loopback send is about 20 x slower, about 30 instances/s),
alternated A/B for ``--rounds`` rounds. Each figure is ``instances / storescu wall time``
(association set-up to release; storescu's own file reading is in both). Prints the
median instances/s of each, the ratio rgcds/storescp, and the targets (>= 300 instances/s
on 2 cores, >= 0.5 x storescp). Writes ``bench/results/ingest.json``.

    .venv/bin/python bench/ingest.py [--quick] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATE = 300.0
TARGET_RATIO = 0.5


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")


def count_instances(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and p.suffix == ".dcm")


def send(storescu: str, aec: str, port: int, folder: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [storescu, "-aet", "SCANNER1", "-aec", aec, "+sd", "+r", "127.0.0.1", str(port),
         str(folder)],
        capture_output=True, text=True, timeout=900, check=False,
        env=dict(os.environ, TCP_NODELAY="1"),  # dcmtk leaves Nagle on without it (~20x slower)
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"storescu failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def round_storescp(storescu: str, storescp: str, folder: Path, tmp: Path) -> float:
    out = Path(tempfile.mkdtemp(prefix="storescp-", dir=tmp))
    port = free_port()
    env = dict(os.environ, TCP_NODELAY="1")
    proc = subprocess.Popen(
        [storescp, "-aet", "STORESCP", "-od", str(out), str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        return send(storescu, "STORESCP", port, folder)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(out, ignore_errors=True)


def round_rgcds(storescu: str, folder: Path, tmp: Path) -> float:
    from rgcds.config import Settings, load_settings
    from rgcds.service import Daemon

    root = Path(tempfile.mkdtemp(prefix="rgcds-", dir=tmp))
    data = load_settings(None).model_dump()
    data["storage"]["root"] = str(root / "storage")
    data["storage"]["min_free_bytes"] = 0
    data["metrics"]["enabled"] = False
    data["listener"]["host"] = "127.0.0.1"
    data["trigger"]["stable_seconds"] = 3600  # never queue during the round
    settings = Settings(**data)
    daemon = Daemon(settings, port=free_port())  # processor=None, deliver=None: ingest only
    daemon.start()
    try:
        return send(storescu, settings.listener.ae_title, daemon.port, folder)
    finally:
        daemon.stop(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds instead of 3")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--instances", type=int, default=500,
                        help="write full phantoms until at least this many instances")
    parser.add_argument("--study", type=Path, default=None,
                        help="use this DICOM folder instead of writing phantoms")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 3)

    from rgcds.logging import configure_logging

    configure_logging("WARNING", "console", sys.stderr)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    storescu, storescp = shutil.which("storescu"), shutil.which("storescp")
    if storescu is None or storescp is None:
        print("dcmtk's storescu/storescp are not installed: cannot run (apt install dcmtk).")
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="rgcds-bench-ingest-"))
    try:
        if args.study is not None:
            folder = args.study
        else:
            from rgcds.phantom import write_study

            folder = tmp / "study"
            seed = 1
            t0 = time.perf_counter()
            while not folder.exists() or count_instances(folder) < args.instances:
                write_study(folder / f"seed{seed}", seed=seed, size="full", with_pet=True)
                seed += 1
            print(f"phantoms written in {time.perf_counter() - t0:.1f} s")
        n = count_instances(folder)
        size_mb = sum(p.stat().st_size for p in folder.rglob("*.dcm")) / 1e6
        print(f"study: {n} instances, {size_mb:.1f} MB; {rounds} rounds A/B; load before {load()}")

        times: dict[str, list[float]] = {"storescp": [], "rgcds": []}
        loads: list[str] = []
        for r in range(rounds):
            times["storescp"].append(round_storescp(storescu, storescp, folder, tmp))
            times["rgcds"].append(round_rgcds(storescu, folder, tmp))
            loads.append(load())
            print(f"round {r + 1}: storescp {n / times['storescp'][-1]:7.1f} inst/s, "
                  f"rgcds {n / times['rgcds'][-1]:7.1f} inst/s  (load {loads[-1]})")

        rate = {k: n / statistics.median(v) for k, v in times.items()}
        ratio = rate["rgcds"] / rate["storescp"]
        print()
        print(f"{'figure':32} {'value':>10}  {'target':>12}  met")
        print(f"{'storescp (baseline) inst/s':32} {rate['storescp']:10.1f}  {'-':>12}")
        print(f"{'rgcds serve inst/s':32} {rate['rgcds']:10.1f}  {'>= 300':>12}  "
              f"{'yes' if rate['rgcds'] >= TARGET_RATE else 'NO'}")
        print(f"{'ratio rgcds / storescp':32} {ratio:10.2f}  {'>= 0.5':>12}  "
              f"{'yes' if ratio >= TARGET_RATIO else 'NO'}")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cpus; load after {load()}")
        result: dict[str, Any] = {
            "instances": n, "megabytes": round(size_mb, 1), "rounds": rounds,
            "seconds": times, "instances_per_s": rate, "ratio_rgcds_over_storescp": ratio,
            "targets": {"rgcds_instances_per_s": TARGET_RATE, "ratio": TARGET_RATIO},
            "met": {"rate": rate["rgcds"] >= TARGET_RATE, "ratio": ratio >= TARGET_RATIO},
            "load": loads, "cpus": os.cpu_count(), "baseline": "dcmtk storescp, same run",
        }
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "ingest.json").write_text(json.dumps(result, indent=1))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
