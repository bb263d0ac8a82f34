"""Records and states of the job store: small frozen values, UIDs and counts only (no PHI)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rgcds.exceptions import RgcdsError


class JobState(StrEnum):
    """The life cycle of one processing run (job) of a study.

    ``receiving -> stable -> queued -> processing -> exporting -> done``; any non-terminal
    state may go to ``failed`` (with a reason). A new instance moves a ``stable`` or
    ``queued`` job back to ``receiving``; an instance that arrives once a job is
    ``processing`` or later opens a new job for the same study.
    """

    RECEIVING = "receiving"
    STABLE = "stable"
    QUEUED = "queued"
    PROCESSING = "processing"
    EXPORTING = "exporting"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """Whether no transition leaves this state."""
        return self in (JobState.DONE, JobState.FAILED)

    @property
    def accepts_instances(self) -> bool:
        """Whether a newly received instance joins a job in this state (else: new job)."""
        return self in (JobState.RECEIVING, JobState.STABLE, JobState.QUEUED)


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.RECEIVING: frozenset({JobState.STABLE, JobState.FAILED}),
    JobState.STABLE: frozenset({JobState.QUEUED, JobState.RECEIVING, JobState.FAILED}),
    JobState.QUEUED: frozenset({JobState.PROCESSING, JobState.RECEIVING, JobState.FAILED}),
    JobState.PROCESSING: frozenset(
        {JobState.EXPORTING, JobState.DONE, JobState.FAILED, JobState.QUEUED}
    ),
    JobState.EXPORTING: frozenset({JobState.DONE, JobState.FAILED}),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset(),
}
"""Allowed transitions; ``processing -> queued`` is the retry/resume path."""


class InvalidTransitionError(RgcdsError, ValueError):
    """A job was asked to move to a state its current state does not lead to."""


class UnknownJobError(RgcdsError, KeyError):
    """No job (or outbox item) has the given id."""


class OutboxState(StrEnum):
    """Delivery state of one result instance to one destination."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Job:
    """One processing run of a study.

    Attributes
    ----------
    job_id
        Unique, increasing id.
    study_uid
        The StudyInstanceUID.
    state
        Current :class:`JobState`.
    reason
        Why it failed (or the last error), else ``None``.
    created_at, updated_at
        POSIX times.
    first_received, last_received
        POSIX times of the first and last instance this job received (``None`` if none).
    received_count
        Instances received while this job was open (the study may hold more).
    attempts
        How often the job was claimed for processing (:meth:`JobStore.claim_next`); a job
        whose processing never finished (the daemon crashed during it) is claimed again
        after the restart, up to ``processing.max_attempts``.
    """

    job_id: int
    study_uid: str
    state: JobState
    reason: str | None
    created_at: float
    updated_at: float
    first_received: float | None
    last_received: float | None
    received_count: int
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One stored instance: where it is and the few tags that count a series."""

    sop_instance_uid: str
    study_uid: str
    series_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str
    instance_number: int | None
    images_in_acquisition: int | None
    number_of_frames: int | None
    path: str
    size: int
    job_id: int
    received_at: float


@dataclass(frozen=True, slots=True)
class StudySummary:
    """What ``rgcds status`` shows for one study (its latest job); never PHI."""

    study_uid: str
    job_id: int
    state: JobState
    jobs: int
    series_count: int
    instance_count: int
    first_received: float | None
    last_received: float | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One result instance to deliver to one destination."""

    item_id: int
    job_id: int
    destination: str
    sop_instance_uid: str
    path: str
    state: OutboxState
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    updated_at: float


__all__ = [
    "TRANSITIONS",
    "InstanceRecord",
    "InvalidTransitionError",
    "Job",
    "JobState",
    "OutboxItem",
    "OutboxState",
    "StudySummary",
    "UnknownJobError",
]
