"""When a study is ready: stable (quiet for ``stable_seconds``) or evidently complete.

A ``receiving`` job becomes ``stable`` and then ``queued`` when either

* no instance of the study arrived for ``trigger.stable_seconds``; or
* every series of the study is evidently complete (:func:`series_is_complete`), no instance
  arrived for a short grace period (``min(2 s, stable_seconds)``), and no association that
  delivered instances of the study is still open.

The early rule makes the usual latency a couple of seconds instead of the timeout.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence

import structlog

from rgcds.config import TriggerSettings
from rgcds.dicom.sop_classes import SELF_CONTAINED_SOP_CLASSES
from rgcds.store.jobs import JobStore
from rgcds.store.records import InstanceRecord, InvalidTransitionError, Job, JobState

logger = structlog.get_logger(__name__)

GRACE_SECONDS = 2.0
"""Upper bound of the quiet period before the early (complete-series) rule may fire."""


def _contiguous(numbers: Sequence[int]) -> bool:
    return len(set(numbers)) == len(numbers) and max(numbers) - min(numbers) + 1 == len(numbers)


def series_is_complete(instances: Sequence[InstanceRecord]) -> bool:
    """Whether a series is evidently complete from the tags recorded per instance.

    Rules, in order:

    * InstanceNumbers, where present, must be present on every instance and contiguous
      (no gaps, no repeats); otherwise the series is not evidently complete.
    * With ImagesInAcquisition: complete when at least that many instances arrived.
    * A series of self-contained objects (Enhanced MR/PET, SEG, SR, RT Structure Set) or of
      multi-frame instances (NumberOfFrames > 1): complete when the InstanceNumbers run
      1..n (a single unnumbered object also counts).
    * Otherwise (classic single-frame images without ImagesInAcquisition) nothing proves
      completeness: only the ``stable_seconds`` rule applies.

    Parameters
    ----------
    instances
        The series' stored instances (all jobs).

    Returns
    -------
    bool
        ``True`` if the series is evidently complete.
    """
    if not instances:
        return False
    numbers = [i.instance_number for i in instances if i.instance_number is not None]
    if numbers and (len(numbers) != len(instances) or not _contiguous(numbers)):
        return False
    expected = [i.images_in_acquisition for i in instances if i.images_in_acquisition]
    if expected:
        return len(instances) >= max(expected)
    self_contained = all(
        i.sop_class_uid in SELF_CONTAINED_SOP_CLASSES or (i.number_of_frames or 0) > 1
        for i in instances
    )
    if self_contained:
        return (not numbers and len(instances) == 1) or (bool(numbers) and min(numbers) == 1)
    return False


def study_is_complete(instances: Sequence[InstanceRecord]) -> bool:
    """Whether every series of a study is evidently complete (and there is one)."""
    by_series: dict[str, list[InstanceRecord]] = defaultdict(list)
    for inst in instances:
        by_series[inst.series_uid].append(inst)
    return bool(by_series) and all(series_is_complete(s) for s in by_series.values())


class StudyTrigger:
    """Moves ``receiving`` jobs to ``stable`` and ``queued``; calls ``on_queued`` for each.

    Parameters
    ----------
    jobs
        The job store.
    settings
        ``[trigger]``: ``stable_seconds`` and ``poll_seconds``.
    busy_studies
        Returns the study UIDs that still have an open delivering association
        (:meth:`rgcds.dicom.StorageSCP.busy_studies`).
    on_queued
        Called (in the trigger's thread) with each newly queued job; its exceptions are
        logged, never propagated. The job stays ``queued`` for :meth:`JobStore.claim_next`.
    clock
        POSIX time source (the job store records ``time.time()``).
    """

    def __init__(
        self,
        jobs: JobStore,
        settings: TriggerSettings,
        *,
        busy_studies: Callable[[], Collection[str]] = frozenset,
        on_queued: Callable[[Job], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.settings = settings
        self.busy_studies = busy_studies
        self.on_queued = on_queued
        self.clock = clock
        self.grace_seconds = min(GRACE_SECONDS, settings.stable_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _ready(self, job: Job, now: float, busy: Collection[str]) -> str | None:
        last = job.last_received if job.last_received is not None else job.created_at
        idle = now - last
        if idle >= self.settings.stable_seconds:
            return "stable"
        if idle >= self.grace_seconds and job.study_uid not in busy:
            if study_is_complete(self.jobs.instances(job.study_uid)):
                return "complete"
        return None

    def evaluate(self, now: float | None = None) -> list[Job]:
        """Run one round: stabilise ready jobs, queue stable ones, call ``on_queued``.

        Parameters
        ----------
        now
            The current POSIX time (default: ``clock()``).

        Returns
        -------
        list of Job
            The jobs queued in this round.
        """
        now = self.clock() if now is None else now
        busy = set(self.busy_studies())
        for job in self.jobs.jobs([JobState.RECEIVING]):
            why = self._ready(job, now, busy)
            if why is None:
                continue
            try:
                self.jobs.mark(job.job_id, JobState.STABLE, expect=JobState.RECEIVING)
                logger.info("study stable", study_uid=job.study_uid, job_id=job.job_id,
                            rule=why, instances=job.received_count)
            except InvalidTransitionError:
                continue  # an instance arrived meanwhile; it will be re-evaluated
        queued: list[Job] = []
        for job in self.jobs.jobs([JobState.STABLE]):
            try:
                queued.append(self.jobs.mark(job.job_id, JobState.QUEUED, expect=JobState.STABLE))
            except InvalidTransitionError:
                continue
        for job in queued:
            logger.info("study queued", study_uid=job.study_uid, job_id=job.job_id)
            self.announce(job)
        return queued

    def announce(self, job: Job) -> None:
        """Call ``on_queued`` with ``job``, logging (never raising) the hook's errors.

        The hook is a notification only: the job may have moved on (e.g. back to
        ``receiving`` when another instance arrived) by the time a worker looks;
        :meth:`JobStore.claim_next` is the source of truth.
        """
        if self.on_queued is None:
            return
        try:
            self.on_queued(job)
        except Exception:
            logger.exception("on_study_queued hook failed", job_id=job.job_id,
                             study_uid=job.study_uid)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate()
            except Exception:
                logger.exception("trigger round failed")
            self._stop.wait(self.settings.poll_seconds)

    def start(self) -> None:
        """Start evaluating every ``poll_seconds`` in a background thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="rgcds-trigger", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread (waits for the current round)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


__all__ = ["GRACE_SECONDS", "StudyTrigger", "series_is_complete", "study_is_complete"]
