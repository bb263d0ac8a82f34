"""End-to-end latency of ``rgcds serve`` (issue #8): last instance acknowledged to results
stored in a real PACS.

A real Orthanc on loopback is the destination; ``rgcds serve --config tmp.toml`` runs as a
subprocess (embedded Prefect flow on the local ephemeral API, ``PREFECT_HOME`` in a tmp dir,
metrics on a free loopback port, production trigger ``stable_seconds`` unless
``--stable-seconds``). For each four-sequence phantom study (``write_study`` ``small`` and,
unless ``--quick``, ``full``; with PET) dcmtk's ``storescu`` (``TCP_NODELAY=1``) sends it;
the clock starts when storescu exits (every instance acknowledged) and stops when Orthanc's
REST API shows a SEG, an SR and a PDF (``DOC``) in the study. Printed per study:

* that latency (target <= 60 s on 2 CPU cores), which includes the trigger's wait (the
  early complete-series rule after a 2 s grace, else ``stable_seconds``);
* the stage breakdown (``rgcds_stage_seconds`` from the daemon's Prometheus endpoint; the
  difference of the histogram sums before/after the study);
* the daemon's peak memory: ``VmHWM`` of the ``rgcds serve`` process (target <= 4 GB) and the
  largest sampled RSS sum of it and its descendants (radiomics workers, Prefect server).

The studies run one after the other in the same daemon, so the first one also pays the
start of Prefect's ephemeral API (the figure a freshly started daemon shows). There is no
baseline implementation to compare against: the reference is the target, and the stage
sums against the latency show where the time goes. Writes ``bench/results/e2e.json``.

    .venv/bin/python bench/e2e.py [--quick] [--stable-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
TARGET_S = 60.0
TARGET_PEAK_GB = 4.0
WANTED = {"SEG", "SR", "DOC"}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read())


class Orthanc:
    def __init__(self, workdir: Path) -> None:
        self.aet, self.dicom_port, self.http_port = "ORTHANC", free_port(), free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "rgcds-bench-pacs", "StorageDirectory": str(workdir / "storage"),
            "IndexDirectory": str(workdir / "index"), "DicomAet": self.aet,
            "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "HttpServerEnabled": True, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "DicomCheckCalledAet": True,
            "DicomAlwaysAllowStore": True, "DicomAlwaysAllowEcho": True, "Plugins": [],
            "ConcurrentJobs": 1, "SaveJobs": False,
        }
        (workdir / "orthanc.json").write_text(json.dumps(config))
        self.log = (workdir / "orthanc.log").open("wb")
        self.proc = subprocess.Popen(
            [ORTHANC, str(workdir / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                http_get(self.url + "/system")
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise RuntimeError("Orthanc did not answer on its REST port within 60 s.")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def modalities(self, study_uid: str) -> set[str]:
        found: set[str] = set()
        for series in json.loads(http_get(self.url + "/series?expand")):
            tags = series.get("MainDicomTags", {})
            parent = json.loads(http_get(self.url + f"/studies/{series['ParentStudy']}"))
            if parent.get("MainDicomTags", {}).get("StudyInstanceUID") == study_uid:
                found.add(str(tags.get("Modality", "")))
        return found

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def toml_config(tmp: Path, port: int, metrics_port: int, orthanc: Orthanc,
                stable: float | None) -> Path:
    lines = [
        "[listener]", 'host = "127.0.0.1"', f"port = {port}",
        "[storage]", f'root = "{tmp / "storage"}"', "min_free_bytes = 0",
        "[logging]", 'level = "INFO"', 'format = "json"',
        "[metrics]", "enabled = true", 'host = "127.0.0.1"', f"port = {metrics_port}",
        "[inference]", f'models_root = "{ROOT / "models"}"',
        "[export]", "poll_seconds = 1", "initial_backoff_seconds = 1",
    ]
    if stable is not None:
        lines += ["[trigger]", f"stable_seconds = {stable}"]
    lines += ["[[destinations]]", 'name = "pacs"', f'ae_title = "{orthanc.aet}"',
              'host = "127.0.0.1"', f"port = {orthanc.dicom_port}"]
    path = tmp / "rgcds.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def stage_sums(metrics_port: int) -> dict[str, float]:
    text = http_get(f"http://127.0.0.1:{metrics_port}/metrics").decode()
    sums = {}
    for m in re.finditer(r'^rgcds_stage_seconds_sum\{stage="([^"]+)"\} (\S+)$', text, re.M):
        sums[m.group(1)] = float(m.group(2))
    return sums


def vm_hwm_gb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e9
    return float("nan")


def tree_rss_gb(pid: int) -> float:
    """RSS of ``pid`` and all its descendants, summed (GB)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            ppid = int(fields[1])
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total / 1e9


def run_study(size: str, seed: int, tmp: Path, port: int, metrics_port: int, daemon: Any,
              orthanc: Orthanc, timeout: float) -> dict[str, Any]:
    from rgcds.phantom import write_study

    study = write_study(tmp / f"study-{size}", seed=seed, size=size, with_pet=True)
    folder = study.series[0].directory.parent
    n = sum(1 for _ in folder.rglob("*.dcm"))
    before = stage_sums(metrics_port)
    start = time.perf_counter()
    sent = subprocess.run(
        [shutil.which("storescu") or "storescu", "-aet", "SCANNER1", "-aec", "RGCDS", "+sd", "+r",
         "127.0.0.1", str(port), str(folder)],
        capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, TCP_NODELAY="1"),
    )
    acked = time.perf_counter()
    if sent.returncode != 0:
        raise RuntimeError(f"storescu failed: {sent.stderr[-2000:]}")
    peak_tree = 0.0
    found: set[str] = set()
    while time.perf_counter() - acked < timeout:
        peak_tree = max(peak_tree, tree_rss_gb(daemon.pid))
        if daemon.poll() is not None:
            raise RuntimeError(f"rgcds serve exited with {daemon.returncode}")
        found = orthanc.modalities(study.study_instance_uid)
        if WANTED <= found:
            break
        time.sleep(0.5)
    done = time.perf_counter()
    after = stage_sums(metrics_port)
    stages = {k: round(v - before.get(k, 0.0), 2) for k, v in after.items()
              if v - before.get(k, 0.0) > 0}
    return {
        "size": size, "instances": n, "send_s": round(acked - start, 2),
        "latency_s": round(done - acked, 2), "complete": WANTED <= found,
        "found": sorted(found), "stages": stages,
        "daemon_vmhwm_gb": round(vm_hwm_gb(daemon.pid), 3),
        "tree_peak_rss_gb": round(peak_tree, 3), "load": load(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small study only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stable-seconds", type=float, default=None,
                        help="trigger quiet period (default: the production setting)")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    if not Path(ORTHANC).exists() or shutil.which("storescu") is None:
        print("Orthanc or dcmtk's storescu is missing: cannot run (apt install orthanc dcmtk).")
        return 2
    from rgcds.config import load_settings

    stable = args.stable_seconds or load_settings(None).trigger.stable_seconds
    tmp = Path(tempfile.mkdtemp(prefix="rgcds-bench-e2e-"))
    orthanc = Orthanc(tmp / "orthanc")
    port, metrics_port = free_port(), free_port()
    config = toml_config(tmp, port, metrics_port, orthanc, args.stable_seconds)
    env = dict(os.environ, PREFECT_HOME=str(tmp / "prefect"), PREFECT_LOGGING_LEVEL="WARNING",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
    env.pop("PREFECT_API_URL", None)
    log = (tmp / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "rgcds"), "serve", "--config", str(config)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    results: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                stage_sums(metrics_port)
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("rgcds serve did not start:\n"
                                       + (tmp / "daemon.log").read_text()[-3000:]) from None
                time.sleep(0.2)
        print(f"rgcds serve pid {daemon.pid}; stable_seconds {stable}; cpus {os.cpu_count()}; "
              f"load {load()}")
        for size in ("small",) if args.quick else ("small", "full"):
            r = run_study(size, args.seed, tmp, port, metrics_port, daemon, orthanc, args.timeout)
            results.append(r)
            print(f"\n{size}: {r['instances']} instances sent in {r['send_s']} s; results "
                  f"{'complete' if r['complete'] else 'INCOMPLETE ' + str(r['found'])} "
                  f"{r['latency_s']} s after the last ack (load {r['load']})")
            for stage, seconds in r["stages"].items():
                print(f"    {stage:16} {seconds:8.2f} s")
            print(f"    {'sum of stages':16} {sum(r['stages'].values()):8.2f} s "
                  f"(rest: trigger - early rule after a {min(2.0, stable)} s grace or "
                  f"{stable} s quiet - flow start-up, delivery)")
    except Exception as exc:
        print(f"e2e run failed: {type(exc).__name__}: {exc}")
        print("daemon log tail:\n" + (tmp / "daemon.log").read_text()[-3000:])
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=90)
        except subprocess.TimeoutExpired:
            daemon.kill()
        orthanc.stop()
    print()
    print(f"{'figure':40} {'value':>8}  {'target':>8}  met")
    for r in results:
        ok = r["complete"] and r["latency_s"] <= TARGET_S
        print(f"{'latency ' + r['size'] + ' (s)':40} {r['latency_s']:8.2f}  {'<= 60 s':>8}  "
              f"{'yes' if ok else 'NO'}")
        print(f"{'daemon VmHWM after ' + r['size'] + ' (GB)':40} {r['daemon_vmhwm_gb']:8.2f}  "
              f"{'<= 4 GB':>8}  {'yes' if r['daemon_vmhwm_gb'] <= TARGET_PEAK_GB else 'NO'}")
        print(f"{'  daemon + children peak RSS sum (GB)':40} {r['tree_peak_rss_gb']:8.2f}")
    print(f"baseline: none (targets only); load after {load()}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "e2e.json").write_text(json.dumps({
        "studies": results, "stable_seconds": stable,
        "targets": {"latency_s": TARGET_S, "peak_gb": TARGET_PEAK_GB}, "cpus": os.cpu_count(),
    }, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if results and all(r["complete"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
