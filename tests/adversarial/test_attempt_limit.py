"""A study that crashes the daemon every time it is processed does not loop forever.

Under ``Restart=on-failure`` the daemon restarts, :meth:`JobStore.recover` re-queues the
study, and the study kills it again. ``processing.max_attempts`` ends that: the claim after
the last attempt writes the fallback "not analysed" report instead of processing again.
Each daemon here is a real process on a loopback port; the "crashing study" is a processor
that SIGKILLs its own process, as a segfault in a native library would end it.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pydicom

from rgcds.dicom import Peer, store_files
from rgcds.results.testing import make_mr_series
from rgcds.store import JobStore, job_store_path
from tests.adversarial.conftest import (
    AET,
    SCANNER,
    answers_echo,
    free_port,
    saved_files,
    wait_for,
    write_serve_config,
)

# serve's daemon, with a processor that dies like a segfault in the middle of a study
_CRASHING_SERVE = (
    "import os, signal, sys; from pathlib import Path; "
    "from rgcds.config import load_settings; from rgcds.commands.serve import build_daemon; "
    "cfg = Path(sys.argv[1]); d = build_daemon(load_settings(cfg), cfg); "
    "d.processor = lambda job: os.kill(os.getpid(), signal.SIGKILL); "
    "d.run_forever()"
)


def _state(db: Path, study: str) -> tuple[str, int, str | None] | None:
    if not db.exists():
        return None
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        row = con.execute(
            "SELECT state, attempts, reason FROM jobs WHERE study_uid=? ORDER BY job_id DESC",
            (study,),
        ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), row[2])


def test_crashing_study_gets_not_analysed_report_after_max_attempts(tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "root"
    config = write_serve_config(
        tmp_path / "rgcds.toml", root, port,
        '[trigger]\nstable_seconds = 0.5\npoll_seconds = 0.2\n[processing]\nmax_attempts = 3\n',
    )
    series = make_mr_series(slices=2, rows=16, cols=16)
    study = str(series[0].StudyInstanceUID)
    files = saved_files(series, tmp_path)
    db = job_store_path(root)
    target = Peer("127.0.0.1", port, AET, calling_ae_title=SCANNER, timeout=5.0)

    def up() -> bool:
        return answers_echo(port)

    exits = []
    for start in range(1, 5):
        proc = subprocess.Popen([sys.executable, "-c", _CRASHING_SERVE, str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_for(lambda p=proc: up() or p.poll() is not None, timeout=60)
            if start == 1:
                assert all(r.status == 0 for r in store_files(target, files))
            if start <= 3:  # claimed, attempted, and the study kills the daemon
                proc.wait(timeout=60)
                exits.append(proc.returncode)
                state = _state(db, study)
                assert state is not None and state[:2] == ("processing", start), state
            else:  # the claim after the third: no fourth attempt, the fallback report
                assert wait_for(
                    lambda: (_state(db, study) or ("",))[0] in ("exporting", "done"),
                    timeout=60,
                ), _state(db, study)
                assert proc.poll() is None  # the daemon lives on
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    assert exits == [-9, -9, -9]
    state = _state(db, study)
    assert state is not None
    assert state[1] == 4 and state[2] is not None and "AttemptsExhaustedError" in state[2]
    with JobStore(db) as jobs:
        job = jobs.latest_job(study)
        assert job is not None and job.attempts == 4
    reports = list((root / "work" / study).rglob("fallback/*.dcm"))
    assert len(reports) == 1
    texts = " ".join(str(i.TextValue) for i in pydicom.dcmread(reports[0]).ContentSequence
                     if "TextValue" in i)
    assert "started 3 times" in texts and "did not finish" in texts
