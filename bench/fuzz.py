"""Fuzz the listener (issue 21) and print what it survived, plus the hostile-network figures.

    .venv/bin/python bench/fuzz.py [--cases 100000] [--seed 0] [--loris 50] [--workers 8]

Starts a ``Daemon`` on a free loopback port in this process, with logging configured as
``rgcds serve`` configures it (stdout and stderr go to a file that is scanned for the PHI
markers at the end), then:

1. **slow-loris**: opens ``--loris`` connections that send one byte (or a 6-byte
   A-ASSOCIATE-RQ header) and stall, and times a C-ECHO of a normal sender while they are
   open (baseline: the same C-ECHO with none open);
2. **oversized PDU**: one connection declares a 4 GiB A-ASSOCIATE-RQ and streams up to
   256 MiB; prints the bytes the listener let through and the growth of this process's RSS;
3. **fuzzing**: ``--cases`` mutated A-ASSOCIATE-RQ / P-DATA-TF / data set cases
   (``tests/adversarial/fuzzing.py``), a raw C-ECHO after each; prints cases/s, echo
   failures, RSS growth and PHI markers found.

Writes ``bench/results/fuzz.json``. No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rgcds.logging import configure_logging
from rgcds.service import Daemon
from tests.adversarial.conftest import (
    AET,
    SCANNER,
    associate_rq,
    echo_ok,
    free_port,
    make_settings,
    rss_bytes,
)
from tests.adversarial.fuzzing import PHI_MARKERS, Fuzzer

MIB = 1 << 20


def _echo_seconds(d: Daemon) -> float:
    t = time.perf_counter()
    ok = echo_ok(d, timeout=30.0)
    return time.perf_counter() - t if ok else float("inf")


def _loris(d: Daemon, n: int) -> dict[str, float]:
    base = min(_echo_seconds(d) for _ in range(3))
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(associate_rq()[:6] if i % 2 else b"\x01")
        socks.append(s)
    under = min(_echo_seconds(d) for _ in range(3))
    for s in socks:
        s.close()
    return {"loris_connections": n, "echo_s_baseline": base, "echo_s_under_loris": under}


def _oversized(d: Daemon) -> dict[str, float]:
    before = rss_bytes()
    sent = 0
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
        try:
            s.sendall(b"\x01\x00\xff\xff\xff\xff")
            chunk = b"\x00" * 65536
            while sent < 256 * MIB:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
    return {"oversized_rq_bytes_sent_before_close": sent,
            "oversized_rq_rss_growth_mib": (rss_bytes() - before) / MIB}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loris", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1,
                    help="fuzzers on their own connections at once (seeds seed*1000+i); each "
                    "checks C-ECHO after every case")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rgcds-fuzz-"))
    log_path = work / "output.log"
    real_stdout = os.dup(1)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)

    configure_logging("INFO", "json")  # as `rgcds serve` does: warnings through the guard

    def say(msg: str) -> None:
        os.write(real_stdout, (msg + "\n").encode())

    # Each worker holds a fuzzed association and its C-ECHO's at once: the cap leaves room
    # for both, so a refused C-ECHO is the daemon's failure and not the harness's own load
    # (at 8 workers and the default cap of 10, the listener answered A-ASSOCIATE-RJ).
    workers = max(1, args.workers)
    d = Daemon(make_settings(work / "root", max_instance_size=8 * MIB, max_pdu_size=65536,
                             acse_timeout=5.0, network_timeout=5.0,
                             max_associations=max(10, 2 * workers + 2)), port=free_port())
    d.start()
    figures: dict[str, float | int | str] = {"load_average": " ".join(
        f"{x:.2f}" for x in os.getloadavg())}
    try:
        figures.update(_loris(d, args.loris))
        say(f"slow-loris: C-ECHO {figures['echo_s_under_loris']:.3f} s with {args.loris} "
            f"stalled connections open (baseline {figures['echo_s_baseline']:.3f} s)")
        figures.update(_oversized(d))
        say(f"oversized A-ASSOCIATE-RQ (declares 4 GiB): "
            f"{figures['oversized_rq_bytes_sent_before_close'] / MIB:.1f} MiB sent before "
            f"the listener closed; RSS +{figures['oversized_rq_rss_growth_mib']:.1f} MiB")
        fuzzers = [Fuzzer(d.port, SCANNER, AET, seed=args.seed * 1000 + i)
                   for i in range(workers)]
        fuzzers[0].run(30)
        baseline, peak = rss_bytes(), 0
        t0 = time.perf_counter()
        done = 0
        with ThreadPoolExecutor(len(fuzzers)) as pool:
            while done < args.cases:
                n = min(500 * len(fuzzers), args.cases - done)
                shares = [n // len(fuzzers) + (i < n % len(fuzzers)) for i in range(len(fuzzers))]
                list(pool.map(lambda fz_n: fz_n[0].run(fz_n[1]), zip(fuzzers, shares, strict=True)))
                done += n
                peak = max(peak, rss_bytes() - baseline)
                failures = sum(len(f.echo_failures) for f in fuzzers)
                say(f"  {done} cases, {done / (time.perf_counter() - t0):.1f}/s, "
                    f"echo failures {failures}, RSS +{peak / MIB:.1f} MiB")
        elapsed = time.perf_counter() - t0
    finally:
        d.stop(timeout=2.0)
        os.dup2(real_stdout, 1)
        os.dup2(real_stdout, 2)
    text = log_path.read_text(errors="replace")
    found = [m for m in PHI_MARKERS if m in text]
    figures.update({
        "cases": done, "seed": args.seed, "cases_per_s": done / elapsed,
        "workers": len(fuzzers),
        "echo_failures": sum(len(f.echo_failures) for f in fuzzers),
        "echo_failure_cases": "; ".join(f"worker {i} case {n}: {why}"
                                        for i, f in enumerate(fuzzers)
                                        for n, why in f.echo_failures) or "none",
        "rss_growth_mib_max": peak / MIB,
        "phi_markers_in_output": ",".join(found) or "none",
        "output_lines": text.count("\n"),
    })
    print(json.dumps(figures, indent=2))
    for line in [x for x in text.splitlines() if any(m in x for m in PHI_MARKERS)][:5]:
        print("PHI marker in:", line[:400])  # synthetic markers: where the guard missed
    out = Path(__file__).resolve().parent / "results" / "fuzz.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
