"""The spool on disk and the job store (SQLite): study state machine, queue and outbox."""

from __future__ import annotations

from rgcds.store.ingest import DuplicatePolicy, Ingestor, IngestOutcome
from rgcds.store.jobs import JOB_STORE_NAME, SCHEMA_VERSION, JobStore, job_store_path
from rgcds.store.records import (
    TRANSITIONS,
    InstanceRecord,
    InvalidTransitionError,
    Job,
    JobState,
    OutboxItem,
    OutboxState,
    StudySummary,
    UnknownJobError,
)
from rgcds.store.spool import Spool, fsync_dir, make_dirs_durable

__all__ = [
    "JOB_STORE_NAME",
    "SCHEMA_VERSION",
    "TRANSITIONS",
    "DuplicatePolicy",
    "IngestOutcome",
    "Ingestor",
    "InstanceRecord",
    "InvalidTransitionError",
    "Job",
    "JobState",
    "JobStore",
    "OutboxItem",
    "OutboxState",
    "Spool",
    "StudySummary",
    "UnknownJobError",
    "fsync_dir",
    "job_store_path",
    "make_dirs_durable",
]
