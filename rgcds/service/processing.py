"""The daemon's processing slot: a queued job becomes a ``process-study`` flow run.

``embedded`` mode runs the flow in this process (Prefect's local ephemeral API, SQLite);
``server`` mode submits a flow run to the configured Prefect deployment and returns; a
worker on another machine (storage root on shared storage) runs it and moves the job on.
The flow (:mod:`rgcds.pipeline.flow`) is imported by its module path when the first job is
processed, so that importing this module loads neither Prefect nor the numeric core.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from rgcds.config import Settings
from rgcds.prefect_env import keep_prefect_offline, tie_ephemeral_server
from rgcds.service.flow import FlowParameters, FlowResult
from rgcds.service.metrics import Metrics
from rgcds.service.pairing import find_partner, no_partner_note, retrieve_partner
from rgcds.store import Job, JobState, JobStore

logger = structlog.get_logger(__name__)

#: The flow the daemon runs, imported by module path when the first job is processed.
FLOW_ENTRYPOINT = "rgcds.pipeline.flow:process_study"


def load_entrypoint(entrypoint: str = FLOW_ENTRYPOINT) -> Callable[..., Any]:
    """Import ``module:attribute``."""
    module_name, _, attribute = entrypoint.partition(":")
    module = importlib.import_module(module_name)
    fn: Callable[..., Any] = getattr(module, attribute)
    return fn


def flow_parameters(
    settings: Settings, config_path: Path | None, jobs: JobStore, job: Job
) -> FlowParameters:
    """The flow run's parameters for ``job`` (paths and ids only, never PHI)."""
    series_dirs = sorted({str(Path(r.path).parent) for r in jobs.instances(job.study_uid)})
    work_dir = settings.storage.root / "work" / job.study_uid / str(job.job_id)
    partner_inputs: list[str] = []
    notes: list[str] = []
    if settings.pairing.enabled:
        window = settings.pairing.window_days
        partner = find_partner(jobs, job.study_uid, window)
        if partner is None and settings.query is not None:
            partner = retrieve_partner(settings, jobs, job.study_uid)
        if partner is not None:
            partner_inputs = [str(p) for p in partner.inputs]
            notes.append(partner.note())
        else:
            note = no_partner_note(jobs.study_modalities(job.study_uid), window)
            if note is not None:
                notes.append(note)
    return FlowParameters(
        inputs=tuple(series_dirs),
        work_dir=str(work_dir),
        config_path=str(config_path) if config_path is not None else None,
        job_id=job.job_id,
        correlation_id=f"job-{job.job_id}",
        partner_inputs=tuple(partner_inputs),
        notes=tuple(notes),
    )


def make_failure_reporter(
    settings: Settings, jobs: Callable[[], JobStore]
) -> Callable[[Job, Exception], bool]:
    """The daemon's ``on_failure``: the fallback report of a job whose flow crashed."""
    from rgcds.pipeline.delivery import report_failure

    def report(job: Job, exc: Exception) -> bool:
        work_dir = settings.storage.root / "work" / job.study_uid / str(job.job_id)
        return report_failure(settings, jobs(), job.job_id, work_dir, exc)

    return report


def make_processor(
    settings: Settings,
    config_path: Path | None,
    jobs: Callable[[], JobStore],
    metrics: Metrics | None = None,
    entrypoint: str = FLOW_ENTRYPOINT,
) -> Callable[[Job], None]:
    """The callable the daemon's workers run for each claimed job.

    ``jobs`` returns the daemon's job store (opened when the daemon starts).
    """
    keep_prefect_offline()  # before the flow (or run_deployment) imports Prefect

    def process(job: Job) -> None:
        store = jobs()
        for_study = store.retrieved_for(job.study_uid)
        if for_study is not None:
            store.mark(
                job.job_id, JobState.DONE,
                f"retrieved from the query PACS as the partner of study {for_study}; "
                "analysed with it",
            )
            logger.info("retrieved partner study closed", job_id=job.job_id)
            return
        parameters = flow_parameters(settings, config_path, jobs(), job)
        if settings.processing.mode == "server":
            from prefect.deployments import run_deployment
            from prefect.settings import PREFECT_API_URL, temporary_settings

            api_url = settings.processing.prefect_api_url
            # Thread-local: the daemon's other threads keep their own API.
            with temporary_settings(updates={PREFECT_API_URL: api_url} if api_url else {}):
                run = run_deployment(
                    name=settings.processing.deployment,
                    parameters=parameters.as_kwargs(),
                    timeout=0,
                )
            run_id = str(getattr(run, "id", ""))
            logger.info("flow run submitted", job_id=job.job_id, flow_run_id=run_id)
            return
        tie_ephemeral_server()  # a SIGKILLed daemon leaves no Prefect server behind
        result: FlowResult = load_entrypoint(entrypoint)(
            **parameters.as_kwargs(), settings=settings
        )
        if metrics is not None:
            for stage, seconds in result.stage_seconds.items():
                metrics.stage_seconds.labels(stage).observe(float(seconds))
        logger.info(
            "study processed", job_id=job.job_id, status=result.status,
            objects=result.objects, queued=result.queued,
        )

    return process


__all__ = [
    "FLOW_ENTRYPOINT", "flow_parameters", "load_entrypoint", "make_failure_reporter",
    "make_processor",
]
