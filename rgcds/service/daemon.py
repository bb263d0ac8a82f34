"""The rgcds daemon: listener + trigger in one process, with a slot for processing.

``Daemon(settings).run_forever()`` is what ``rgcds serve`` does. A later stage plugs in
processing without touching the listener by setting :attr:`Daemon.on_study_queued` (or
passing it): it is called with each newly queued :class:`~rgcds.store.Job` and should
start (or signal) a worker that calls ``daemon.jobs.claim_next()``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import structlog

from rgcds.config import Settings
from rgcds.dicom.scp import StorageSCP
from rgcds.service.trigger import StudyTrigger
from rgcds.store.ingest import Ingestor
from rgcds.store.jobs import JobStore, job_store_path
from rgcds.store.records import Job, JobState
from rgcds.store.spool import Spool

logger = structlog.get_logger(__name__)

StudyQueuedHook = Callable[[Job], None]


class Daemon:
    """Assemble spool, job store, storage SCP and trigger; start and stop them in order.

    Parameters
    ----------
    settings
        The loaded settings.
    on_study_queued
        Processing hook, called with each job the trigger queues (and at start with every
        job already queued); see the module docstring.
    port
        Override ``listener.port`` (tests pass a free port).
    """

    def __init__(
        self,
        settings: Settings,
        on_study_queued: StudyQueuedHook | None = None,
        *,
        port: int | None = None,
    ) -> None:
        self.settings = settings
        self.on_study_queued = on_study_queued
        self._port = port
        self._stop_event = threading.Event()
        self.spool: Spool | None = None
        self.jobs: JobStore | None = None
        self.scp: StorageSCP | None = None
        self.trigger: StudyTrigger | None = None

    @property
    def port(self) -> int:
        """The listener's bound port (after :meth:`start`)."""
        return self.scp.port if self.scp is not None else self.settings.listener.port

    @property
    def db_path(self) -> Path:
        """The job store file."""
        return job_store_path(self.settings.storage.root)

    def _queued(self, job: Job) -> None:
        hook = self.on_study_queued
        if hook is not None:
            hook(job)

    def start(self) -> None:
        """Open the spool and job store, resume unfinished work, start listener and trigger.

        Raises
        ------
        StorageError
            If the spool or job store cannot be opened, or the port not bound.
        ConfigError
            If TLS is misconfigured.
        """
        storage = self.settings.storage
        self.spool = Spool(storage.root)
        self.spool.clean_incoming()
        self.jobs = JobStore(self.db_path)
        self.jobs.recover()
        ingest = Ingestor(self.spool, self.jobs, storage.duplicate_policy, storage.min_free_bytes)
        self.scp = StorageSCP(self.settings.listener, ingest, port=self._port)
        self.trigger = StudyTrigger(
            self.jobs, self.settings.trigger,
            busy_studies=self.scp.busy_studies, on_queued=self._queued,
        )
        try:
            self.scp.start()
        except BaseException:
            self.jobs.close()
            raise
        for job in self.jobs.jobs([JobState.QUEUED]):
            self.trigger.announce(job)
        self.trigger.start()
        logger.info("daemon started", port=self.port)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, finish in-flight stores (up to ``timeout``), stop trigger, close DB."""
        if self.scp is not None:
            self.scp.stop(timeout)
        if self.trigger is not None:
            self.trigger.stop()
        if self.jobs is not None:
            self.jobs.close()
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


__all__ = ["Daemon", "StudyQueuedHook"]
