"""The demo as a hospital runs rgcds: a PACS, the daemon, a scanner that pushes, a viewer.

:func:`run` starts a private Orthanc (with DICOMweb) as the PACS and ``rgcds serve`` as its
own process, configured to send its results to that Orthanc; pushes the demo studies with
dcmtk's ``storescu`` as a scanner would (a pre-operative MR + MET-PET study, then a
post-operative MR study and the MET-PET/CT study of the same patient); waits until every job
is done and the PACS holds each study's report; serves the OHIF viewer in front of the PACS
and prints the address at which each study opens. Then it stops everything it started,
unless ``keep`` (``rgcds demo --pacs --keep``): then it waits for Ctrl-C.

Everything runs on loopback ports chosen at start; nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rgcds import RESEARCH_USE_ONLY
from rgcds.demo.orthanc import DICOMWEB_PLUGIN, ORTHANC_BIN, Orthanc, free_port
from rgcds.demo.viewer import OHIF_DIST, ohif_server
from rgcds.results._common import SERIES_NUMBER, ObjectKind

SCANNER_AET = "SCANNER1"
RGCDS_AET = "RGCDS"
PACS_AET = "PACS"


class DemoError(RuntimeError):
    """The hospital demo could not run (a missing tool, a peer that did not start)."""


@dataclass(frozen=True)
class DemoStudy:
    """One study the demo pushes: what it is, its UID and its folder."""

    title: str
    study_uid: str
    folder: Path
    gets_report: bool = True
    """Whether a report SR goes into this study (a paired PET/CT study gets the PET SEG)."""


def _config(out: Path, port: int, pacs: Orthanc) -> str:
    """``rgcds serve``'s configuration: listener on loopback, storage under ``out``, results
    to the demo's Orthanc."""
    return f"""# rgcds demo: written by `rgcds demo --pacs`; loopback only.
[listener]
ae_title = "{RGCDS_AET}"
host = "127.0.0.1"
port = {port}
allowed_calling_aets = ["{SCANNER_AET}"]

[storage]
root = "{out / "rgcds-storage"}"
min_free_bytes = 0

[trigger]
stable_seconds = 5
poll_seconds = 0.5

[metrics]
enabled = false

[export]
poll_seconds = 1
initial_backoff_seconds = 1

[logging]
format = "json"

[[destinations]]
name = "pacs"
ae_title = "{pacs.aet}"
host = "127.0.0.1"
port = {pacs.dicom_port}
"""


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DemoError(f"{name} is missing: install the Debian package '{package}' (make demo).")
    return path


def write_studies(out: Path, seed: int, size: str, postop: bool) -> list[DemoStudy]:
    """The demo's studies, as a scanner would send them (UIDs and folders)."""
    from rgcds.phantom import write_postop_study, write_study

    study = write_study(out / "preoperative", seed=seed, size=size, with_pet=True)
    studies = [
        DemoStudy("pre-operative MR + MET-PET", study.study_instance_uid,
                  study.series[0].directory.parent)
    ]
    if postop:
        # Another patient (seed + 10; seed 11 is the pairing system test's): the daemon pairs
        # this MR study with the PET/CT study of the same patient.
        pair = write_postop_study(out / "postoperative", seed=seed + 10, size="small",
                                  rtstruct=True)
        studies += [
            DemoStudy("post-operative MR (+ RT Structure Set)", pair.mr_study_uid, pair.mr_dir),
            DemoStudy("MET-PET/CT of the post-operative patient", pair.petct_study_uid,
                      pair.petct_dir, gets_report=False),
        ]
    return studies


@contextlib.contextmanager
def _pacs(out: Path) -> Iterator[Orthanc]:
    if not Path(ORTHANC_BIN).exists():
        raise DemoError("Orthanc is missing: install the Debian package 'orthanc' (make demo).")
    if not DICOMWEB_PLUGIN.exists():
        raise DemoError("Orthanc's DICOMweb plugin is missing: install 'orthanc-dicomweb'.")
    workdir = out / "pacs"
    workdir.mkdir(parents=True, exist_ok=True)
    pacs = Orthanc(aet=PACS_AET, dicom_port=free_port(), http_port=free_port(),
                   workdir=workdir, name="rgcds-demo-pacs")
    pacs.start(dicomweb=True)
    try:
        yield pacs
    finally:
        pacs.stop()


@contextlib.contextmanager
def _daemon(out: Path, pacs: Orthanc) -> Iterator[tuple[int, Path]]:
    """``rgcds serve`` in its own process; yields its port and configuration file."""
    port = free_port()
    config = out / "rgcds.toml"
    config.write_text(_config(out, port, pacs))
    log = (out / "rgcds-serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "rgcds", "serve", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        echoscu = _tool("echoscu", "dcmtk")
        deadline = time.monotonic() + 120
        while subprocess.run(
            [echoscu, "-aet", SCANNER_AET, "-aec", RGCDS_AET, "127.0.0.1", str(port)],
            capture_output=True, check=False,
        ).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"rgcds serve did not start; see {out / 'rgcds-serve.log'}")
            time.sleep(0.5)
        yield port, config
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _push(port: int, study: DemoStudy) -> None:
    storescu = _tool("storescu", "dcmtk")
    sent = subprocess.run(
        [storescu, "-aet", SCANNER_AET, "-aec", RGCDS_AET, "+sd", "+r", "127.0.0.1",
         str(port), str(study.folder)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if sent.returncode != 0:
        raise DemoError(f"storescu could not send {study.title}: {sent.stderr.strip()[-400:]}")


def _result_series(pacs: Orthanc) -> dict[str, list[tuple[int, str, str, int]]]:
    """rgcds's series per study in the PACS: (series number, modality, description,
    instances), in series-number order."""
    study_uids = {
        study["ID"]: study["MainDicomTags"]["StudyInstanceUID"]
        for study in pacs.get("/studies?expand")
    }
    found: dict[str, list[tuple[int, str, str, int]]] = {}
    for tags in pacs.get("/series?expand"):  # two requests per poll, whatever the PACS holds
        main = tags.get("MainDicomTags", {})
        if not str(main.get("SeriesDescription", "")).startswith("rgcds"):
            continue
        uid = study_uids.get(tags["ParentStudy"])
        if uid is None:  # a study stored between the two requests
            continue
        found.setdefault(uid, []).append((
            int(main.get("SeriesNumber") or 0), str(main.get("Modality", "")),
            str(main["SeriesDescription"]), len(tags.get("Instances", [])),
        ))
    return {uid: sorted(series) for uid, series in found.items()}


def _reports(pacs: Orthanc) -> dict[str, int]:
    """The number of rgcds report SRs per study in the PACS."""
    number = SERIES_NUMBER[ObjectKind.SR]
    counts = {
        uid: sum(n for s, m, _d, n in series if m == "SR" and s == number)
        for uid, series in _result_series(pacs).items()
    }
    return {uid: n for uid, n in counts.items() if n}


def wait_for_results(
    config: Path, pacs: Orthanc, studies: list[DemoStudy], timeout: float
) -> list[dict[str, object]]:
    """Wait until every job of the daemon is done (or failed) and has been for a while,
    and the PACS holds a report of each study; returns the daemon's study lines."""
    from rgcds.commands.status import collect
    from rgcds.config import load_settings

    settings = load_settings(config)
    deadline = time.monotonic() + timeout
    settled_since: float | None = None
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = collect(settings)
        states = {str(r["study_instance_uid"]): str(r["state"]) for r in rows}
        reports = _reports(pacs)
        done = all(states.get(s.study_uid) in ("done", "failed") for s in studies) and all(
            reports.get(s.study_uid) for s in studies if s.gets_report
        )
        if done:
            settled_since = settled_since or time.monotonic()
            if time.monotonic() - settled_since > 15:  # no late paired analysis
                return rows
        else:
            settled_since = None
        time.sleep(2)
    raise DemoError(f"not every study was answered within {timeout:.0f} s: {rows}")


def run(out: Path, *, seed: int = 1, size: str = "full", postop: bool = True,
        keep: bool = False, timeout: float = 1800.0, viewer_port: int = 0) -> int:
    """Run the hospital demo under ``out`` (see the module's docstring); returns 0."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    studies = write_studies(out / "studies", seed, size, postop)
    for s in studies:
        print(f"study: {s.title}: {s.folder}")
    with _pacs(out) as pacs, _daemon(out, pacs) as (port, config):
        print(f"PACS: Orthanc {pacs.url} (DICOM {pacs.aet}@127.0.0.1:{pacs.dicom_port})")
        print(f"rgcds serve: {RGCDS_AET}@127.0.0.1:{port} (config {config})")
        for s in studies:
            _push(port, s)
            print(f"pushed with storescu: {s.title}")
        rows = wait_for_results(config, pacs, studies, timeout)
        for r in rows:
            print(f"rgcds status: {r['study_instance_uid']} {r['state']} "
                  f"({r['jobs']} job(s), {r['instances']} instances)"
                  + (f": {r['last_error']}" if r["last_error"] else ""))
        results = _result_series(pacs)
        for s in studies:
            print(f"in the PACS, {s.title}:")
            for number, modality, description, count in results.get(s.study_uid, []):
                print(f"  {number} {modality:3} {description} ({count})")
        reports = _reports(pacs)
        print(f"PACS holds {sum(reports.values())} rgcds report SR(s) in {len(reports)} studies")
        dist = OHIF_DIST.resolve()
        if not (dist / "index.html").is_file():
            print(f"OHIF is not unpacked in {dist} (make viewer): open the PACS at {pacs.url}")
            viewer: contextlib.AbstractContextManager[str] = contextlib.nullcontext(pacs.url)
        else:
            viewer = ohif_server(pacs.url, dist, port=viewer_port)
        with viewer as url:
            for s in studies:
                print(f"open in the viewer ({s.title}): "
                      f"{url}/viewer?StudyInstanceUIDs={s.study_uid}")
            print(RESEARCH_USE_ONLY)
            if keep:
                print("--keep: the PACS, rgcds serve and the viewer run until Ctrl-C.")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
    return 0
