"""The spool journal: received instances appended to segment files, fsynced by group commit.

A received instance is one *record* appended to the current segment
``<root>/journal/<sequence>.seg``::

    magic "RGJ1" | header length (u32) | data length (u64) | CRC-32 of header + data (u32)
    header: JSON (UIDs, counting tags, receive time; never PHI) | data: the DICOM file

Appending is one ``write`` (to the kernel: it survives a crash of rgcds). :meth:`Journal.sync`
makes every record up to a log sequence number (LSN) durable with ``fdatasync``, as a group
commit: one caller (the leader) fsyncs for every record appended so far while the others
wait for the first fsync that covers theirs, so concurrent associations share fsyncs.

A segment is created (and its directory fsynced) once, then only appended to, so one
``fdatasync`` per commit is the only durable write on a store's critical path. Segments are
rotated by size and age, read back with :func:`scan_segment` (a torn or corrupt tail ends a
segment) and deleted by :meth:`Journal.retire` once their records are indexed and the
per-instance files made from them are durable (see :mod:`rgcds.store.ingest`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from rgcds.exceptions import OutOfResourcesError, StorageError
from rgcds.store.spool import DIR_MODE, FILE_MODE, fsync_dir, make_dirs_durable

logger = structlog.get_logger(__name__)

MAGIC = b"RGJ1"
_PREFIX = struct.Struct("<4sIQI")
PREFIX_SIZE = _PREFIX.size
MAX_HEADER = 64 << 10
"""A header longer than this marks a corrupt record."""
SEGMENT_SUFFIX = ".seg"
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def _os_error(exc: OSError, what: str) -> StorageError:
    if exc.errno in _NO_SPACE:
        return OutOfResourcesError(f"The disk is full while writing {what}: {exc.strerror}.")
    return StorageError(f"Cannot write {what}: {exc.strerror or exc}.")


@dataclass(eq=False)
class Segment:
    """One open segment file: appended to under the journal's lock, read by position."""

    seq: int
    path: Path
    fd: int
    size: int = 0
    opened_at: float = field(default_factory=time.monotonic)
    records: int = 0
    indexed: int = 0
    closed: bool = False
    last_lsn: int = 0

    @property
    def done(self) -> bool:
        """Closed and every record indexed: ready to retire."""
        return self.closed and self.indexed >= self.records


@dataclass(frozen=True, slots=True)
class Position:
    """Where an appended record is: its segment, the data's offset and length, its LSN."""

    segment: Segment
    offset: int
    length: int
    lsn: int
    crc: int


@dataclass(frozen=True, slots=True)
class ScannedRecord:
    """One valid record read back from a segment file."""

    header: dict[str, Any]
    offset: int
    length: int
    crc: int


def encode_record(header: dict[str, Any], data: bytes | memoryview) -> tuple[bytes, bytes, int]:
    """The record's prefix and header bytes, and the CRC-32 of the data alone."""
    head = json.dumps(header, separators=(",", ":")).encode()
    data_crc = zlib.crc32(data)
    crc = zlib.crc32(data, zlib.crc32(head))
    return _PREFIX.pack(MAGIC, len(head), len(data), crc), head, data_crc


def scan_segment(path: Path) -> tuple[list[ScannedRecord], int]:
    """Read every valid record of a segment file, in order.

    Returns
    -------
    records, valid_end
        The records, and the offset just after the last valid one (a torn or corrupt
        tail starts there).
    """
    out: list[ScannedRecord] = []
    end = 0
    with open(path, "rb") as fh:
        total = os.fstat(fh.fileno()).st_size
        while end + PREFIX_SIZE <= total:
            fh.seek(end)
            prefix = fh.read(PREFIX_SIZE)
            magic, hlen, dlen, crc = _PREFIX.unpack(prefix)
            if magic != MAGIC or hlen > MAX_HEADER or end + PREFIX_SIZE + hlen + dlen > total:
                break
            head = fh.read(hlen)
            running = zlib.crc32(head)
            data_crc = 0
            left = dlen
            while left:
                chunk = fh.read(min(left, 1 << 20))
                if not chunk:
                    break
                running = zlib.crc32(chunk, running)
                data_crc = zlib.crc32(chunk, data_crc)
                left -= len(chunk)
            if left or running != crc:
                break
            try:
                header = json.loads(head)
            except ValueError:
                break
            if not isinstance(header, dict):
                break
            out.append(ScannedRecord(header, end + PREFIX_SIZE + hlen, dlen, data_crc))
            end += PREFIX_SIZE + hlen + dlen
    return out, end


_LIBC: Any = None


def sync_filesystem(path: Path) -> None:
    """Make everything written to ``path``'s file system durable (``syncfs``, else ``sync``)."""
    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        _LIBC = ctypes.CDLL(name, use_errno=True) if name else False
    fn = getattr(_LIBC, "syncfs", None) if _LIBC else None
    if fn is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


class Journal:
    """Append-only segments with group commit.

    Parameters
    ----------
    directory
        ``<root>/journal`` (created, mode 0750).
    segment_bytes
        Rotate the current segment once it holds this many bytes.
    segment_seconds
        Rotate the current segment once it has been open this long (checked at appends
        and by :meth:`rotate_if_idle`).
    """

    def __init__(
        self, directory: Path, *, segment_bytes: int = 256 << 20, segment_seconds: float = 20.0
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        try:
            make_dirs_durable(directory)
        except OSError as exc:
            raise _os_error(exc, f"the journal {directory}") from None
        existing = self.existing()
        self._next_seq = (int(existing[-1].stem) + 1) if existing else 1
        self._lock = threading.Lock()  # appends and rotation
        self._cond = threading.Condition()  # group commit
        self._current: Segment | None = None
        self._segments: list[Segment] = []  # open (not retired), oldest first
        self._dirty: list[Segment] = []  # with appends not yet fsynced
        self._appended = 0
        self._durable = 0
        self._syncing = False
        self._failed: str | None = None
        self.fsyncs = 0

    # -- files --------------------------------------------------------------------------

    def existing(self) -> list[Path]:
        """Segment files on disk, oldest first."""
        return sorted(
            (p for p in self.directory.glob("*" + SEGMENT_SUFFIX) if p.stem.isdigit()),
            key=lambda p: int(p.stem),
        )

    def _open_segment(self) -> Segment:
        seq = self._next_seq
        self._next_seq += 1
        path = self.directory / f"{seq:012d}{SEGMENT_SUFFIX}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, FILE_MODE)
            os.fchmod(fd, FILE_MODE)
            fsync_dir(self.directory)  # the new name is durable before any record in it
        except OSError as exc:
            raise _os_error(exc, "a new journal segment") from None
        seg = Segment(seq, path, fd)
        self._segments.append(seg)
        return seg

    def _close_current(self) -> None:
        if self._current is not None:
            self._current.closed = True
            self._current = None

    # -- appending ----------------------------------------------------------------------

    @property
    def appended_lsn(self) -> int:
        """The LSN of the last appended record."""
        return self._appended

    @property
    def durable_lsn(self) -> int:
        """Every record up to this LSN is fsynced."""
        return self._durable

    def append(self, header: dict[str, Any], data: bytes | memoryview) -> Position:
        """Append one record (one write, to the kernel); return where it is.

        Raises
        ------
        OutOfResourcesError
            If the disk is full.
        StorageError
            On another I/O error, or after a failed fsync (the journal refuses writes
            until the daemon restarts and recovers it).
        """
        prefix, head, data_crc = encode_record(header, data)
        view = memoryview(data)
        with self._lock:
            if self._failed is not None:
                raise StorageError(self._failed)
            seg = self._current
            if seg is not None and (
                seg.size >= self.segment_bytes
                or time.monotonic() - seg.opened_at >= self.segment_seconds
            ):
                self._close_current()
                seg = None
            if seg is None:
                seg = self._current = self._open_segment()
            start = seg.size
            total = len(prefix) + len(head) + len(view)
            try:
                written = os.writev(seg.fd, [prefix, head, view])
                while written < total:  # a short write: finish the record
                    parts = b"".join([prefix, head])
                    rest = (memoryview(parts)[written:] if written < len(parts)
                            else view[written - len(parts):])
                    more = os.write(seg.fd, rest)
                    if more <= 0:
                        raise OSError(errno.EIO, "short write")
                    written += more
            except OSError as exc:
                # A partial record would hide every later one: cut it off, start afresh.
                try:
                    os.ftruncate(seg.fd, start)
                except OSError:
                    pass
                self._close_current()
                raise _os_error(exc, "a received instance") from None
            seg.size = start + total
            seg.records += 1
            self._appended += 1
            seg.last_lsn = self._appended
            if not self._dirty or self._dirty[-1] is not seg:
                self._dirty.append(seg)
            return Position(seg, start + len(prefix) + len(head), len(view), self._appended,
                            data_crc)

    def sync(self, lsn: int | None = None) -> None:
        """Return once every record up to ``lsn`` (default: all appended) is fsynced.

        Group commit: if another thread's fsync is running, wait for it and check whether
        it covered ``lsn``; otherwise fsync every segment with unsynced records.

        Raises
        ------
        StorageError
            If ``fdatasync`` fails (the journal then refuses further writes: after a failed
            fsync the kernel may have dropped the unsynced pages).
        """
        target = self._appended if lsn is None else lsn
        with self._cond:
            while self._durable < target:
                if self._failed is not None:
                    raise StorageError(self._failed)
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                with self._lock:
                    upto = self._appended
                    segments, self._dirty = self._dirty, []
                self._cond.release()
                error: OSError | None = None
                try:
                    for seg in segments:
                        os.fdatasync(seg.fd)
                except OSError as exc:
                    error = exc
                finally:
                    self._cond.acquire()
                self._syncing = False
                self.fsyncs += 1
                if error is not None:
                    self._failed = (
                        f"The spool journal could not be fsynced ({error.strerror or error}); "
                        "no instance is accepted until rgcds restarts and recovers the spool."
                    )
                    logger.error("journal fsync failed", error=str(error))
                    self._cond.notify_all()
                    raise StorageError(self._failed)
                self._durable = max(self._durable, upto)
                self._cond.notify_all()

    # -- life cycle ---------------------------------------------------------------------

    def rotate_if_idle(self, idle_seconds: float) -> None:
        """Close the current segment if it is old enough (so that it can be retired)."""
        with self._lock:
            seg = self._current
            if seg is not None and time.monotonic() - seg.opened_at >= idle_seconds:
                self._close_current()

    def close_current(self) -> None:
        """Close the current segment; the next append opens a new one."""
        with self._lock:
            self._close_current()

    def retirable(self) -> list[Segment]:
        """Closed segments whose records are all indexed, oldest first."""
        with self._lock:
            return [s for s in self._segments if s.done]

    def retire(self, segments: list[Segment]) -> None:
        """Delete segments (their content is durable elsewhere) and fsync the directory."""
        if not segments:
            return
        with self._lock:
            for seg in segments:
                if seg in self._segments:
                    self._segments.remove(seg)
                if seg in self._dirty:
                    self._dirty.remove(seg)
        for seg in segments:
            try:
                os.close(seg.fd)
            except OSError:
                pass
            seg.path.unlink(missing_ok=True)
        try:
            fsync_dir(self.directory)
        except OSError as exc:
            logger.warning("journal directory not fsynced after retiring segments",
                           error=str(exc))

    def remove_files(self, paths: list[Path]) -> None:
        """Delete recovered segment files (their content is durable elsewhere)."""
        for p in paths:
            p.unlink(missing_ok=True)
        if paths:
            fsync_dir(self.directory)

    def open_segments(self) -> Iterator[Segment]:
        """The segments not yet retired (for tests and metrics)."""
        with self._lock:
            yield from list(self._segments)

    def close(self) -> None:
        """Close every file descriptor (segments stay on disk)."""
        with self._lock:
            self._close_current()
            for seg in self._segments:
                try:
                    os.close(seg.fd)
                except OSError:
                    pass
            self._segments = []
            self._dirty = []


__all__ = [
    "DIR_MODE",
    "MAGIC",
    "PREFIX_SIZE",
    "Journal",
    "Position",
    "ScannedRecord",
    "Segment",
    "encode_record",
    "scan_segment",
    "sync_filesystem",
]
