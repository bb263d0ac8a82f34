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
from rgcds.dicom.commitment import StorageCommitment
from rgcds.dicom.errors import DatasetMismatchError, DuplicateInstanceError
from rgcds.dicom.parse import InstanceMeta
from rgcds.dicom.scp import StorageSCP
from rgcds.exceptions import InvalidUIDError, OutOfResourcesError, StorageError
from rgcds.service.loops import AttemptsExhaustedError as AttemptsExhaustedError
from rgcds.service.loops import DaemonLoops
from rgcds.service.metrics import Metrics
from rgcds.service.notify import SystemdNotifier
from rgcds.service.pairing import installation_secret
from rgcds.service.trigger import StudyTrigger
from rgcds.store.ingest import Ingestor, IngestOutcome
from rgcds.store.jobs import JobStore, job_store_path
from rgcds.store.records import Job, JobState
from rgcds.store.reserve import open_job_store
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


class Daemon(DaemonLoops):
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


__all__ = [
    "TRIGGER_STALL_SECONDS", "Daemon", "Deliverer", "FailureReporter", "Processor",
    "StudyQueuedHook",
]
