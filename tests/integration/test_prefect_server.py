"""Scale-out (issue #8): a study processed by a real Prefect server and a process worker.

Everything runs on loopback, as ``docs/operations.md`` describes it for production, with
SQLite in place of PostgreSQL:

* ``prefect server start`` in a subprocess, with its own ``PREFECT_HOME`` and database;
* the work pool ``rgcds`` (``prefect work-pool create rgcds --type process``, the CLI) and
  the GPU concurrency limit (what ``prefect concurrency-limit create rgcds-gpu 1`` does,
  through the API);
* the deployment ``process-study/rgcds`` from this checkout
  (``flow.from_source(...).deploy(...)``: no image, the worker runs the checkout's code);
* ``prefect worker start --pool rgcds --type process`` in a subprocess;
* the phantom study ingested into a spool and job store the way the listener does, its job
  claimed, and handed to :func:`rgcds.service.processing.make_processor` in ``server`` mode
  with ``prefect_api_url`` from the configuration file (the same TOML file the worker's
  flow run reads).

The job must reach ``done`` (no destinations), moved there by the flow run on the worker;
the flow run must be ``Completed`` and its ``segment`` task carry the ``rgcds-gpu`` tag.
If the Prefect server does not start within two minutes, the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rgcds.config import load_settings
from rgcds.dicom.parse import read_instance_meta
from rgcds.store import Ingestor, JobState, JobStore, Spool, job_store_path
from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS = REPO_ROOT / "models"
SERVER_START_S = 120.0
FLOW_RUN_S = 600.0


def _prefect_cli() -> str:
    candidate = Path(sys.executable).parent / "prefect"
    found = str(candidate) if candidate.exists() else shutil.which("prefect")
    if found is None:
        pytest.skip("the prefect command-line tool is not installed next to this Python")
    return found


def _tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    """Stop a subprocess started in its own session, and its children, by its group id."""
    if proc is None or proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class PrefectServer:
    """A Prefect server on loopback and the environment its clients need."""

    api_url: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]

    def client_env(self, home: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        home.mkdir(parents=True, exist_ok=True)
        env.update(
            PREFECT_HOME=str(home),
            PREFECT_API_URL=self.api_url,
            PREFECT_LOGGING_LEVEL="INFO",
            PREFECT_CLI_PROMPT="false",
            PYTHONUNBUFFERED="1",
        )
        return env

    def wait_ready(self) -> None:
        """Wait for ``/api/health``; skip the test if the server does not come up."""
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if self.process.poll() is not None:
                pytest.skip(f"the Prefect server exited at start-up:\n{_tail(self.log)}")
            try:
                with urllib.request.urlopen(self.api_url + "/health", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.skip(f"the Prefect server did not answer /api/health within "
                            f"{SERVER_START_S:.0f} s:\n{_tail(self.log)}")
            time.sleep(0.5)

    def cli(self, *args: str, home: Path) -> subprocess.Popen[bytes]:
        env = self.client_env(home)
        out = (home / f"cli-{args[0]}.log").open("wb")
        return subprocess.Popen(
            [_prefect_cli(), *args], env=env, cwd=home,
            stdout=out, stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` on a free loopback port (SQLite, no UI), for this module.

    Not waited for here (call :meth:`PrefectServer.wait_ready`): the server starts while
    the test prepares its study.
    """
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_API_HOST="127.0.0.1",
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    # Services: the task run recorder (task runs are recorded from events) and the
    # repossessor (concurrency leases) are needed; the rest only take CPU from the flow run.
    for service in ("SCHEDULER", "LATE_RUNS", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP",
                    "CLEANUP_RECONCILER", "TRIGGERS", "FOREMAN"):
        env[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "false"
    log = home / "server.log"
    proc = subprocess.Popen(
        [_prefect_cli(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=home, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield PrefectServer(f"http://127.0.0.1:{port}/api", home, log, proc)
    finally:
        _stop(proc)


def _api(server: PrefectServer) -> Any:
    """Prefect settings pointing this process's client at the test server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: server.api_url})


def _ingest(study_dir: Path, root: Path) -> tuple[JobStore, int]:
    """Store every file of the study as the listener would, then queue its job."""
    spool = Spool(root)
    jobs = JobStore(job_store_path(root))
    ingest = Ingestor(spool, jobs)
    for path in sorted(study_dir.rglob("*.dcm")):
        data = path.read_bytes()
        ingest(read_instance_meta(data), data)
    # The indexer thread records instances after the journal append: every instance is
    # indexed before the job is queued (a late one would set it back to receiving).
    assert ingest.close(), "the ingestor did not index every instance"
    (job,) = jobs.jobs()
    jobs.mark(job.job_id, JobState.STABLE)
    jobs.mark(job.job_id, JobState.QUEUED)
    return jobs, job.job_id


def test_study_processed_by_prefect_server_and_worker(
    prefect_server: PrefectServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from pipelines.process_study import GPU_TAG
    from rgcds.service.processing import make_processor

    server = prefect_server
    # The phantom (session fixture) is generated while the server starts, then ingested.
    phantom_study = request.getfixturevalue("phantom_study")
    root = tmp_path / "storage"
    config = tmp_path / "rgcds.toml"
    # One file for the daemon and the workers (on production: the same path on every
    # machine, the storage root on shared storage).
    config.write_text(
        f"""
[storage]
root = "{root}"
min_free_bytes = 0

[inference]
models_root = "{MODELS}"

[metrics]
enabled = false

[logging]
level = "INFO"
format = "json"

[processing]
mode = "server"
prefect_api_url = "{server.api_url}"
deployment = "process-study/rgcds"
work_pool = "rgcds"
stage_retries = 0
"""
    )
    settings = load_settings(config)
    assert settings.processing.mode == "server"
    server.wait_ready()

    # The work pool with the documented command (it fills in the process worker's job
    # template); the GPU limit through the API (what `prefect concurrency-limit create
    # rgcds-gpu 1` does) while the command runs.
    cli_home = tmp_path / "cli"
    pool = server.cli("work-pool", "create", settings.processing.work_pool, "--type", "process",
                      home=cli_home)
    with _api(server), get_client(sync_client=True) as client:
        client.create_concurrency_limit(
            tag=GPU_TAG, concurrency_limit=settings.processing.gpu_concurrency_limit)
    assert pool.wait(timeout=120) == 0, _tail(cli_home / "cli-work-pool.log")

    worker_home = tmp_path / "worker"
    worker_env = server.client_env(worker_home)
    worker_env.update(PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5")
    worker_log = worker_home / "worker.log"
    worker = subprocess.Popen(
        [_prefect_cli(), "worker", "start", "--pool", settings.processing.work_pool,
         "--type", "process", "--name", "rgcds-test-worker", "--limit", "1"],
        env=worker_env, cwd=worker_home, stdout=worker_log.open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    jobs, job_id = _ingest(phantom_study.series[0].directory.parent, root)
    try:
        with _api(server):
            flow_name, _, deployment_name = settings.processing.deployment.partition("/")
            remote = flow.from_source(
                source=str(REPO_ROOT), entrypoint="pipelines/process_study.py:process_study"
            )
            assert remote.name == flow_name
            remote.deploy(
                name=deployment_name, work_pool_name=settings.processing.work_pool,
                print_next_steps=False, ignore_warnings=True,
            )

        claimed = jobs.claim_next()
        assert claimed is not None and claimed.job_id == job_id

        # What a daemon worker thread does with a claimed job in server mode: submit, return.
        # No Prefect API in this process's settings: prefect_api_url must come from the file.
        process = make_processor(settings, config, lambda: jobs)
        started = time.monotonic()
        try:
            process(claimed)
        except Exception as exc:
            pytest.fail(f"server mode did not submit a flow run to processing.prefect_api_url "
                        f"({server.api_url}): {type(exc).__name__}: {exc}")
        assert time.monotonic() - started < 60, "server mode must not wait for the flow run"
        assert jobs.get(job_id).state is JobState.PROCESSING

        with _api(server), get_client(sync_client=True) as client:
            runs = client.read_flow_runs()
            assert len(runs) == 1, runs
            run_id = runs[0].id
            assert runs[0].parameters["job_id"] == job_id
            assert runs[0].parameters["config_path"] == str(config)

            deadline = time.monotonic() + FLOW_RUN_S
            run = client.read_flow_run(run_id)
            while time.monotonic() < deadline:
                run = client.read_flow_run(run_id)
                if run.state is not None and run.state.is_final():
                    break
                if worker.poll() is not None:
                    pytest.fail(f"the Prefect worker exited:\n{_tail(worker_log)}")
                time.sleep(2)
            assert run.state is not None and run.state.is_completed(), (
                f"flow run {run.state!r}\n--- worker ---\n{_tail(worker_log, 120)}"
            )
            tasks = {t.name: t for t in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))}

        segment = [t for name, t in tasks.items() if name.startswith("segment")]
        assert segment and GPU_TAG in segment[0].tags, sorted(tasks)
        job = jobs.get(job_id)
        assert job.state is JobState.DONE, (job.state, job.reason, _tail(worker_log))
        work_dir = root / "work" / job.study_uid / str(job_id)
        assert any(work_dir.rglob("*.dcm")), "the worker wrote no result objects"
        worker_text = worker_log.read_text(errors="replace")
        assert "study indexed" in worker_text  # the flow run's logs reach the worker's output
        for part in phantom_study.patient_name.replace("^", " ").split():
            assert part not in worker_text
        assert phantom_study.patient_id not in worker_text
    finally:
        jobs.close()
        _stop(worker)
