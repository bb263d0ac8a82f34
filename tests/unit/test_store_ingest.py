"""The storage sink: journal writes, duplicate policies, the free-space watermark.

The index and the per-instance files are written by the indexer thread: a test calls
``flush()`` (what the listener does before the A-RELEASE response) before it looks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rgcds.dicom.errors import DuplicateInstanceError, UidCollisionError
from rgcds.dicom.parse import InstanceMeta
from rgcds.exceptions import InvalidUIDError, OutOfResourcesError
from rgcds.store import Ingestor as _Ingestor
from rgcds.store import IngestOutcome, JobStore, Spool

META = InstanceMeta(
    study_uid="1.2.3",
    series_uid="1.2.3.4",
    sop_instance_uid="1.2.3.4.5",
    sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
)


_OPEN: list[Ingestor] = []


def Ingestor(*args: Any, **kwargs: Any) -> _Ingestor:  # closed by the fixture
    ingest = _Ingestor(*args, **kwargs)
    _OPEN.append(ingest)
    return ingest


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Spool, JobStore]]:
    spool = Spool(tmp_path)
    jobs = JobStore(tmp_path / "jobs.sqlite3")
    yield spool, jobs
    while _OPEN:
        _OPEN.pop().close()
    jobs.close()


def test_stored_where_expected_and_no_temp_left(parts: tuple[Spool, JobStore]) -> None:
    spool, jobs = parts
    ingest = Ingestor(spool, jobs)
    outcome = ingest(META, b"first")
    assert outcome is IngestOutcome.STORED
    assert ingest.flush(10)
    path = spool.spool_dir / "1.2.3" / "1.2.3.4" / "1.2.3.4.5.dcm"
    assert path.read_bytes() == b"first"
    assert list(spool.incoming_dir.iterdir()) == []
    rec = jobs.find_instance("1.2.3.4.5")
    assert rec is not None and Path(rec.path) == path and rec.size == 5


def test_replace_policy(parts: tuple[Spool, JobStore]) -> None:
    spool, jobs = parts
    ingest = Ingestor(spool, jobs, "replace")
    ingest(META, b"first")
    assert ingest(META, b"second") is IngestOutcome.REPLACED
    assert ingest.flush(10)
    assert spool.instance_path(META).read_bytes() == b"second"
    assert len(jobs.instances("1.2.3")) == 1


@pytest.mark.parametrize("indexed_first", [True, False])
@pytest.mark.parametrize("policy", ["replace", "ignore", "reject"])
def test_no_policy_takes_another_studys_instance(
    parts: tuple[Spool, JobStore], indexed_first: bool, policy: Any
) -> None:
    spool, jobs = parts
    ingest = Ingestor(spool, jobs, policy)
    ingest(META, b"first")
    if indexed_first:
        assert ingest.flush(10)
    other = InstanceMeta(study_uid="9.8.7", series_uid="9.8.7.6",
                         sop_instance_uid=META.sop_instance_uid,
                         sop_class_uid=META.sop_class_uid)
    with pytest.raises(UidCollisionError, match="another study"):
        ingest(other, b"intruder")
    assert ingest.flush(10)
    assert spool.instance_path(META).read_bytes() == b"first"
    assert not spool.instance_path(other).exists()
    rec = jobs.find_instance(META.sop_instance_uid)
    assert rec is not None and rec.study_uid == "1.2.3"
    assert jobs.instances("9.8.7") == []


def test_ignore_policy(parts: tuple[Spool, JobStore]) -> None:
    spool, jobs = parts
    ingest = Ingestor(spool, jobs, "ignore")
    ingest(META, b"first")
    assert ingest(META, b"second") is IngestOutcome.IGNORED
    assert ingest.flush(10)
    assert spool.instance_path(META).read_bytes() == b"first"


def test_reject_policy(parts: tuple[Spool, JobStore]) -> None:
    spool, jobs = parts
    ingest = Ingestor(spool, jobs, "reject")
    ingest(META, b"first")
    with pytest.raises(DuplicateInstanceError, match="reject"):
        ingest(META, b"second")
    assert ingest.flush(10)
    assert spool.instance_path(META).read_bytes() == b"first"
    assert list(spool.incoming_dir.iterdir()) == []


def test_watermark_refuses_before_writing(parts: tuple[Spool, JobStore]) -> None:
    spool, jobs = parts
    ingest = Ingestor(spool, jobs, min_free_bytes=1 << 62)
    with pytest.raises(OutOfResourcesError, match="min_free_bytes"):
        ingest(META, b"data")
    assert not spool.instance_path(META).exists()
    assert list(spool.incoming_dir.iterdir()) == []
    assert jobs.find_instance(META.sop_instance_uid) is None


def test_unsafe_uid_never_touches_disk(parts: tuple[Spool, JobStore]) -> None:
    spool, jobs = parts
    evil = InstanceMeta("1.2.3", "../../../../tmp", "1.2.3.4.5", "1.2.840.10008.5.1.4.1.1.4")
    with pytest.raises(InvalidUIDError):
        Ingestor(spool, jobs)(evil, b"data")
    assert list(spool.incoming_dir.iterdir()) == []


def test_clean_incoming_removes_partial_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (spool.incoming_dir / "abc.part").write_bytes(b"half")
    assert Spool(tmp_path).clean_incoming() == 1
    assert list(spool.incoming_dir.iterdir()) == []
