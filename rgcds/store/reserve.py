"""A reserve of disk space, so that a full disk is answered rather than an outage.

rgcds refuses instances below ``storage.min_free_bytes`` (C-STORE 0xA700), but the disk can
still fill from elsewhere (logs, another service, an operator's copy). SQLite cannot even
*read* a write-ahead-logged database on a full disk after an unclean stop (it must rebuild
its shared-memory index), so neither ``rgcds status`` nor the daemon could start - a restart
would turn a full disk into an outage. The reserve is a preallocated file of
``storage.reserve_bytes`` under the storage root: when the job store cannot be opened it is
deleted and the open is tried again; the daemon then starts, answers C-ECHO, and answers
C-STORE with 0xA700 until space is back, and creates the reserve again once the disk has
room for it above ``min_free_bytes``.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import structlog

from rgcds.exceptions import StorageError
from rgcds.store.jobs import JobStore, job_store_path

logger = structlog.get_logger(__name__)

RESERVE_NAME = "reserve.bin"
_CHUNK = 1 << 20


def reserve_path(root: Path | str) -> Path:
    """The reserve file under the storage root."""
    return Path(root) / RESERVE_NAME


def ensure_reserve(root: Path | str, size: int, min_free_bytes: int) -> bool:
    """Create the reserve if it is missing and the disk has room for it.

    Parameters
    ----------
    root
        The storage root (which must exist).
    size
        ``storage.reserve_bytes``; 0 means no reserve.
    min_free_bytes
        The reserve is created only if at least this much stays free after it.

    Returns
    -------
    bool
        Whether the reserve exists now (``True`` when ``size`` is 0: nothing is missing).
    """
    if size <= 0:
        return True
    path = reserve_path(root)
    if path.exists():
        return True
    try:
        if shutil.disk_usage(root).free - size < min_free_bytes:
            return False
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:  # a file system without fallocate: write the blocks
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                block = bytes(_CHUNK)
                for start in range(0, size, _CHUNK):
                    os.write(fd, block[: min(_CHUNK, size - start)])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        path.with_suffix(".tmp").unlink(missing_ok=True)
        logger.warning("disk reserve not created", error=exc.strerror or str(exc))
        return False
    logger.info("disk reserve created", bytes=size)
    return True


def release_reserve(root: Path | str) -> int:
    """Delete the reserve; the bytes freed (0 when there was none)."""
    path = reserve_path(root)
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    logger.warning("disk reserve released: the disk is full", bytes=size)
    return size


def open_job_store(root: Path | str) -> JobStore:
    """Open the job store under ``root``, releasing the reserve if that is what it takes.

    Raises
    ------
    StorageError
        If the store cannot be opened, with the reserve released or without one.
    """
    path = job_store_path(root)
    try:
        return JobStore(path)
    except StorageError as first:
        if not release_reserve(root):
            raise
        try:
            return JobStore(path)
        except StorageError:
            raise first from None


__all__ = ["RESERVE_NAME", "ensure_reserve", "open_job_store", "release_reserve",
           "reserve_path"]
