"""The job store: a SQLite database (WAL, ``synchronous=FULL``) of studies, instances and results.

It holds UIDs, counts, states, times and file paths only; never a patient's name, id or any
other PHI. One :class:`JobStore` object is shared by the listener's threads and the trigger;
every method is atomic and thread-safe.

Queue API for the processing side::

    job = store.claim_next()            # oldest queued job -> processing, or None
    ...                                  # process store.instances(job.study_uid)
    store.mark(job.job_id, JobState.EXPORTING)
    store.outbox_add(job.job_id, "pacs", sop_uid, path)
    store.mark(job.job_id, JobState.DONE)   # or FAILED with a reason

Outbox (:mod:`rgcds.store.outbox`) and pairing (:mod:`rgcds.store.studies`) methods are
mixed in over the same connection (:mod:`rgcds.store.db`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

from rgcds.dicom.parse import InstanceMeta
from rgcds.store.db import (
    _INSERT_INSTANCE,
    _SELECT_INSTANCE,
    _SELECT_JOB,
    JOB_STORE_NAME,
    SCHEMA_VERSION,
    Database,
    _record,
    job_store_path,
)
from rgcds.store.outbox import OutboxTable
from rgcds.store.records import (
    TRANSITIONS,
    InstanceRecord,
    InvalidTransitionError,
    Job,
    JobState,
    OutboxState,
    StudySummary,
    UnknownJobError,
)
from rgcds.store.studies import StudyTable

logger = structlog.get_logger(__name__)


def _job(row: tuple[Any, ...]) -> Job:
    return _record(Job, row, state=JobState)


class JobStore(OutboxTable, StudyTable, Database):
    """Durable record of received instances, study jobs and the result outbox.

    Opened as :class:`~rgcds.store.db.Database` is (same parameter, same errors): the
    instance and job tables here, the outbox and study tables mixed in, one connection.
    """

    # -- instances ----------------------------------------------------------------------

    def record_instance(
        self, meta: InstanceMeta, path: Path | str, size: int, now: float | None = None
    ) -> Job:
        """Record a stored instance and attach it to its study's open job.

        The open job is the study's latest job if it is ``receiving``, ``stable`` or
        ``queued`` (the latter two go back to ``receiving``); otherwise (no job yet, or the
        latest is processing, exporting, done or failed) a new ``receiving`` job is created,
        so a late instance always leads to a new run. A row with the same SOP Instance UID
        is replaced.

        Parameters
        ----------
        meta
            The instance's identifiers and counting tags.
        path
            Where the instance is in the spool.
        size
            Its size in bytes.
        now
            The receive time (POSIX); the current time by default.

        Returns
        -------
        Job
            The job the instance now belongs to.

        Raises
        ------
        StorageError
            If the database cannot be written (:class:`OutOfResourcesError` if full).
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            job_id = self._record(db, meta, path, size, now)
            out = db.execute(_SELECT_JOB + " WHERE job_id=?", (job_id,)).fetchone()
        return _job(out)

    def record_instances(
        self, rows: Iterable[tuple[InstanceMeta, Path | str, int, float]]
    ) -> list[Job]:
        """Record many stored instances in one transaction (the ingest indexer's batch).

        Each row is ``(meta, path, size, received_at)`` and is recorded as
        :meth:`record_instance` would, in order (a later row with the same SOP Instance UID
        replaces an earlier one).

        Returns
        -------
        list of Job
            The job of each row, as it is after the whole batch.

        Raises
        ------
        StorageError
            If the database cannot be written (:class:`OutOfResourcesError` if full).
        """
        with self._tx() as db:
            ids = [self._record(db, meta, path, size, now) for meta, path, size, now in rows]
            jobs = {
                i: _job(db.execute(_SELECT_JOB + " WHERE job_id=?", (i,)).fetchone())
                for i in set(ids)
            }
        return [jobs[i] for i in ids]

    @staticmethod
    def _record(
        db: sqlite3.Connection, meta: InstanceMeta, path: Path | str, size: int, now: float
    ) -> int:
        row = db.execute(
            _SELECT_JOB + " WHERE study_uid=? ORDER BY job_id DESC LIMIT 1",
            (meta.study_uid,),
        ).fetchone()
        job = _job(row) if row else None
        if job is None or not job.state.accepts_instances:
            cur = db.execute(
                "INSERT INTO jobs (study_uid, state, created_at, updated_at, first_received,"
                " last_received, received_count) VALUES (?, ?, ?, ?, ?, ?, 1)",
                (meta.study_uid, JobState.RECEIVING.value, now, now, now, now),
            )
            job_id = int(cur.lastrowid or 0)
            if job is not None:
                logger.info(
                    "late instance opens a new job",
                    study_uid=meta.study_uid,
                    job_id=job_id,
                    previous_job_id=job.job_id,
                    previous_state=job.state.value,
                )
        else:
            job_id = job.job_id
            db.execute(
                "UPDATE jobs SET state=?, updated_at=?,"
                " last_received=MAX(COALESCE(last_received, ?), ?),"
                " first_received=COALESCE(first_received, ?),"
                " received_count=received_count+1 WHERE job_id=?",
                (JobState.RECEIVING.value, now, now, now, now, job_id),
            )
        db.execute(
            _INSERT_INSTANCE,
            (
                meta.sop_instance_uid,
                meta.study_uid,
                meta.series_uid,
                meta.sop_class_uid,
                meta.transfer_syntax_uid,
                meta.modality,
                meta.instance_number,
                meta.images_in_acquisition,
                meta.number_of_frames,
                str(path),
                size,
                job_id,
                now,
            ),
        )
        return job_id

    def find_instance(self, sop_instance_uid: str) -> InstanceRecord | None:
        """Return the stored instance with this SOP Instance UID, or ``None``."""
        rows = self._query(
            _SELECT_INSTANCE + " WHERE sop_instance_uid=?",
            (sop_instance_uid,),
        )
        return InstanceRecord(*rows[0]) if rows else None

    def instances(self, study_uid: str) -> list[InstanceRecord]:
        """Every stored instance of a study (all jobs), by series then instance number."""
        rows = self._query(
            _SELECT_INSTANCE + " WHERE study_uid=? "
            "ORDER BY series_uid, instance_number, sop_instance_uid",
            (study_uid,),
        )
        return [InstanceRecord(*r) for r in rows]

    # -- jobs ---------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        """Return a job by id.

        Raises
        ------
        UnknownJobError
            If there is no such job.
        """
        rows = self._query(_SELECT_JOB + " WHERE job_id=?", (job_id,))
        if not rows:
            raise UnknownJobError(f"There is no job with id {job_id} in {self.path}.")
        return _job(rows[0])

    def jobs(self, states: Iterable[JobState] | None = None) -> list[Job]:
        """Jobs in the given states (all when ``None``), oldest first."""
        if states is None:
            rows = self._query(_SELECT_JOB + " ORDER BY job_id")
        else:
            values = [JobState(s).value for s in states]
            marks = ",".join("?" * len(values))
            rows = self._query(
                _SELECT_JOB + f" WHERE state IN ({marks}) ORDER BY job_id", values
            )
        return [_job(r) for r in rows]

    def latest_job(self, study_uid: str) -> Job | None:
        """The study's most recent job, or ``None``."""
        rows = self._query(
            _SELECT_JOB + " WHERE study_uid=? ORDER BY job_id DESC LIMIT 1",
            (study_uid,),
        )
        return _job(rows[0]) if rows else None

    def mark(
        self,
        job_id: int,
        state: JobState | str,
        reason: str | None = None,
        *,
        expect: JobState | str | None = None,
    ) -> Job:
        """Move a job to ``state``.

        Parameters
        ----------
        job_id
            The job.
        state
            The new state; must be allowed from the current one (:data:`TRANSITIONS`).
        reason
            Why (stored as the job's last error; give one for ``failed``).
        expect
            If given, the job must currently be in this state (compare-and-set).

        Returns
        -------
        Job
            The updated job.

        Raises
        ------
        InvalidTransitionError
            If the transition is not allowed or the job is not in ``expect``.
        UnknownJobError
            If there is no such job.
        """
        new = JobState(state)
        with self._tx() as db:
            row = db.execute(_SELECT_JOB + " WHERE job_id=?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJobError(f"There is no job with id {job_id} in {self.path}.")
            job = _job(row)
            if expect is not None and job.state != JobState(expect):
                raise InvalidTransitionError(
                    f"Job {job_id} is {job.state.value}, not {JobState(expect).value}; "
                    f"it was not moved to {new.value}."
                )
            if new not in TRANSITIONS[job.state]:
                allowed = ", ".join(sorted(s.value for s in TRANSITIONS[job.state])) or "none"
                raise InvalidTransitionError(
                    f"Job {job_id} cannot go from {job.state.value} to {new.value}; "
                    f"allowed: {allowed}."
                )
            now = time.time()
            db.execute(
                "UPDATE jobs SET state=?, reason=COALESCE(?, reason), updated_at=? "
                "WHERE job_id=?",
                (new.value, reason, now, job_id),
            )
            out = db.execute(_SELECT_JOB + " WHERE job_id=?", (job_id,)).fetchone()
        logger.info(
            "job state", job_id=job_id, study_uid=job.study_uid, state=new.value,
            previous=job.state.value, reason=reason,
        )
        return _job(out)

    def rearm_failed_delivery(self, job_id: int, now: float | None = None) -> int:
        """Give a failed job's failed deliveries another chance, in one transaction.

        Every ``failed`` outbox item of the job becomes ``pending``, due at ``now``, with its
        attempt count reset (so the back-off starts afresh); the job goes from ``failed``
        back to ``exporting`` so the deliverer closes it again. This is the only way out of
        ``failed`` besides opening a new job, and it is what ``rgcds retry`` uses.

        Returns
        -------
        int
            The number of outbox items re-armed.

        Raises
        ------
        InvalidTransitionError
            If the job is not failed or has no failed delivery.
        UnknownJobError
            If there is no such job.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute(_SELECT_JOB + " WHERE job_id=?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJobError(f"There is no job with id {job_id} in {self.path}.")
            job = _job(row)
            if job.state is not JobState.FAILED:
                raise InvalidTransitionError(
                    f"Job {job_id} is {job.state.value}, not failed; nothing to re-deliver."
                )
            cur = db.execute(
                "UPDATE outbox SET state=?, attempts=0, next_attempt_at=?, updated_at=? "
                "WHERE job_id=? AND state=?",
                (OutboxState.PENDING.value, now, now, job_id, OutboxState.FAILED.value),
            )
            if cur.rowcount == 0:
                raise InvalidTransitionError(f"Job {job_id} has no failed delivery to re-arm.")
            db.execute(
                "UPDATE jobs SET state=?, updated_at=? WHERE job_id=?",
                (JobState.EXPORTING.value, now, job_id),
            )
            count = int(cur.rowcount)
        logger.info("deliveries re-armed", job_id=job_id, study_uid=job.study_uid, items=count)
        return count

    def claim_next(self) -> Job | None:
        """Atomically take the oldest ``queued`` job and move it to ``processing``.

        Returns
        -------
        Job or None
            The claimed job (now ``processing``), or ``None`` when nothing is queued.
        """
        with self._tx() as db:
            row = db.execute(
                _SELECT_JOB + " WHERE state=? ORDER BY job_id LIMIT 1",
                (JobState.QUEUED.value,),
            ).fetchone()
            if row is None:
                return None
            job = _job(row)
            now = time.time()
            db.execute(
                "UPDATE jobs SET state=?, updated_at=?, attempts=attempts+1 WHERE job_id=?",
                (JobState.PROCESSING.value, now, job.job_id),
            )
            out = db.execute(
                _SELECT_JOB + " WHERE job_id=?", (job.job_id,)
            ).fetchone()
        logger.info("job claimed", job_id=job.job_id, study_uid=job.study_uid)
        return _job(out)

    def refund_attempt(self, job_id: int) -> None:
        """Do not count the job's last claim as an attempt (a graceful stop interrupted it)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET attempts=MAX(attempts-1, 0) WHERE job_id=?", (job_id,))

    def recover(self) -> list[Job]:
        """Resume after a restart: every ``processing`` job goes back to ``queued``.

        ``receiving`` and ``stable`` jobs stay as they are (the trigger re-evaluates them),
        ``exporting`` jobs keep their outbox (the export stage resumes it).

        Returns
        -------
        list of Job
            The jobs that were re-queued.
        """
        with self._tx() as db:
            rows = db.execute(
                _SELECT_JOB + " WHERE state=? ORDER BY job_id",
                (JobState.PROCESSING.value,),
            ).fetchall()
            now = time.time()
            db.execute(
                "UPDATE jobs SET state=?, updated_at=? WHERE state=?",
                (JobState.QUEUED.value, now, JobState.PROCESSING.value),
            )
        jobs = [_job(r) for r in rows]
        for job in jobs:
            logger.warning("job re-queued after restart", job_id=job.job_id,
                           study_uid=job.study_uid)
        return [self.get(j.job_id) for j in jobs]

    def study_summaries(self) -> list[StudySummary]:
        """One line per study (its latest job), most recently received first."""
        rows = self._query(
            """
            SELECT j.study_uid, j.job_id, j.state, c.n_jobs,
                   (SELECT COUNT(DISTINCT series_uid) FROM instances i
                     WHERE i.study_uid = j.study_uid),
                   (SELECT COUNT(*) FROM instances i WHERE i.study_uid = j.study_uid),
                   c.first_received, c.last_received, j.reason
            FROM jobs j
            JOIN (SELECT study_uid, MAX(job_id) AS last_id, COUNT(*) AS n_jobs,
                         MIN(first_received) AS first_received,
                         MAX(last_received) AS last_received
                  FROM jobs GROUP BY study_uid) c ON c.last_id = j.job_id
            ORDER BY c.last_received DESC, j.job_id DESC
            """
        )
        return [
            StudySummary(
                study_uid=r[0], job_id=r[1], state=JobState(r[2]), jobs=r[3],
                series_count=r[4], instance_count=r[5], first_received=r[6],
                last_received=r[7], last_error=r[8],
            )
            for r in rows
        ]


__all__ = ["JOB_STORE_NAME", "SCHEMA_VERSION", "JobStore", "job_store_path"]
