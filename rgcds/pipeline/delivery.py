"""Results into the outbox, and the outbox to the PACS: the export stage and the deliverer.

The export stage queues every written object for every destination in the job store's
outbox (same file, same transaction guarantees as the jobs) and moves the job to
``exporting``. The deliverer, run periodically by the daemon, sends what is due and closes
each exporting job: ``done`` when every item was accepted, ``failed`` with the reason when
an item failed permanently.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from rgcds.config import Settings
from rgcds.results.export import (
    NetworkTimeouts,
    NewDelivery,
    RetryPolicy,
    deliver_due,
    enqueue,
)
from rgcds.service.metrics import Metrics
from rgcds.store import JobState, JobStore, OutboxItem, OutboxState

logger = structlog.get_logger(__name__)


class JobStoreOutbox:
    """The job store's ``outbox_*`` methods as the export stage's ``Outbox`` protocol."""

    def __init__(self, jobs: JobStore, batch: int = 500) -> None:
        self.jobs = jobs
        self.batch = batch

    def add(self, item: NewDelivery, now: float | None = None) -> int:
        """Queue a result file (idempotent per job, destination and instance)."""
        return self.jobs.outbox_add(
            item.job_id, item.destination, item.sop_instance_uid, item.path, now=now
        ).item_id

    def due(self, now: float) -> list[OutboxItem]:
        """Pending items whose next attempt is due."""
        return self.jobs.outbox_due(now, limit=self.batch)

    def mark_sent(self, item_id: int) -> None:
        """The destination confirmed the item."""
        self.jobs.outbox_mark_sent(item_id)

    def mark_retry(self, item_id: int, next_attempt_at: float, error: str) -> None:
        """A transient failure; try again later."""
        self.jobs.outbox_mark_retry(item_id, next_attempt_at, error)

    def mark_failed(self, item_id: int, reason: str) -> None:
        """A permanent failure; never retried."""
        self.jobs.outbox_mark_failed(item_id, reason)


def export(
    settings: Settings,
    jobs: JobStore,
    job_id: int,
    written: Iterable[tuple[str, Path]],
    reason: str | None = None,
) -> int:
    """Queue the written objects for every destination and move the job to ``exporting``.

    ``reason`` (a study not analysed: why, and which step failed) is kept as the job's
    last error, which ``rgcds status`` shows.

    Returns
    -------
    int
        The number of outbox items (objects x destinations); 0 when no destination is
        configured, in which case the job is ``done`` at once.
    """
    ids = enqueue(JobStoreOutbox(jobs), list(written), settings.destinations, job_id=job_id)
    job = jobs.get(job_id)
    if job.state is JobState.PROCESSING:
        jobs.mark(job_id, JobState.EXPORTING, reason)
    if not ids:
        jobs.mark(job_id, JobState.DONE, reason)
    logger.info("results queued for export", items=len(ids), job_id=job_id)
    return len(ids)


def report_failure(
    settings: Settings, jobs: JobStore, job_id: int, work_dir: Path, exc: BaseException
) -> bool:
    """After a crash outside the analysis, queue the fallback report and move the job on.

    The flow (or the daemon's processor) failed where no regular "not analysed" report
    could be written. The study still gets a Basic Text SR that says so (built from one
    received instance's header, with pydicom alone), queued like any result; the job goes
    to ``exporting`` with the step and error type as its last error.

    Returns
    -------
    bool
        Whether the fallback report was written and queued (``False`` when no instance
        header could be read; the job is then left for the caller to mark ``failed``).
    """
    from rgcds.pipeline.runner import failure_reason
    from rgcds.results.fallback import write_fallback_report

    step = getattr(exc, "stage", None)
    step = step if isinstance(step, str) else "processing"
    job = jobs.get(job_id)
    # An error may carry its own sentence for the report (e.g. attempts exhausted).
    reason = getattr(exc, "report_reason", None) or failure_reason(step, exc)
    for record in jobs.instances(job.study_uid):
        try:
            written = write_fallback_report(
                Path(record.path), work_dir / "fallback", reason, key=str(job_id)
            )
        except Exception:  # try the next instance's header
            logger.warning("instance header unreadable for the fallback report",
                           job_id=job_id)
            continue
        break
    else:
        return False
    export(
        settings, jobs, job_id, [written],
        f"not analysed: step '{step}' failed ({type(exc).__name__})",
    )
    return True


def retry_policy(settings: Settings) -> RetryPolicy:
    """The export back-off from ``[export]``."""
    return RetryPolicy(
        initial_delay_s=settings.export.initial_backoff_seconds,
        max_delay_s=settings.export.max_backoff_seconds,
        max_attempts=settings.export.max_attempts,
    )


def settle_exporting_jobs(jobs: JobStore) -> None:
    """Close exporting jobs whose outbox items are all settled."""
    for job in jobs.jobs([JobState.EXPORTING]):
        items = jobs.outbox_items(job.job_id)
        if any(i.state is OutboxState.PENDING for i in items):
            continue
        failed = [i for i in items if i.state is OutboxState.FAILED]
        if failed:
            reason = f"{len(failed)} of {len(items)} result object(s) were not delivered: " + (
                failed[0].last_error or "permanent failure"
            )
            jobs.mark(job.job_id, JobState.FAILED, reason)
            logger.warning("export failed", job_id=job.job_id, reason=reason)
        else:
            jobs.mark(job.job_id, JobState.DONE)
            logger.info("study done", job_id=job.job_id, study_uid=job.study_uid)


def make_deliverer(
    settings: Settings, jobs_of: Callable[[], JobStore], metrics: Metrics | None = None
) -> Callable[[], None]:
    """The callable the daemon runs every ``export.poll_seconds``.

    ``jobs_of`` returns the daemon's job store (opened when the daemon starts).
    """
    policy = retry_policy(settings)
    timeouts = NetworkTimeouts(
        acse=settings.listener.acse_timeout,
        dimse=settings.listener.dimse_timeout,
        network=settings.listener.network_timeout,
    )

    def deliver() -> None:
        jobs = jobs_of()
        summary = deliver_due(
            JobStoreOutbox(jobs),
            settings.destinations,
            time.time(),
            policy=policy,
            timeouts=timeouts,
            calling_ae_title=settings.listener.ae_title,  # what the PACS was told we are
        )
        if metrics is not None:
            # Per-destination counts are not in the summary; count under "all".
            if summary.retried:
                metrics.export_retries.labels("all").inc(summary.retried)
            if summary.failed:
                metrics.exports_failed.labels("all").inc(summary.failed)
        if summary.attempted:
            logger.info(
                "delivery round", sent=summary.sent, retried=summary.retried,
                failed=summary.failed, errors=summary.errors,
            )
        settle_exporting_jobs(jobs)

    return deliver


__all__ = [
    "JobStoreOutbox", "export", "make_deliverer", "report_failure", "retry_policy",
    "settle_exporting_jobs",
]
