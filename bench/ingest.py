"""DICOM ingest at the library's limit (issue 23): every figure and ratio from one run.

The same set of single-frame MR instances (``--instances``, 256 x 256, 16 bit, about
130 kB each) is sent by dcmtk's ``storescu`` (1 association, or 4 in parallel, each
sending a quarter) to

* **disk**: no network; the disk's append + ``fdatasync`` rate for records of that size;
* **storescp**: dcmtk's ``storescp`` writing each instance to a file (C++, no fsync);
* **bare**: a bare pynetdicom Storage SCP in this process that appends each instance's
  bytes to a segment file and ``fdatasync``s it before answering (one segment per
  association) -- the ceiling of a durable SCP built on the same library;
* **nosync**: the same bare SCP without the ``fdatasync`` -- the library's own rate with
  no durability at all, the physical bound for both rgcds modes on this machine (when it
  is far below the disk's rate, the SCP is CPU-bound and shared fsyncs cannot show);
* **rgcds instance / association**: the rgcds ``Daemon`` in this process (listener,
  journal, indexer, job store, trigger; no processing or delivery) in each
  ``storage.durability`` mode.

Each network figure is ``instances / wall time`` of all storescu processes (association
set-up to release). Configurations alternate within each of ``--rounds`` rounds; the
median of each is printed with the ratios the issue sets targets for. On a shared
machine only the ratios of one run mean something. Writes ``bench/results/ingest.json``.

    .venv/bin/python bench/ingest.py [--instances 600] [--rounds 2]
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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {
    "instance_1 / bare_1": 0.85,
    "instance_4 / instance_1": 1.5,
    "association_1 / instance_1": 1.5,
}


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


def write_instances(folder: Path, n: int, parts: int) -> list[Path]:
    """``n`` MR instances (one study, one series) in ``parts`` sub-folders."""
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    study, series = generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, size=(256, 256), dtype=np.uint16).tobytes()
    dirs = [folder / f"part{i}" for i in range(parts)]
    for d in dirs:
        d.mkdir(parents=True)
    for i in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality = "MR"
        ds.PatientName, ds.PatientID = "BENCH^INGEST", "BENCH-1"
        ds.InstanceNumber = i + 1
        ds.Rows = ds.Columns = 256
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = pixels
        ds.save_as(dirs[i % parts] / f"{i:05d}.dcm", enforce_file_format=True)
    return dirs


def disk_rate(tmp: Path, record: int, seconds: float = 2.0) -> float:
    """Appends of ``record`` bytes, each followed by ``fdatasync``, per second."""
    path = tmp / "disk-probe.seg"
    data = os.urandom(record)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.write(fd, data)
            os.fdatasync(fd)
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


def send(storescu: str, aec: str, port: int, folders: list[Path]) -> float:
    """Send each folder on its own association, all at once; the wall time of all."""
    env = dict(os.environ, TCP_NODELAY="1")  # dcmtk leaves Nagle on without it (~20x slower)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [storescu, "-aet", "SCANNER1", "-aec", aec, "+sd", "+r", "127.0.0.1", str(port),
             str(f)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )
        for f in folders
    ]
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=900)
        if p.returncode != 0:
            errors.append(err.decode(errors="replace")[-1000:])
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"storescu failed: {errors[0]}")
    return seconds


def run_storescp(storescu: str, storescp: str, folders: list[Path], tmp: Path) -> float:
    out = Path(tempfile.mkdtemp(prefix="storescp-", dir=tmp))
    port = free_port()
    proc = subprocess.Popen(
        [storescp, "-aet", "STORESCP", "-od", str(out), str(port)],
        env=dict(os.environ, TCP_NODELAY="1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        return send(storescu, "STORESCP", port, folders)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(out, ignore_errors=True)


def run_bare(storescu: str, folders: list[Path], tmp: Path, *, sync: bool = True) -> float:
    """A bare durable pynetdicom SCP: append each instance to a segment, fdatasync, answer."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import MRImageStorage

    out = Path(tempfile.mkdtemp(prefix="bare-", dir=tmp))
    fds: dict[int, int] = {}
    lock = threading.Lock()

    def on_store(event: Any) -> int:
        key = id(event.assoc)
        with lock:
            fd = fds.get(key)
            if fd is None:
                fd = fds[key] = os.open(out / f"{len(fds)}.seg",
                                        os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(fd, event.encoded_dataset(include_meta=True))
        if sync:
            os.fdatasync(fd)
        return 0

    ae = AE("BARE")
    ae.maximum_associations = 16
    ae.add_supported_context(MRImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        return send(storescu, "BARE", port, folders)
    finally:
        server.shutdown()
        for fd in fds.values():
            os.close(fd)
        shutil.rmtree(out, ignore_errors=True)


SYNCS: dict[str, list[float]] = {}
"""Journal ``fdatasync`` calls per instance of each rgcds configuration, per round."""


def run_rgcds(durability: str) -> Callable[[str, list[Path], Path], float]:
    def run(storescu: str, folders: list[Path], tmp: Path) -> float:
        from rgcds.config import Settings, load_settings
        from rgcds.service import Daemon

        root = Path(tempfile.mkdtemp(prefix="rgcds-", dir=tmp))
        data = load_settings(None).model_dump()
        data["storage"]["root"] = str(root / "storage")
        data["storage"]["min_free_bytes"] = 0
        data["storage"]["durability"] = durability
        data["metrics"]["enabled"] = False
        data["listener"]["host"] = "127.0.0.1"
        data["trigger"]["stable_seconds"] = 3600  # never queue during the round
        settings = Settings(**data)
        daemon = Daemon(settings, port=free_port())  # no processor, no delivery: ingest only
        daemon.start()
        try:
            seconds = send(storescu, settings.listener.ae_title, daemon.port, folders)
            jobs = daemon.jobs
            assert jobs is not None
            n = sum(s.instance_count for s in jobs.study_summaries())
            expected = sum(len(list(f.glob("*.dcm"))) for f in folders)
            if n != expected:
                raise RuntimeError(f"rgcds indexed {n} of {expected} instances")
            assert daemon.ingest is not None
            SYNCS.setdefault(f"{durability}_{len(folders)}", []).append(
                daemon.ingest.journal.fsyncs / expected)
            return seconds
        finally:
            daemon.stop(timeout=30)
            shutil.rmtree(root, ignore_errors=True)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--instances", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tmp", type=Path, default=None,
                        help="where to write (the disk measured); default: the system tmp")
    args = parser.parse_args()

    from rgcds.logging import configure_logging

    configure_logging("WARNING", "console", sys.stderr)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    storescu, storescp = shutil.which("storescu"), shutil.which("storescp")
    if storescu is None or storescp is None:
        print("dcmtk's storescu/storescp are not installed: cannot run (apt install dcmtk).")
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="rgcds-bench-ingest-", dir=args.tmp))
    try:
        one = write_instances(tmp / "one", args.instances, 1)
        four = write_instances(tmp / "four", args.instances, 4)
        n = args.instances
        size = sum(p.stat().st_size for p in one[0].glob("*.dcm")) / n
        print(f"{n} MR instances, {size / 1e3:.0f} kB each; {args.rounds} rounds; "
              f"load before {load()}")
        runners: dict[str, Callable[[str, list[Path], Path], float]] = {
            "bare": run_bare,
            "nosync": lambda s, f, t: run_bare(s, f, t, sync=False),
            "rgcds instance": run_rgcds("instance"),
            "rgcds association": run_rgcds("association"),
        }
        rates: dict[str, list[float]] = {}
        for r in range(args.rounds):
            rates.setdefault("disk", []).append(disk_rate(tmp, int(size)))
            for k, folders in ((1, one), (4, four)):
                name = f"storescp_{k}"
                rates.setdefault(name, []).append(
                    n / run_storescp(storescu, storescp, folders, tmp))
                for label, runner in runners.items():
                    name = f"{label.split()[-1]}_{k}"
                    rates.setdefault(name, []).append(n / runner(storescu, folders, tmp))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items())
                  + f"  (load {load()})")
        rate = {k: statistics.median(v) for k, v in rates.items()}
        print()
        print(f"{'figure (instances/s, median)':34} {'value':>9}")
        labels = {
            "disk": "disk append + fdatasync /s",
            "storescp_1": "storescp, 1 association",
            "storescp_4": "storescp, 4 associations",
            "bare_1": "bare durable pynetdicom, 1",
            "bare_4": "bare durable pynetdicom, 4",
            "nosync_1": "bare pynetdicom, no fsync, 1",
            "nosync_4": "bare pynetdicom, no fsync, 4",
            "instance_1": "rgcds instance, 1",
            "instance_4": "rgcds instance, 4",
            "association_1": "rgcds association, 1",
            "association_4": "rgcds association, 4",
        }
        for key, label in labels.items():
            print(f"{label:34} {rate[key]:9.1f}")
        ratios = {
            "instance_1 / bare_1": rate["instance_1"] / rate["bare_1"],
            "instance_4 / instance_1": rate["instance_4"] / rate["instance_1"],
            "association_1 / instance_1": rate["association_1"] / rate["instance_1"],
            "instance_4 / bare_4": rate["instance_4"] / rate["bare_4"],
            "bare_1 / disk": rate["bare_1"] / rate["disk"],
            "bound: nosync_1 / instance_1":
                rate["nosync_1"] / rate["instance_1"],
            "bound: nosync_4 / instance_1":
                rate["nosync_4"] / rate["instance_1"],
            "instance_1 / storescp_1": rate["instance_1"] / rate["storescp_1"],
            "association_1 / storescp_1": rate["association_1"] / rate["storescp_1"],
            "association_4 / storescp_4": rate["association_4"] / rate["storescp_4"],
        }
        syncs = {k: statistics.median(v) for k, v in SYNCS.items()}
        print()
        print(f"{'journal fdatasync per instance':34} {'value':>9}  {'disk bound /s':>13}")
        for key in ("instance_1", "instance_4", "association_1", "association_4"):
            per = syncs[key]
            bound = rate["disk"] / per if per else float("inf")
            print(f"{'rgcds ' + key:34} {per:9.3f}  {bound:13.0f}")
        print("(bare durable pynetdicom: 1.000 per instance by construction; the disk bound is "
              "the rate the disk's fdatasync alone would allow)")
        print()
        print(f"{'ratio':34} {'value':>9}  {'target':>8}  met")
        met: dict[str, bool] = {}
        for key, value in ratios.items():
            target = TARGETS.get(key)
            if target is None:
                print(f"{key:34} {value:9.2f}")
                continue
            met[key] = value >= target
            print(f"{key:34} {value:9.2f}  {'>= ' + str(target):>8}  "
                  f"{'yes' if met[key] else 'NO'}")
        print(f"machine: {platform.machine()}, {os.cpu_count()} cpus; load after {load()}")
        result: dict[str, Any] = {
            "instances": n, "bytes_per_instance": size, "rounds": args.rounds,
            "rates": rates, "median": rate, "ratios": ratios, "targets": TARGETS, "met": met,
            "journal_fdatasync_per_instance": syncs,
            "cpus": os.cpu_count(), "load_after": load(),
        }
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "ingest.json").write_text(json.dumps(result, indent=1))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
