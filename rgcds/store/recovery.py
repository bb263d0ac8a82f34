"""The journal's records as spool files: materialising, replaying after a crash, rebuilding.

The lower half of :mod:`rgcds.store.ingest` (see its module doc): copying a journal record
out to its per-instance file, replaying the segments a crash left
(:func:`replay_journal`) and rebuilding a lost job store from the spool files
(:func:`rebuild_index`).
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from rgcds.dicom.parse import InstanceMeta, read_instance_meta
from rgcds.exceptions import DicomInputError, InvalidUIDError, StorageError
from rgcds.store.jobs import JobStore
from rgcds.store.journal import Journal, scan_segment, sync_filesystem
from rgcds.store.spool import DIR_MODE, FILE_MODE, Spool

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :meth:`Ingestor.recover` found in the journal left by the previous run."""

    segments: int
    records: int
    materialised: int
    recorded: int
    torn_bytes: int


def _header(meta: InstanceMeta, received_at: float) -> dict[str, Any]:
    return {
        "study": meta.study_uid, "series": meta.series_uid, "sop": meta.sop_instance_uid,
        "class": meta.sop_class_uid, "ts": meta.transfer_syntax_uid, "modality": meta.modality,
        "in": meta.instance_number, "iia": meta.images_in_acquisition,
        "nof": meta.number_of_frames, "t": received_at,
    }


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _meta(header: dict[str, Any]) -> InstanceMeta:
    return InstanceMeta(
        study_uid=str(header["study"]), series_uid=str(header["series"]),
        sop_instance_uid=str(header["sop"]), sop_class_uid=str(header["class"]),
        transfer_syntax_uid=str(header.get("ts") or ""),
        modality=str(header.get("modality") or ""),
        instance_number=_int(header.get("in")), images_in_acquisition=_int(header.get("iia")),
        number_of_frames=_int(header.get("nof")),
    )


def _mkdirs(path: Path) -> None:
    """Create ``path`` and parents, mode 0750 (not fsynced: a checkpoint does that)."""
    if path.is_dir():
        return
    _mkdirs(path.parent)
    try:
        path.mkdir(mode=DIR_MODE)
        os.chmod(path, DIR_MODE)
    except FileExistsError:
        pass


def _copy_out(src_fd: int, offset: int, length: int, dest: Path, incoming: Path) -> None:
    """Copy ``length`` bytes at ``offset`` of a segment to ``dest`` (temp file + rename)."""
    _mkdirs(dest.parent)
    fd, name = tempfile.mkstemp(dir=incoming, suffix=".part")
    try:
        os.fchmod(fd, FILE_MODE)
        done = 0
        use_copy = hasattr(os, "copy_file_range")
        while done < length:
            n = 0
            if use_copy:
                try:
                    n = os.copy_file_range(src_fd, fd, length - done, offset + done)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL,
                                         errno.EOPNOTSUPP, errno.EBADF):
                        raise
                    use_copy = False
                    continue
            else:
                chunk = os.pread(src_fd, min(length - done, 4 << 20), offset + done)
                n = os.write(fd, chunk) if chunk else 0
            if n <= 0:
                raise OSError(errno.EIO, "the journal segment ended early")
            done += n
        os.close(fd)
        fd = -1
        os.replace(name, dest)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(name).unlink(missing_ok=True)
        raise


def _file_matches(path: Path, length: int, crc: int) -> bool:
    try:
        if path.stat().st_size != length:
            return False
        running = 0
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                running = zlib.crc32(chunk, running)
        return running == crc
    except OSError:
        return False


def replay_journal(journal: Journal, spool: Spool, jobs: JobStore) -> RecoveryReport:
    """Replay the journal segments a crash left: files and job store rows.

    Every valid record is checked against its per-instance file (size and CRC-32) and
    copied out again if it is missing or differs; every instance the job store lacks
    (or holds with another size or time) is recorded, in receive order. Then the files
    are made durable and the segments deleted. A torn record at a segment's end (a
    write cut by a crash, never acknowledged) is dropped.

    Returns
    -------
    RecoveryReport
        What was found and repaired.

    Raises
    ------
    StorageError
        If the spool or the job store cannot be written.
    """
    paths = journal.existing()
    records = materialised = torn = 0
    latest: dict[str, tuple[InstanceMeta, Path, int, float]] = {}
    try:
        for path in paths:
            scanned, end = scan_segment(path)
            torn += path.stat().st_size - end
            with open(path, "rb") as fh:
                for rec in scanned:
                    records += 1
                    try:
                        meta = _meta(rec.header)
                        dest = spool.instance_path(meta)
                    except (KeyError, InvalidUIDError):
                        logger.warning("journal record with invalid identifiers skipped")
                        continue
                    if not _file_matches(dest, rec.length, rec.crc):
                        _copy_out(fh.fileno(), rec.offset, rec.length, dest,
                                  spool.incoming_dir)
                        materialised += 1
                    t = rec.header.get("t")
                    stamp = float(t) if isinstance(t, int | float) else time.time()
                    latest[meta.sop_instance_uid] = (meta, dest, rec.length, stamp)
        rows = []
        for meta, dest, size, stamp in latest.values():
            old = jobs.find_instance(meta.sop_instance_uid)
            if (old is None or Path(old.path) != dest or old.size != size
                    or abs(old.received_at - stamp) > 1e-3):
                rows.append((meta, dest, size, stamp))
        if rows:
            jobs.record_instances(rows)
        if paths:
            sync_filesystem(spool.root)
            journal.remove_files(paths)
    except OSError as exc:
        raise StorageError(f"The spool journal cannot be recovered: {exc}.") from None
    report = RecoveryReport(len(paths), records, materialised, len(rows), torn)
    return report


def rebuild_index(spool: Spool, jobs: JobStore, *, max_inflated: int = 2_147_483_648) -> int:
    """Record every spool file the job store lacks (a lost or damaged job store).

    Replay the journal first (:class:`Ingestor` does at start). Each file's identifiers are
    read from its header; its receive time is its modification time.

    Returns
    -------
    int
        The number of instances recorded.
    """
    known = set()
    for study_dir in sorted(p for p in spool.spool_dir.iterdir() if p.is_dir()):
        known |= {r.path for r in jobs.instances(study_dir.name)}
    rows = []
    for path in sorted(spool.spool_dir.glob("*/*/*.dcm")):
        if str(path) in known:
            continue
        try:
            data = path.read_bytes()
            meta = read_instance_meta(data, max_inflated=max_inflated)
            if spool.instance_path(meta) != path:
                logger.warning("spool file not where its UIDs put it; skipped", file=path.name)
                continue
        except (OSError, DicomInputError, InvalidUIDError) as exc:
            logger.warning("spool file unreadable; skipped", file=path.name, error=str(exc))
            continue
        rows.append((meta, path, len(data), path.stat().st_mtime))
    rows.sort(key=lambda r: r[3])
    if rows:
        jobs.record_instances(rows)
    logger.info("job store rebuilt from the spool", recorded=len(rows))
    return len(rows)
