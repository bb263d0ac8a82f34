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

Outbox API for the export side::

    for item in store.outbox_due():     # pending and due now
        try: send(item) ; store.outbox_mark_sent(item.item_id)
        except TransientExportError as e: store.outbox_mark_retry(item.item_id, t, str(e))
        except PermanentExportError as e: store.outbox_mark_failed(item.item_id, str(e))
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from rgcds.dicom.parse import InstanceMeta
from rgcds.exceptions import OutOfResourcesError, StorageError
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

logger = structlog.get_logger(__name__)

SCHEMA_VERSION = 3
JOB_STORE_NAME = "jobs.sqlite3"


def job_store_path(root: Path | str) -> Path:
    """The job store file under ``storage.root``."""
    return Path(root) / JOB_STORE_NAME

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    study_uid       TEXT NOT NULL,
    state           TEXT NOT NULL,
    reason          TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    first_received  REAL,
    last_received   REAL,
    received_count  INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_study ON jobs (study_uid, job_id);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, job_id);
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid      TEXT PRIMARY KEY,
    study_uid             TEXT NOT NULL,
    series_uid            TEXT NOT NULL,
    sop_class_uid         TEXT NOT NULL,
    transfer_syntax_uid   TEXT NOT NULL,
    modality              TEXT NOT NULL,
    instance_number       INTEGER,
    images_in_acquisition INTEGER,
    number_of_frames      INTEGER,
    path                  TEXT NOT NULL,
    size                  INTEGER NOT NULL,
    job_id                INTEGER NOT NULL REFERENCES jobs (job_id),
    received_at           REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_study ON instances (study_uid, series_uid);
CREATE TABLE IF NOT EXISTS outbox (
    item_id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           INTEGER NOT NULL REFERENCES jobs (job_id),
    destination      TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    path             TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    UNIQUE (job_id, destination, sop_instance_uid)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS studies (
    study_uid    TEXT PRIMARY KEY,
    patient_key  TEXT NOT NULL,
    study_date   TEXT,
    recorded_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS studies_patient ON studies (patient_key);
CREATE TABLE IF NOT EXISTS retrieved (
    study_uid    TEXT PRIMARY KEY,
    for_study    TEXT NOT NULL,
    retrieved_at REAL NOT NULL
);
"""

_JOB_COLS = (
    "job_id, study_uid, state, reason, created_at, updated_at, first_received, "
    "last_received, received_count, attempts"
)
_INSTANCE_COLS = (
    "sop_instance_uid, study_uid, series_uid, sop_class_uid, transfer_syntax_uid, modality, "
    "instance_number, images_in_acquisition, number_of_frames, path, size, job_id, received_at"
)
_OUTBOX_COLS = (
    "item_id, job_id, destination, sop_instance_uid, path, state, attempts, next_attempt_at, "
    "last_error, created_at, updated_at"
)
# Constant column lists only; every value is a bound parameter.
_SELECT_JOB = f"SELECT {_JOB_COLS} FROM jobs"  # noqa: S608
_SELECT_INSTANCE = f"SELECT {_INSTANCE_COLS} FROM instances"  # noqa: S608
_SELECT_OUTBOX = f"SELECT {_OUTBOX_COLS} FROM outbox"  # noqa: S608
_INSERT_INSTANCE = (
    f"INSERT OR REPLACE INTO instances ({_INSTANCE_COLS}) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_OUTBOX = (
    f"INSERT OR IGNORE INTO outbox ({_OUTBOX_COLS}) "  # noqa: S608
    "VALUES (NULL, ?, ?, ?, ?, ?, 0, ?, NULL, ?, ?)"
)


def _job(row: tuple[Any, ...]) -> Job:
    return Job(
        job_id=row[0],
        study_uid=row[1],
        state=JobState(row[2]),
        reason=row[3],
        created_at=row[4],
        updated_at=row[5],
        first_received=row[6],
        last_received=row[7],
        received_count=row[8],
        attempts=row[9],
    )


def _outbox(row: tuple[Any, ...]) -> OutboxItem:
    return OutboxItem(
        item_id=row[0],
        job_id=row[1],
        destination=row[2],
        sop_instance_uid=row[3],
        path=row[4],
        state=OutboxState(row[5]),
        attempts=row[6],
        next_attempt_at=row[7],
        last_error=row[8],
        created_at=row[9],
        updated_at=row[10],
    )


class JobStore:
    """Durable record of received instances, study jobs and the result outbox.

    Parameters
    ----------
    path
        The SQLite file; created with its schema when missing.

    Raises
    ------
    StorageError
        If the database cannot be opened or its schema created.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # 0640 whatever the umask, before SQLite opens it: SQLite gives the -wal and
            # -shm files it creates the database file's mode. Only a missing file is
            # created this way: closing a descriptor of a database file that another
            # connection of this process has open drops that connection's POSIX locks
            # (fcntl locks belong to the process and the file), which lets another process
            # checkpoint and reset the WAL under it - committed transactions were lost.
            if not self.path.exists():
                try:
                    os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o640))
                except FileExistsError:
                    pass  # created meanwhile by another process: nothing of ours is open
            for f in (self.path, *(Path(f"{self.path}{x}") for x in ("-wal", "-shm"))):
                if f.exists():
                    os.chmod(f, 0o640)
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            _migrate(self._db)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except OSError as exc:
            raise StorageError(f"The job store {self.path} cannot be secured: {exc}.") from None
        except sqlite3.Error as exc:
            raise StorageError(f"The job store {self.path} cannot be opened: {exc}.") from None
        self._closed = False

    # -- plumbing -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; later calls raise :class:`StorageError`."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) under the lock."""
        with self._lock:
            if self._closed:
                raise StorageError("The job store is closed; no more changes can be recorded.")
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _storage_error(exc) from None
            try:
                yield self._db
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise _storage_error(exc) from None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise _storage_error(exc) from None

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._closed:
                raise StorageError("The job store is closed.")
            try:
                return list(self._db.execute(sql, tuple(params)).fetchall())
            except sqlite3.Error as exc:
                raise _storage_error(exc) from None

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

    # -- studies (pairing a PET/CT study with the MR study of the same patient) ----------

    def unrecorded_studies(self) -> list[str]:
        """Studies with received instances but no :meth:`record_study` row yet."""
        rows = self._query(
            "SELECT DISTINCT study_uid FROM instances WHERE study_uid NOT IN "
            "(SELECT study_uid FROM studies) ORDER BY study_uid"
        )
        return [str(r[0]) for r in rows]

    def record_study(
        self, study_uid: str, patient_key: str, study_date: str | None, now: float | None = None
    ) -> None:
        """Keep a study's pseudonymous patient key (a hash, never the ID) and its date."""
        stamp = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO studies (study_uid, patient_key, study_date, recorded_at) "
                "VALUES (?, ?, ?, ?)",
                (study_uid, patient_key, study_date, stamp),
            )

    def recorded_studies(self) -> list[tuple[str, str]]:
        """``(study_uid, patient_key)`` of every recorded study."""
        rows = self._query("SELECT study_uid, patient_key FROM studies ORDER BY study_uid")
        return [(str(r[0]), str(r[1])) for r in rows]

    def study_record(self, study_uid: str) -> tuple[str, str | None] | None:
        """``(patient_key, study_date)`` of a recorded study, else ``None``."""
        rows = self._query(
            "SELECT patient_key, study_date FROM studies WHERE study_uid=?", (study_uid,)
        )
        return (str(rows[0][0]), rows[0][1]) if rows else None

    def patient_studies(self, patient_key: str) -> list[tuple[str, str | None]]:
        """``(study_uid, study_date)`` of every recorded study of one patient."""
        rows = self._query(
            "SELECT study_uid, study_date FROM studies WHERE patient_key=? ORDER BY study_uid",
            (patient_key,),
        )
        return [(str(r[0]), r[1]) for r in rows]

    def mark_retrieved(self, study_uid: str, for_study: str, now: float | None = None) -> None:
        """Record that ``study_uid`` is fetched from a PACS only as ``for_study``'s partner."""
        stamp = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO retrieved (study_uid, for_study, retrieved_at) "
                "VALUES (?, ?, ?)",
                (study_uid, for_study, stamp),
            )

    def retrieved_for(self, study_uid: str) -> str | None:
        """The study a retrieved partner was fetched for, else ``None``."""
        rows = self._query("SELECT for_study FROM retrieved WHERE study_uid=?", (study_uid,))
        return str(rows[0][0]) if rows else None

    def study_modalities(self, study_uid: str) -> frozenset[str]:
        """The Modality values of a study's received instances."""
        rows = self._query(
            "SELECT DISTINCT modality FROM instances WHERE study_uid=?", (study_uid,)
        )
        return frozenset(str(r[0]) for r in rows)

    # -- outbox -------------------------------------------------------------------------

    def outbox_add(
        self,
        study_job: int,
        destination: str,
        sop_instance_uid: str,
        path: Path | str,
        now: float | None = None,
    ) -> OutboxItem:
        """Queue a result file for delivery; idempotent per (job, destination, instance).

        Parameters
        ----------
        study_job
            The job id the result belongs to.
        destination
            A destination name from ``[[destinations]]``.
        sop_instance_uid
            The result's SOP Instance UID.
        path
            The result file.
        now
            The queue time (POSIX), when the item is first due; the current time by default.

        Returns
        -------
        OutboxItem
            The new item, due at ``now``, or the existing one unchanged.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                _INSERT_OUTBOX,
                (study_job, destination, sop_instance_uid, str(path),
                 OutboxState.PENDING.value, now, now, now),
            )
            row = db.execute(
                _SELECT_OUTBOX + " WHERE job_id=? AND destination=? "
                "AND sop_instance_uid=?",
                (study_job, destination, sop_instance_uid),
            ).fetchone()
        return _outbox(row)

    def outbox_due(self, now: float | None = None, limit: int = 100) -> list[OutboxItem]:
        """Pending items whose ``next_attempt_at`` is not after ``now``, oldest first."""
        now = time.time() if now is None else now
        rows = self._query(
            _SELECT_OUTBOX + " WHERE state=? AND next_attempt_at<=? "
            "ORDER BY next_attempt_at, item_id LIMIT ?",
            (OutboxState.PENDING.value, now, limit),
        )
        return [_outbox(r) for r in rows]

    def outbox_items(self, study_job: int) -> list[OutboxItem]:
        """All outbox items of a job, in insertion order."""
        rows = self._query(
            _SELECT_OUTBOX + " WHERE job_id=? ORDER BY item_id", (study_job,)
        )
        return [_outbox(r) for r in rows]

    def outbox_item(self, item_id: int) -> OutboxItem:
        """One outbox item by id.

        Raises
        ------
        UnknownJobError
            If there is no item with that id.
        """
        rows = self._query(_SELECT_OUTBOX + " WHERE item_id=?", (item_id,))
        if not rows:
            raise UnknownJobError(f"There is no outbox item with id {item_id}.")
        return _outbox(rows[0])

    def _outbox_update(self, item_id: int, sql: str, params: tuple[Any, ...]) -> OutboxItem:
        with self._tx() as db:
            cur = db.execute(sql, (*params, time.time(), item_id))
            if cur.rowcount == 0:
                raise UnknownJobError(f"There is no outbox item with id {item_id}.")
            row = db.execute(
                _SELECT_OUTBOX + " WHERE item_id=?", (item_id,)
            ).fetchone()
        return _outbox(row)

    def outbox_mark_sent(self, item_id: int) -> OutboxItem:
        """The destination confirmed the item (C-STORE success)."""
        return self._outbox_update(
            item_id,
            "UPDATE outbox SET state=?, attempts=attempts+1, last_error=NULL, updated_at=? "
            "WHERE item_id=?",
            (OutboxState.SENT.value,),
        )

    def outbox_mark_retry(self, item_id: int, next_attempt_at: float, error: str) -> OutboxItem:
        """A transient failure: stay pending, try again at ``next_attempt_at``."""
        return self._outbox_update(
            item_id,
            "UPDATE outbox SET state=?, attempts=attempts+1, next_attempt_at=?, last_error=?, "
            "updated_at=? WHERE item_id=?",
            (OutboxState.PENDING.value, next_attempt_at, error),
        )

    def outbox_mark_failed(self, item_id: int, reason: str) -> OutboxItem:
        """A permanent failure: the item will not be retried."""
        return self._outbox_update(
            item_id,
            "UPDATE outbox SET state=?, attempts=attempts+1, last_error=?, updated_at=? "
            "WHERE item_id=?",
            (OutboxState.FAILED.value, reason),
        )


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a job store written by an older rgcds to this schema (columns added since)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "attempts" not in columns:  # schema 2 -> 3: the per-job count of processing claims
        db.execute("ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")


def _storage_error(exc: sqlite3.Error) -> StorageError:
    text = str(exc)
    if "full" in text.lower():
        return OutOfResourcesError(f"The job store's disk is full: {text}.")
    return StorageError(f"The job store could not be written: {text}.")


__all__ = ["JOB_STORE_NAME", "SCHEMA_VERSION", "JobStore", "job_store_path"]
