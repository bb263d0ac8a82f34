"""The rgcds daemon: listener, trigger, processing workers and result delivery in one process.

``Daemon(settings).run_forever()`` is what ``rgcds serve`` does. Two slots plug in the
later stages without touching the listener:

``processor``
    A :data:`Processor`, ``process(job) -> None``. The daemon runs
    ``processing.concurrent_studies`` worker threads; each claims the oldest queued job with
    :meth:`JobStore.claim_next` (the job is then ``processing``) and calls the processor
    with it. The processor moves the job on (``exporting``/``done``, or ``failed`` with a
    reason). If it raises, the daemon marks the job ``failed`` with the exception's message
    and counts ``rgcds_studies_failed`` (label ``stage``: the exception's ``stage``
    attribute, else ``"unknown"``); if it returns with the job ``exporting`` or ``done``,
    the daemon counts ``rgcds_studies_processed``. A job the processor leaves in
    ``processing`` (for example handed to a Prefect server) is left alone. Without a
    processor, queued jobs wait in the store.
``on_failure``
    A :data:`FailureReporter`, ``on_failure(job, exc) -> bool``, called when the processor
    raised (not during shutdown): it writes and queues a fallback "not analysed" report and
    moves the job to ``exporting``, returning ``True``; the job is then not marked
    ``failed``, so no study ends without a report. An exception with ``reported = True``
    (the flow already queued its fallback) is not reported twice.
``processing.max_attempts``
    Each claim counts as an attempt (:attr:`Job.attempts`). A job claimed more often than
    that (every earlier attempt ended with the daemon stopped or crashed mid-study, and
    :meth:`JobStore.recover` re-queued it) is not processed again: it gets the fallback
    "not analysed" report with :class:`AttemptsExhaustedError`, so a study that crashes the
    daemon cannot loop under ``Restart=on-failure``. A graceful stop's interruption does not
    count.
``deliver``
    A :data:`Deliverer`, ``deliver() -> None``, called every ``export.poll_seconds`` (and
    soon after :meth:`Daemon.wake_delivery`) in its own thread; its exceptions are logged.

:attr:`Daemon.on_study_queued` is still called with each newly queued job (notification
only; :meth:`JobStore.claim_next` is the source of truth).

Operations: Prometheus metrics on ``metrics.host:port`` (when enabled); the systemd notify
protocol (``READY=1`` once the listener is up, ``STATUS=`` lines, ``WATCHDOG=1`` at half of
``WATCHDOG_USEC`` while the listener and trigger are healthy, ``STOPPING=1``); a graceful
stop on SIGTERM/SIGINT: stop accepting associations, let in-flight stores finish, let
running processor calls finish (a job still ``processing`` when the store closes is
re-queued by :meth:`JobStore.recover` at the next start), stop delivery, close the store.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import start_http_server

from rgcds.config import Settings
from rgcds.dicom.commitment import ReportPeer, StorageCommitment
from rgcds.dicom.errors import DatasetMismatchError, DuplicateInstanceError
from rgcds.dicom.parse import InstanceMeta
from rgcds.dicom.scp import StorageSCP
from rgcds.exceptions import InvalidUIDError, OutOfResourcesError, RgcdsError, StorageError
from rgcds.service.metrics import Metrics
from rgcds.service.notify import SystemdNotifier
from rgcds.service.pairing import installation_secret
from rgcds.service.trigger import StudyTrigger
from rgcds.store.ingest import Ingestor, IngestOutcome
from rgcds.store.jobs import JobStore, job_store_path
from rgcds.store.records import InvalidTransitionError, Job, JobState, UnknownJobError
from rgcds.store.reserve import ensure_reserve, open_job_store
from rgcds.store.spool import Spool

logger = structlog.get_logger(__name__)

StudyQueuedHook = Callable[[Job], None]
"""Notification that a job was queued (called in the trigger's thread)."""

Processor = Callable[[Job], None]
"""Processes one claimed (``processing``) job and moves it on; see the module docstring."""

Deliverer = Callable[[], None]
"""Delivers the due outbox items once; see the module docstring."""

FailureReporter = Callable[[Job, Exception], bool]
"""Queues the fallback report of a job whose processor raised; see the module docstring."""

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


TRIGGER_STALL_SECONDS = 60.0
"""A trigger round older than this (or 5 poll periods, if longer) stops the watchdog pings."""


class _CountingSink:
    """The listener's sink: the ingestor, counting stored and refused instances."""

    def __init__(self, ingest: Ingestor, metrics: Metrics) -> None:
        self._ingest = ingest
        self._metrics = metrics

    def __call__(self, meta: InstanceMeta, data: bytes) -> IngestOutcome:
        try:
            outcome = self._ingest(meta, data)
        except BaseException as exc:
            self._metrics.instances_rejected.labels(_reject_reason(exc)).inc()
            raise
        if outcome is not IngestOutcome.IGNORED:
            self._metrics.instances_received.inc()
        return outcome


def _reject_reason(exc: BaseException) -> str:
    if isinstance(exc, DuplicateInstanceError):
        return "duplicate"
    if isinstance(exc, OutOfResourcesError):
        return "out_of_resources"
    if isinstance(exc, DatasetMismatchError | InvalidUIDError):
        return "invalid"
    if isinstance(exc, StorageError):
        return "storage"
    return "error"


class Daemon:
    """Assemble spool, job store, storage SCP, trigger, workers; start and stop them in order.

    Parameters
    ----------
    settings
        The loaded settings.
    on_study_queued
        Notification hook, called with each job the trigger queues (and at start with every
        job already queued).
    port
        Override ``listener.port`` (tests pass a free port).
    processor
        The processing slot (see the module docstring); may also be set as an attribute
        before :meth:`start`.
    deliver
        The delivery slot (see the module docstring); may also be set before :meth:`start`.
    metrics
        The metrics object (a new one by default).
    notifier
        The systemd notifier (from ``$NOTIFY_SOCKET`` by default).
    """

    def __init__(
        self,
        settings: Settings,
        on_study_queued: StudyQueuedHook | None = None,
        *,
        port: int | None = None,
        processor: Processor | None = None,
        deliver: Deliverer | None = None,
        on_failure: FailureReporter | None = None,
        metrics: Metrics | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.on_study_queued = on_study_queued
        self.processor = processor
        self.deliver = deliver
        self.on_failure = on_failure
        self.metrics = metrics if metrics is not None else Metrics()
        self.notifier = notifier if notifier is not None else SystemdNotifier()
        self._port = port
        self._stop_event = threading.Event()  # run_forever should return
        self._shutdown = threading.Event()  # background threads should finish
        self._work = threading.Event()  # a job may be waiting
        self._deliver_now = threading.Event()
        self._threads: list[threading.Thread] = []
        self._workers: list[threading.Thread] = []
        self._trigger_thread: threading.Thread | None = None
        self._deliver_thread: threading.Thread | None = None
        self._last_round = 0.0
        self._last_status = ""
        self._metrics_server: WSGIServer | None = None
        self.spool: Spool | None = None
        self.ingest: Ingestor | None = None
        self.jobs: JobStore | None = None
        self.scp: StorageSCP | None = None
        self.commitment: StorageCommitment | None = None
        self.trigger: StudyTrigger | None = None

    # -- properties ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The listener's bound port (after :meth:`start`)."""
        return self.scp.port if self.scp is not None else self.settings.listener.port

    @property
    def metrics_port(self) -> int | None:
        """The bound metrics port, or ``None`` when metrics are not served."""
        if self._metrics_server is None:
            return None
        return int(self._metrics_server.server_address[1])

    @property
    def db_path(self) -> Path:
        """The job store file."""
        return job_store_path(self.settings.storage.root)

    @property
    def shutting_down(self) -> bool:
        """Whether :meth:`stop` has begun; a long processor may poll it to stop early."""
        return self._shutdown.is_set()

    def healthy(self, *, probe: bool = True) -> bool:
        """Whether the listener answers and the trigger loop is making rounds.

        With ``probe`` (the default, what the watchdog uses) the listener is asked itself:
        :meth:`StorageSCP.probe` associates over loopback and sends a C-ECHO, so a listener
        whose threads are wedged is unhealthy even though its socket is still open.
        """
        if self.scp is None or not self.scp.is_running:
            return False
        t = self._trigger_thread
        if t is None or not t.is_alive():
            return False
        stall = max(TRIGGER_STALL_SECONDS, 5 * self.settings.trigger.poll_seconds)
        if time.monotonic() - self._last_round >= stall:
            return False
        return not probe or self.scp.probe()

    # -- hooks --------------------------------------------------------------------------

    def _queued(self, job: Job) -> None:
        self._work.set()
        hook = self.on_study_queued
        if hook is not None:
            hook(job)

    def wake_delivery(self) -> None:
        """Ask the delivery thread to run soon (e.g. after results were added)."""
        self._deliver_now.set()

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Open spool and job store, resume, start listener, trigger, workers, delivery.

        Sends ``READY=1`` to systemd once everything runs.

        Raises
        ------
        StorageError
            If the spool or job store cannot be opened, or the port not bound.
        ConfigError
            If TLS is misconfigured.
        """
        storage = self.settings.storage
        self._stop_event.clear()
        self._shutdown.clear()
        self.spool = Spool(storage.root)
        self.spool.clean_incoming()
        self.jobs = open_job_store(storage.root)  # a full disk: releases the reserve
        self.jobs.recover()
        try:  # the patient-key secret, created on the first start (docs/operations.md)
            installation_secret(storage.root)
        except (OSError, ValueError) as exc:
            logger.warning("patient key secret unavailable; PET/MR pairing waits for it",
                           error=str(exc))
        ingest = self.ingest = Ingestor(
            self.spool, self.jobs, storage.duplicate_policy, storage.min_free_bytes,
            durability=storage.durability,
        )  # replays the spool journal a crash left, before the listener starts
        self._keep_reserve()
        self.commitment = StorageCommitment(self._held, ingest.flush, self._report_peer)
        self.scp = StorageSCP(
            self.settings.listener, _CountingSink(ingest, self.metrics), port=self._port,
            on_release=ingest.flush, commitment=self.commitment,
        )
        self.trigger = StudyTrigger(
            self.jobs, self.settings.trigger,
            busy_studies=self.scp.busy_studies, on_queued=self._queued,
        )
        try:
            self.scp.start()
        except BaseException:
            ingest.close()
            self.jobs.close()
            raise
        self._start_metrics()
        for job in self.jobs.jobs([JobState.QUEUED]):
            self.trigger.announce(job)
        self._work.set()
        self._last_round = time.monotonic()
        self._trigger_thread = self._spawn(self._trigger_loop, "rgcds-trigger")
        if self.processor is not None:
            n = self.settings.processing.concurrent_studies
            self._workers = [self._spawn(self._worker_loop, f"rgcds-worker-{i}") for i in range(n)]
        else:
            logger.info("no processor plugged in: queued studies wait in the job store")
        if self.deliver is not None:
            self._deliver_thread = self._spawn(self._deliver_loop, "rgcds-deliver")
        interval = self.notifier.watchdog_interval()
        if interval is not None:
            self._spawn(lambda: self._watchdog_loop(interval), "rgcds-watchdog")
        self._last_status = self._status_line()
        self.notifier.ready(self._last_status)
        logger.info("daemon started", port=self.port, metrics_port=self.metrics_port,
                    workers=len(self._workers), delivery=self.deliver is not None,
                    watchdog_seconds=interval)

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _start_metrics(self) -> None:
        m = self.settings.metrics
        if not m.enabled:
            return
        try:
            server, _ = start_http_server(m.port, addr=m.host, registry=self.metrics.registry)
        except OSError as exc:
            # Metrics are for operations; failing to serve them must not stop DICOM intake.
            logger.error("metrics endpoint not started", host=m.host, port=m.port,
                         error=exc.strerror or str(exc))
            return
        self._metrics_server = server
        logger.info("metrics endpoint started", host=m.host, port=self.metrics_port)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop gracefully; sends ``STOPPING=1``.

        In order: stop accepting and let in-flight stores finish (up to ``timeout``), stop
        the trigger, let running processor calls finish (up to ``timeout``; a job still
        ``processing`` after that is re-queued at the next start), stop delivery, close the
        job store and the metrics endpoint.
        """
        self.notifier.stopping()
        self._shutdown.set()
        self._work.set()
        self._deliver_now.set()
        if self.scp is not None:
            self.scp.stop(timeout)
        if self._trigger_thread is not None:
            self._trigger_thread.join(timeout)
            self._trigger_thread = None
        if self.trigger is not None:
            self.trigger.stop()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        still = [w.name for w in self._workers if w.is_alive()]
        if still:
            logger.warning("processing still running at shutdown; its job resumes at next start",
                           workers=still)
        self._workers = []
        if self._deliver_thread is not None:
            self._deliver_thread.join(max(1.0, deadline - time.monotonic()))
            self._deliver_thread = None
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(1.0)
        self._threads = []
        if self.ingest is not None:
            self.ingest.close(timeout)  # index and checkpoint what the listener stored
            self.ingest = None
        if self.jobs is not None:
            self.jobs.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        logger.info("daemon stopped")

    def request_stop(self) -> None:
        """Ask :meth:`run_forever` to return (thread- and signal-safe)."""
        self._stop_event.set()

    def run_forever(self) -> None:
        """Start, wait for SIGTERM/SIGINT (or :meth:`request_stop`), then stop gracefully."""

        def _handler(signum: int, frame: FrameType | None) -> None:
            logger.info("signal received, stopping", signal=signal.Signals(signum).name)
            self._stop_event.set()

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, _handler)
        try:
            self.start()
            while not self._stop_event.wait(0.2):
                pass
        finally:
            self.stop()
            for sig, old in previous.items():
                signal.signal(sig, old)

    # -- background loops ---------------------------------------------------------------

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


__all__ = [
    "TRIGGER_STALL_SECONDS", "Daemon", "Deliverer", "FailureReporter", "Processor",
    "StudyQueuedHook",
]
