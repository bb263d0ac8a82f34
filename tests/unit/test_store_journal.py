"""The spool journal: record format, group commit, torn tails, recovery and rebuild."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from rgcds.dicom.parse import InstanceMeta
from rgcds.store import Ingestor, JobStore, Journal, Spool, rebuild_index
from rgcds.store.journal import scan_segment

MR = "1.2.840.10008.5.1.4.1.1.4"


def meta(n: int, study: str = "1.2.3") -> InstanceMeta:
    return InstanceMeta(study, study + ".1", f"{study}.1.{n}", MR, ExplicitVRLittleEndian,
                        "MR", n)


def dicom_bytes(m: InstanceMeta) -> bytes:
    from io import BytesIO

    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = m.sop_class_uid
    fm.MediaStorageSOPInstanceUID = m.sop_instance_uid
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = fm
    ds.SOPClassUID, ds.SOPInstanceUID = m.sop_class_uid, m.sop_instance_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = m.study_uid, m.series_uid
    ds.Modality, ds.InstanceNumber = "MR", m.instance_number
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_records_read_back_and_torn_tail_dropped(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal")
    for i in range(3):
        j.append({"i": i}, bytes([i]) * (1000 + i))
    j.sync()
    seg = j.existing()[0]
    good = seg.stat().st_size
    with open(seg, "ab") as fh:  # a record cut by a crash
        fh.write(b"RGJ1" + b"\x05\x00\x00\x00" + b"\xff" * 30)
    records, end = scan_segment(seg)
    assert [r.header["i"] for r in records] == [0, 1, 2]
    assert [r.length for r in records] == [1000, 1001, 1002]
    assert end == good
    j.close()


def test_corrupt_record_ends_the_segment(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal")
    positions = [j.append({"i": i}, b"x" * 100) for i in range(3)]
    j.sync()
    seg = j.existing()[0]
    raw = bytearray(seg.read_bytes())
    raw[positions[1].offset + 10] ^= 0xFF  # a flipped bit in the second record's data
    seg.write_bytes(bytes(raw))
    records, _ = scan_segment(seg)
    assert [r.header["i"] for r in records] == [0]
    j.close()


def test_group_commit_shares_fsyncs(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal")
    barrier = threading.Barrier(8)

    def writer() -> None:
        barrier.wait()
        for _ in range(25):
            j.sync(j.append({}, b"y" * 4096).lsn)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert j.durable_lsn == j.appended_lsn == 200
    assert j.fsyncs < 200  # each waited for the first fsync that covered it
    j.close()


def test_recovery_after_a_crash_before_indexing(tmp_path: Path) -> None:
    spool, jobs = Spool(tmp_path), JobStore(tmp_path / "jobs.sqlite3")
    crashed = Ingestor(spool, jobs)
    crashed._closed = True  # the indexer stops: nothing reaches the job store or spool files
    with crashed._cv:
        crashed._cv.notify_all()
    crashed._thread.join(5)
    metas = [meta(n) for n in range(1, 4)]
    for m in metas:
        crashed._closed = False
        crashed(m, dicom_bytes(m))  # acknowledged: in the journal, fsynced
        crashed._closed = True
    assert all(jobs.find_instance(m.sop_instance_uid) is None for m in metas)
    with open(crashed.journal.existing()[0], "ab") as fh:
        fh.write(b"RGJ1\x00")  # and a torn write at the end
    jobs.close()  # "kill -9": the journal's files stay as they are

    jobs = JobStore(tmp_path / "jobs.sqlite3")
    ingest = Ingestor(spool, jobs)
    report = ingest.last_recovery
    assert report is not None
    assert (report.records, report.materialised, report.recorded) == (3, 3, 3)
    assert report.torn_bytes == 5
    for m in metas:
        rec = jobs.find_instance(m.sop_instance_uid)
        assert rec is not None and Path(rec.path).read_bytes() == dicom_bytes(m)
    assert not list((tmp_path / "journal").glob("*.seg"))
    assert ingest.close()
    jobs.close()


def test_association_durability_flushes_at_release(tmp_path: Path) -> None:
    spool, jobs = Spool(tmp_path), JobStore(tmp_path / "jobs.sqlite3")
    ingest = Ingestor(spool, jobs, durability="association")
    m = meta(1)
    ingest(m, dicom_bytes(m))
    assert ingest.flush(10)  # what the listener calls before the A-RELEASE response
    assert ingest.journal.durable_lsn == ingest.journal.appended_lsn
    assert jobs.find_instance(m.sop_instance_uid) is not None
    assert ingest.close()
    jobs.close()


def test_checkpoint_retires_indexed_segments(tmp_path: Path) -> None:
    spool, jobs = Spool(tmp_path), JobStore(tmp_path / "jobs.sqlite3")
    ingest = Ingestor(spool, jobs, segment_bytes=1)  # a segment per record
    for n in range(1, 4):
        ingest(meta(n), dicom_bytes(meta(n)))
    assert ingest.flush(10)
    assert ingest.checkpoint(everything=True) >= 2
    assert not list((tmp_path / "journal").glob("*.seg"))
    assert ingest.close()
    jobs.close()


def test_rebuild_index_from_the_spool(tmp_path: Path) -> None:
    spool, jobs = Spool(tmp_path), JobStore(tmp_path / "jobs.sqlite3")
    ingest = Ingestor(spool, jobs)
    metas = [meta(n) for n in range(1, 5)] + [meta(1, study="1.2.4")]
    for m in metas:
        ingest(m, dicom_bytes(m))
    assert ingest.close()
    jobs.close()
    for name in ("jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    jobs = JobStore(tmp_path / "jobs.sqlite3")
    assert rebuild_index(spool, jobs) == 5
    assert rebuild_index(spool, jobs) == 0  # idempotent
    got = {r.sop_instance_uid for s in ("1.2.3", "1.2.4") for r in jobs.instances(s)}
    assert got == {m.sop_instance_uid for m in metas}
    assert jobs.find_instance(meta(2).sop_instance_uid).instance_number == 2  # type: ignore[union-attr]
    jobs.close()


@pytest.mark.parametrize("policy", ["ignore", "reject"])
def test_duplicate_seen_before_it_is_indexed(tmp_path: Path, policy: str) -> None:
    from rgcds.dicom.errors import DuplicateInstanceError
    from rgcds.store import IngestOutcome

    spool, jobs = Spool(tmp_path), JobStore(tmp_path / "jobs.sqlite3")
    ingest = Ingestor(spool, jobs, policy, batch_seconds=5.0)  # type: ignore[arg-type]
    m = meta(1)
    ingest(m, dicom_bytes(m))
    if policy == "ignore":
        assert ingest(m, b"other") is IngestOutcome.IGNORED
    else:
        with pytest.raises(DuplicateInstanceError):
            ingest(m, b"other")
    assert ingest.close()
    rec = jobs.find_instance(m.sop_instance_uid)
    assert rec is not None and Path(rec.path).read_bytes() == dicom_bytes(m)
    jobs.close()


