"""The spool on disk and the job store (SQLite): study state machine, queue and outbox."""

from __future__ import annotations

from rgcds.store.ingest import (
    DuplicatePolicy,
    Durability,
    Ingestor,
    IngestOutcome,
    RecoveryReport,
    rebuild_index,
)
from rgcds.store.jobs import JOB_STORE_NAME, SCHEMA_VERSION, JobStore, job_store_path
from rgcds.store.journal import Journal
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
    "Durability",
    "IngestOutcome",
    "Ingestor",
    "InstanceRecord",
    "InvalidTransitionError",
    "Job",
    "JobState",
    "JobStore",
    "Journal",
    "OutboxItem",
    "OutboxState",
    "RecoveryReport",
    "Spool",
    "StudySummary",
    "UnknownJobError",
    "fsync_dir",
    "job_store_path",
    "make_dirs_durable",
    "rebuild_index",
]
