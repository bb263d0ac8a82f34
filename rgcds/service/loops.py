"""The daemon's background loops: trigger, workers, delivery, watchdog, and their callbacks.

:class:`DaemonLoops` is mixed into :class:`rgcds.service.daemon.Daemon`, which documents
them (see its module doc); its log lines keep the daemon's logger name.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from rgcds.dicom.commitment import ReportPeer
from rgcds.exceptions import RgcdsError, StorageError
from rgcds.store.jobs import JobStore
from rgcds.store.records import InvalidTransitionError, Job, JobState, UnknownJobError
from rgcds.store.reserve import ensure_reserve

if TYPE_CHECKING:  # pragma: no cover
    import threading

    from rgcds.config import Settings
    from rgcds.dicom.scp import StorageSCP
    from rgcds.service.daemon import Deliverer, FailureReporter, Processor
    from rgcds.service.metrics import Metrics
    from rgcds.service.notify import SystemdNotifier
    from rgcds.service.trigger import StudyTrigger
    from rgcds.store.ingest import Ingestor

logger = structlog.get_logger(__name__)


class AttemptsExhaustedError(RgcdsError):
    """The job was claimed ``processing.max_attempts`` times and never finished."""

    stage = "processing"

    def __init__(self, attempts: int, limit: int) -> None:
        super().__init__(
            f"processing of this study started {attempts} times and never finished (the "
            f"daemon stopped or crashed during each attempt; processing.max_attempts = "
            f"{limit}); it is not attempted again"
        )
        #: The fallback report's sentence (the radiologist's words, no internal detail).
        self.report_reason = (
            f"Automated analysis was started {attempts} times for this study and did not "
            "finish; it is not attempted again. Read this study without automated results; "
            "the operators see the cause in the service log and with 'rgcds status'."
        )


class DaemonLoops:
    """The background loops and callbacks of :class:`~rgcds.service.daemon.Daemon`."""

    if TYPE_CHECKING:  # what Daemon provides (its __init__ and methods)
        settings: Settings
        processor: Processor | None
        deliver: Deliverer | None
        on_failure: FailureReporter | None
        metrics: Metrics
        notifier: SystemdNotifier
        ingest: Ingestor | None
        jobs: JobStore | None
        scp: StorageSCP | None
        trigger: StudyTrigger | None
        _shutdown: threading.Event
        _work: threading.Event
        _deliver_now: threading.Event
        _last_round: float
        _last_status: str

        @property
        def port(self) -> int: ...

        def healthy(self, *, probe: bool = True) -> bool: ...

        def wake_delivery(self) -> None: ...

    def _counts(self) -> tuple[int, int]:
        assert self.jobs is not None
        queued = len(self.jobs.jobs([JobState.QUEUED]))
        processing = len(self.jobs.jobs([JobState.PROCESSING]))
        return queued, processing

    def _status_line(self, counts: tuple[int, int] | None = None) -> str:
        queued, processing = counts if counts is not None else self._counts()
        return f"listening on :{self.port}; {queued} queued, {processing} processing"

    def _held(self, sop_class_uid: str, sop_instance_uid: str) -> str | None:
        """Storage commitment: ``None`` when the instance is held, else why not."""
        jobs = self.jobs
        if jobs is None:
            return "not running"
        record = jobs.find_instance(sop_instance_uid)
        if record is None:
            return "not held"
        if record.sop_class_uid != sop_class_uid:
            return "class conflict"
        return None

    def _report_peer(self, calling_ae: str) -> ReportPeer | None:
        """Storage commitment: the ``[[destinations]]`` entry with the requester's AE title."""
        for dest in self.settings.destinations:
            if dest.ae_title == calling_ae and not dest.tls.enabled:
                return ReportPeer(
                    host=dest.host, port=dest.port, ae_title=dest.ae_title,
                    calling_ae_title=dest.calling_ae_title or self.settings.listener.ae_title,
                    timeout=self.settings.listener.dimse_timeout,
                )
        return None

    def _keep_reserve(self) -> None:
        """Create the disk reserve when there is room; until then hold its size back.

        Without the reserve, instances are refused that much earlier (``min_free_bytes``
        plus the reserve's size), so the space the reserve needs is kept for it.
        """
        storage = self.settings.storage
        present = ensure_reserve(storage.root, storage.reserve_bytes, storage.min_free_bytes)
        if self.ingest is not None:
            self.ingest.min_free_bytes = storage.min_free_bytes + (
                0 if present else storage.reserve_bytes)

    def _trigger_loop(self) -> None:
        assert self.trigger is not None
        while not self._shutdown.is_set():
            try:
                self._keep_reserve()
                queued = self.trigger.evaluate()
                if queued:
                    self.metrics.studies_received.inc(len(queued))
                    self._work.set()
                counts = self._counts()
                self.metrics.queue_depth.set(counts[0])
                status = self._status_line(counts)
                if status != self._last_status:
                    self._last_status = status
                    self.notifier.status(status)
            except Exception:
                if self._shutdown.is_set():
                    break
                logger.exception("trigger round failed")
            self._last_round = time.monotonic()
            self._shutdown.wait(self.settings.trigger.poll_seconds)

    def _worker_loop(self) -> None:
        poll = self.settings.trigger.poll_seconds
        while not self._shutdown.is_set():
            processor, jobs = self.processor, self.jobs
            if processor is None or jobs is None:
                return
            try:
                job = jobs.claim_next()
            except StorageError:
                if self._shutdown.is_set():
                    return
                logger.exception("claiming a job failed")
                self._shutdown.wait(poll)
                continue
            if job is None:
                self._work.wait(poll)  # woken by the trigger, or poll for outside changes
                self._work.clear()
                continue
            self._work.set()  # another job may be waiting: let the other workers look
            limit = self.settings.processing.max_attempts
            if job.attempts > limit:
                self._processor_failed(jobs, job, AttemptsExhaustedError(job.attempts - 1, limit))
                continue
            self._run_processor(processor, jobs, job)

    def _run_processor(self, processor: Processor, jobs: JobStore, job: Job) -> None:
        log = logger.bind(job_id=job.job_id, study_uid=job.study_uid)
        try:
            processor(job)
        except Exception as exc:
            self._processor_failed(jobs, job, exc)
            return
        try:
            state = jobs.get(job.job_id).state
        except (StorageError, UnknownJobError):
            return
        if state in (JobState.EXPORTING, JobState.DONE):
            self.metrics.studies_processed.inc()
            self.wake_delivery()
        elif state is JobState.FAILED:
            self.metrics.studies_failed.labels("unknown").inc()
        else:
            log.info("processor returned with the job still running elsewhere",
                     state=state.value)

    def _processor_failed(self, jobs: JobStore, job: Job, exc: Exception) -> None:
        log = logger.bind(job_id=job.job_id, study_uid=job.study_uid)
        reason = str(exc) or type(exc).__name__
        try:
            if self._shutdown.is_set():
                # Interrupted by the shutdown: leave it for the next start, not failed.
                jobs.mark(job.job_id, JobState.QUEUED, "interrupted by shutdown",
                          expect=JobState.PROCESSING)
                jobs.refund_attempt(job.job_id)  # a graceful stop is not the study's fault
                log.warning("processing interrupted by shutdown; job re-queued",
                            error=reason)
                return
            if self._report_failure(jobs, job, exc):
                reported = True
            else:
                reported = False
                jobs.mark(job.job_id, JobState.FAILED, reason)
        except InvalidTransitionError:
            log.exception("processor raised after moving its job on", error=reason)
            return
        except StorageError:
            log.exception("processor failed and the job store could not record it; "
                          "the job resumes at next start", error=reason)
            return
        stage = getattr(exc, "stage", None)
        # The log line before the counter: whoever watches the counter sees a failure whose
        # line is already written.
        log.error("processing failed", error=reason, error_type=type(exc).__name__,
                  stage=stage if isinstance(stage, str) else None,
                  fallback_report=reported, exc_info=exc)
        self.metrics.studies_failed.labels(stage if isinstance(stage, str) else "unknown").inc()
        if reported:
            self.wake_delivery()

    def _report_failure(self, jobs: JobStore, job: Job, exc: Exception) -> bool:
        """Queue the fallback report of a failed job; ``True`` when it was queued."""
        if getattr(exc, "reported", False):
            return True
        if self.on_failure is None:
            return False
        try:
            return self.on_failure(job, exc)
        except (StorageError, InvalidTransitionError):
            raise
        except Exception:
            logger.exception("the fallback report could not be queued", job_id=job.job_id)
            return False

    def _deliver_loop(self) -> None:
        poll = self.settings.export.poll_seconds
        while not self._shutdown.is_set():
            deliver = self.deliver
            if deliver is None:
                return
            try:
                deliver()
            except Exception:
                logger.exception("result delivery round failed")
            self._deliver_now.wait(poll)
            self._deliver_now.clear()

    def _watchdog_loop(self, interval: float) -> None:
        while not self._shutdown.wait(interval):
            if self.healthy():
                self.notifier.watchdog()
            else:
                logger.error("daemon unhealthy: withholding the systemd watchdog ping",
                             listener=self.scp is not None and self.scp.is_running)
