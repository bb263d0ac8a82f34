"""The job store's database: one SQLite connection (WAL, ``synchronous=FULL``), its schema,
and the locked transaction and query helpers the tables share.

It holds UIDs, counts, states, times and file paths only; never a patient's name, id or any
other PHI. The tables are the rooms beside it: :mod:`rgcds.store.jobs` (instances and jobs),
:mod:`rgcds.store.outbox` (results waiting for their destination) and
:mod:`rgcds.store.studies` (pairing and retrieved studies); :class:`rgcds.store.jobs.JobStore`
is all of them over this one connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from rgcds.exceptions import OutOfResourcesError, StorageError

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
_Record = TypeVar("_Record", bound="DataclassInstance")


def _record(
    cls: type[_Record], row: Iterable[Any], **convert: Callable[[Any], Any]
) -> _Record:
    """The record of a row selected with its column list, which names the record's fields in
    order; ``convert`` maps a field to the type its stored value is turned into."""
    values = dict(zip((f.name for f in fields(cls)), row, strict=True))
    for name, to in convert.items():
        values[name] = to(values[name])
    return cls(**values)


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




class Database:
    """The job store's SQLite connection, schema and transaction helpers.

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

    def __enter__(self) -> Self:
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


__all__ = ["JOB_STORE_NAME", "SCHEMA_VERSION", "Database", "job_store_path"]
