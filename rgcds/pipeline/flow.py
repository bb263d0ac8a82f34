"""The Prefect flow ``process-study``: one study, a task per stage. Orchestration only.

Every stage is a function of :mod:`rgcds.pipeline.stages`; :func:`rgcds.pipeline.run_study`
decides the order and the "not analysed" path. This flow runs them as Prefect tasks (retries
only on stages whose failure can be transient), then queues the results in the outbox.

Embedded mode: ``rgcds serve`` imports this module (by its path,
:data:`rgcds.service.processing.FLOW_ENTRYPOINT`) and calls :func:`process_study`
in-process with Prefect's local ephemeral API. Server mode: the same flow is deployed to a
Prefect server from its entrypoint file ``pipelines/process_study.py`` (see
``docs/operations.md``) and run by workers on other machines with the storage root on
shared storage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from rgcds.config import Settings, load_settings
from rgcds.logging import bind_study, configure_logging
from rgcds.pipeline import StudyContext, StudyOutcome, run_study
from rgcds.pipeline.delivery import export, report_failure
from rgcds.service.flow import FlowResult
from rgcds.store import JobState, JobStore, job_store_path

T = TypeVar("T")

#: Stages whose failure may pass (shared storage hiccups, a busy GPU): retried.
TRANSIENT_STAGES = frozenset({"index", "segment", "export"})
#: Tag of the GPU-bound stage; bound it with ``prefect concurrency-limit create rgcds-gpu N``.
GPU_TAG = "rgcds-gpu"


class PrefectStageRunner:
    """Runs each stage as a Prefect task (no result caching: stages keep their own)."""

    def __init__(self, retries: int) -> None:
        self.retries = retries

    def __call__(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        stage = task(  # type: ignore[call-overload]
            fn,
            name=name,
            cache_policy=NO_CACHE,
            persist_result=False,
            retries=self.retries if name in TRANSIENT_STAGES else 0,
            retry_delay_seconds=5,
            tags=[GPU_TAG] if name == "segment" else [],
            log_prints=False,
        )
        result: T = stage(*args)
        return result


@flow(name="process-study", persist_result=False, log_prints=False)
def process_study(
    inputs: list[str],
    work_dir: str,
    config_path: str | None = None,
    job_id: int = 0,
    correlation_id: str = "",
    settings: Settings | None = None,
    partner_inputs: list[str] | None = None,
    notes: list[str] | None = None,
) -> FlowResult:
    """Process one study and queue its results for every destination.

    Parameters
    ----------
    inputs
        DICOM files or folders of the study (on storage the worker can read).
    work_dir
        The run's work directory.
    config_path
        The TOML configuration (``RGCDS_*`` variables apply as well).
    job_id
        The job store's job; 0 for an offline run (nothing queued).
    correlation_id
        Carried on every log line.
    settings
        The daemon's settings (embedded mode: the daemon's own object, passed once);
        otherwise they are read from ``config_path`` on the worker.
    partner_inputs
        Series folders of the paired study of the same patient (MR for a PET/CT study, or
        the reverse), analysed with ``inputs``.
    notes
        Sentences for the report (how the study was paired).
    """
    config = settings if settings is not None else load_settings(config_path)
    if settings is None:
        # A worker's flow run (server mode): set up rgcds' PHI-guarded logging here.
        configure_logging(config.logging.level, config.logging.format)
    bind_study(correlation_id or f"job-{job_id}")
    ctx = StudyContext(
        inputs=tuple(Path(p) for p in inputs),
        work_dir=Path(work_dir),
        settings=config,
        job_id=job_id,
        correlation_id=correlation_id,
        partner_inputs=tuple(Path(p) for p in partner_inputs or ()),
        notes=tuple(notes or ()),
    )
    try:
        outcome = run_study(ctx, PrefectStageRunner(config.processing.stage_retries))
        queued = 0
        if job_id:
            jobs = JobStore(job_store_path(config.storage.root))
            try:
                runner = PrefectStageRunner(config.processing.stage_retries)
                queued = runner(
                    "export", export, config, jobs, job_id, list(outcome.written),
                    _job_reason(outcome),
                )
            except Exception as exc:
                if not hasattr(exc, "stage"):
                    exc.stage = "export"  # type: ignore[attr-defined]
                raise
            finally:
                jobs.close()
    except Exception as exc:
        if job_id and settings is None:
            # On a worker nobody else watches the run: send the fallback report, or record
            # the failure in the job store.
            _report_or_fail(config, job_id, Path(work_dir), exc)
        raise
    return FlowResult(
        status=outcome.status,
        reason=outcome.reason,
        objects=len(outcome.written),
        queued=queued,
        stage_seconds=dict(outcome.stage_seconds),
    )


def _job_reason(outcome: StudyOutcome) -> str | None:
    """The job's recorded reason: why a study was not analysed, with the failed step."""
    if outcome.status == "complete":
        return None
    if outcome.failed_stage:
        return (f"not analysed: step '{outcome.failed_stage}' failed "
                f"({outcome.error_type or 'error'})")
    return f"not analysed: {outcome.reason}"


def _report_or_fail(config: Settings, job_id: int, work_dir: Path, exc: Exception) -> None:
    jobs = JobStore(job_store_path(config.storage.root))
    try:
        if jobs.get(job_id).state is JobState.PROCESSING and report_failure(
            config, jobs, job_id, work_dir, exc
        ):
            exc.reported = True  # type: ignore[attr-defined]
            return
        jobs.mark(job_id, JobState.FAILED, f"{getattr(exc, 'stage', 'processing')}: {exc}")
    finally:
        jobs.close()


__all__ = ["GPU_TAG", "TRANSIENT_STAGES", "PrefectStageRunner", "process_study"]
