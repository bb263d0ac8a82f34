"""The job store: state machine, queue, resume after a crash, status lines, outbox."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgcds.dicom.parse import InstanceMeta
from rgcds.store import (
    TRANSITIONS,
    InstanceRecord,
    InvalidTransitionError,
    Job,
    JobState,
    JobStore,
    OutboxItem,
    OutboxState,
    UnknownJobError,
)

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.1.1"


def meta(n: int, study: str = STUDY, series: str = SERIES) -> InstanceMeta:
    return InstanceMeta(
        study_uid=study,
        series_uid=series,
        sop_instance_uid=f"{series}.{n}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        modality="MR",
        instance_number=n,
        images_in_acquisition=3,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = JobStore(tmp_path / "jobs.sqlite3")
    yield s
    s.close()


def test_pragmas_wal_and_full_sync(store: JobStore) -> None:
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_instances_join_one_receiving_job(store: JobStore) -> None:
    jobs = {store.record_instance(meta(n), f"/spool/{n}.dcm", 10).job_id for n in (1, 2, 3)}
    assert len(jobs) == 1
    job = store.get(jobs.pop())
    assert job.state is JobState.RECEIVING
    assert job.received_count == 3
    assert job.first_received is not None and job.last_received is not None
    assert [i.instance_number for i in store.instances(STUDY)] == [1, 2, 3]


def test_full_life_cycle_and_claim(store: JobStore) -> None:
    job = store.record_instance(meta(1), "/x.dcm", 1)
    assert store.claim_next() is None
    store.mark(job.job_id, JobState.STABLE)
    store.mark(job.job_id, JobState.QUEUED)
    claimed = store.claim_next()
    assert claimed is not None and claimed.job_id == job.job_id
    assert claimed.state is JobState.PROCESSING
    assert store.claim_next() is None
    store.mark(job.job_id, JobState.EXPORTING)
    assert store.mark(job.job_id, JobState.DONE).state is JobState.DONE


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ([], JobState.QUEUED),  # receiving -> queued skips stable
        ([], JobState.PROCESSING),
        ([], JobState.DONE),
        ([JobState.STABLE], JobState.EXPORTING),
        ([JobState.STABLE, JobState.QUEUED], JobState.DONE),
        ([JobState.FAILED], JobState.RECEIVING),
        ([JobState.FAILED], JobState.QUEUED),
        ([JobState.STABLE, JobState.QUEUED, JobState.PROCESSING, JobState.DONE],
         JobState.PROCESSING),
    ],
)
def test_invalid_transitions_raise(
    store: JobStore, path: list[JobState], bad: JobState
) -> None:
    job = store.record_instance(meta(1), "/x.dcm", 1)
    for state in path:
        store.mark(job.job_id, state, reason="test" if state is JobState.FAILED else None)
    before = store.get(job.job_id)
    with pytest.raises(InvalidTransitionError, match="cannot go from"):
        store.mark(job.job_id, bad)
    assert store.get(job.job_id).state == before.state  # rolled back, unchanged


def test_every_state_listed_and_terminal_states_closed() -> None:
    assert set(TRANSITIONS) == set(JobState)
    assert not TRANSITIONS[JobState.DONE] and not TRANSITIONS[JobState.FAILED]


def test_compare_and_set(store: JobStore) -> None:
    job = store.record_instance(meta(1), "/x.dcm", 1)
    with pytest.raises(InvalidTransitionError):
        store.mark(job.job_id, JobState.QUEUED, expect=JobState.STABLE)


def test_unknown_job(store: JobStore) -> None:
    with pytest.raises(UnknownJobError):
        store.get(999)
    with pytest.raises(UnknownJobError):
        store.mark(999, JobState.STABLE)


def test_failed_keeps_reason(store: JobStore) -> None:
    job = store.record_instance(meta(1), "/x.dcm", 1)
    store.mark(job.job_id, JobState.FAILED, reason="no T1c series")
    assert store.get(job.job_id).reason == "no T1c series"
    [summary] = store.study_summaries()
    assert summary.last_error == "no T1c series"


def test_new_instance_reopens_stable_and_queued(store: JobStore) -> None:
    job = store.record_instance(meta(1), "/1.dcm", 1)
    store.mark(job.job_id, JobState.STABLE)
    assert store.record_instance(meta(2), "/2.dcm", 1).job_id == job.job_id
    assert store.get(job.job_id).state is JobState.RECEIVING
    store.mark(job.job_id, JobState.STABLE)
    store.mark(job.job_id, JobState.QUEUED)
    assert store.record_instance(meta(3), "/3.dcm", 1).state is JobState.RECEIVING


@pytest.mark.parametrize(
    "path",
    [
        [JobState.STABLE, JobState.QUEUED, JobState.PROCESSING],
        [JobState.STABLE, JobState.QUEUED, JobState.PROCESSING, JobState.DONE],
        [JobState.FAILED],
    ],
)
def test_late_instance_opens_a_new_job(store: JobStore, path: list[JobState]) -> None:
    job = store.record_instance(meta(1), "/1.dcm", 1)
    for state in path:
        store.mark(job.job_id, state, reason="r" if state is JobState.FAILED else None)
    late = store.record_instance(meta(4), "/4.dcm", 1)
    assert late.job_id != job.job_id
    assert late.state is JobState.RECEIVING
    assert store.get(job.job_id).state is path[-1]
    [summary] = store.study_summaries()
    assert summary.job_id == late.job_id and summary.jobs == 2 and summary.instance_count == 2


def test_resume_after_crash(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    s = JobStore(db)
    receiving = s.record_instance(meta(1, study="1.2.3"), "/a.dcm", 1)
    processing = s.record_instance(meta(1, study="1.2.4", series="1.2.4.1"), "/b.dcm", 1)
    for st in (JobState.STABLE, JobState.QUEUED, JobState.PROCESSING):
        s.mark(processing.job_id, st)
    exporting = s.record_instance(meta(1, study="1.2.5", series="1.2.5.1"), "/c.dcm", 1)
    for st in (JobState.STABLE, JobState.QUEUED, JobState.PROCESSING, JobState.EXPORTING):
        s.mark(exporting.job_id, st)
    item = s.outbox_add(exporting.job_id, "pacs", "1.2.5.9", "/r.dcm")
    # "crash": drop the connection without any cleanup
    s._db.close()

    s2 = JobStore(db)
    resumed = s2.recover()
    assert [j.job_id for j in resumed] == [processing.job_id]
    assert s2.get(processing.job_id).state is JobState.QUEUED
    assert s2.get(receiving.job_id).state is JobState.RECEIVING
    assert s2.get(exporting.job_id).state is JobState.EXPORTING
    assert [i.item_id for i in s2.outbox_due()] == [item.item_id]
    assert s2.claim_next().job_id == processing.job_id  # type: ignore[union-attr]
    s2.close()


def test_no_phi_columns(store: JobStore) -> None:
    # Every table, including the pairing table (``studies``): its only patient column is the
    # keyed pseudonym, and its date is the study date the pairing window needs.
    tables = [r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
              if not r[0].startswith("sqlite_")]
    assert {"jobs", "instances", "outbox", "studies", "retrieved"} <= set(tables)
    allowed = {"patient_key", "study_date"}
    cols = {
        row[1].lower()
        for table in tables
        for row in store._db.execute(f"PRAGMA table_info({table})")
    }
    phi_like = {"patient", "accession", "birth", "name", "sex", "age", "date"}
    assert not [c for c in cols - allowed if phi_like & set(c.split("_"))]


def test_pairing_table_holds_the_hmac_not_the_patient_id(store: JobStore) -> None:
    from rgcds.service.pairing import patient_key

    key = patient_key("PID-7654321", secret=b"s" * 32)
    store.record_study("1.2.3", key, "20261201")
    ((stored,),) = store._db.execute("SELECT patient_key FROM studies").fetchall()
    assert stored == key and "7654321" not in stored
    assert patient_key("PID-7654321", secret=b"t" * 32) != key  # keyed, not a plain hash


def test_status_summaries(store: JobStore) -> None:
    store.record_instance(meta(1), "/1.dcm", 1)
    store.record_instance(meta(2, series=SERIES + ".2"), "/2.dcm", 1)
    store.record_instance(meta(1, study="1.2.9", series="1.2.9.1"), "/3.dcm", 1)
    rows = {s.study_uid: s for s in store.study_summaries()}
    assert rows[STUDY].series_count == 2 and rows[STUDY].instance_count == 2
    assert rows["1.2.9"].series_count == 1 and rows["1.2.9"].state is JobState.RECEIVING


def test_outbox_api(store: JobStore) -> None:
    job = store.record_instance(meta(1), "/1.dcm", 1)
    a = store.outbox_add(job.job_id, "pacs", "1.2.99.1", "/out/seg.dcm")
    again = store.outbox_add(job.job_id, "pacs", "1.2.99.1", "/out/seg.dcm")
    assert again.item_id == a.item_id  # idempotent
    b = store.outbox_add(job.job_id, "pacs", "1.2.99.2", "/out/sr.dcm")
    c = store.outbox_add(job.job_id, "archive", "1.2.99.1", "/out/seg.dcm")
    now = time.time()
    assert {i.item_id for i in store.outbox_due(now + 1)} == {a.item_id, b.item_id, c.item_id}

    sent = store.outbox_mark_sent(a.item_id)
    assert sent.state is OutboxState.SENT and sent.attempts == 1
    retry = store.outbox_mark_retry(b.item_id, now + 60, "peer unreachable")
    assert retry.state is OutboxState.PENDING and retry.last_error == "peer unreachable"
    failed = store.outbox_mark_failed(c.item_id, "association rejected")
    assert failed.state is OutboxState.FAILED

    assert store.outbox_due(now + 1) == []
    assert [i.item_id for i in store.outbox_due(now + 61)] == [b.item_id]
    assert len(store.outbox_items(job.job_id)) == 3
    with pytest.raises(UnknownJobError):
        store.outbox_mark_sent(12345)


def test_closed_store_raises(tmp_path: Path) -> None:
    from rgcds.exceptions import StorageError

    s = JobStore(tmp_path / "j.sqlite3")
    s.close()
    with pytest.raises(StorageError):
        s.record_instance(meta(1), "/x", 1)


def test_durable_after_reopen(tmp_path: Path) -> None:
    s = JobStore(tmp_path / "j.sqlite3")
    s.record_instance(meta(1), "/x", 1)
    s.close()
    con = sqlite3.connect(tmp_path / "j.sqlite3")
    assert con.execute("SELECT COUNT(*) FROM instances").fetchone()[0] == 1
    con.close()


def test_claims_are_counted_and_a_graceful_stop_refunds_one(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as s:
        job = s.record_instance(meta(1), "/spool/1.dcm", 10)
        s.mark(job.job_id, JobState.STABLE)
        s.mark(job.job_id, JobState.QUEUED)
        assert s.get(job.job_id).attempts == 0
        assert s.claim_next().attempts == 1  # type: ignore[union-attr]
        s.recover()  # as after a crash: queued again, the attempt stays counted
        assert s.claim_next().attempts == 2  # type: ignore[union-attr]
        s.refund_attempt(job.job_id)
        assert s.get(job.job_id).attempts == 1


def test_store_of_schema_2_gains_the_attempts_column(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with sqlite3.connect(path) as con:  # the jobs table as rgcds wrote it before schema 3
        con.execute(
            "CREATE TABLE jobs (job_id INTEGER PRIMARY KEY AUTOINCREMENT, study_uid TEXT NOT "
            "NULL, state TEXT NOT NULL, reason TEXT, created_at REAL NOT NULL, updated_at REAL "
            "NOT NULL, first_received REAL, last_received REAL, received_count INTEGER NOT "
            "NULL DEFAULT 0)"
        )
        con.execute("INSERT INTO jobs VALUES (1, ?, 'queued', NULL, 1, 1, 1, 1, 1)", (STUDY,))
        con.execute("PRAGMA user_version=2")
    with JobStore(path) as s:
        job = s.claim_next()
        assert job is not None and job.job_id == 1 and job.attempts == 1


@pytest.mark.parametrize(
    ("record", "columns"),
    [(Job, "_JOB_COLS"), (OutboxItem, "_OUTBOX_COLS"), (InstanceRecord, "_INSTANCE_COLS")],
)
def test_each_select_lists_its_records_fields_in_order(record: type, columns: str) -> None:
    """Rows become records by position, so a reordered column list must fail here."""
    from dataclasses import fields

    from rgcds.store import db

    listed = [c.strip() for c in getattr(db, columns).split(",")]
    assert listed == [f.name for f in fields(record)]
