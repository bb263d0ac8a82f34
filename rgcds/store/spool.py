"""The spool: received instances on disk, ``<root>/spool/<Study>/<Series>/<SOPInstance>.dcm``.

Every write is durable before it is visible: the bytes go to a temporary file in
``<root>/incoming`` (same file system), are fsynced, renamed atomically into place, and the
directory (and any directory created on the way) is fsynced.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import structlog

from rgcds.dicom.parse import InstanceMeta
from rgcds.dicom.uids import uid_path
from rgcds.exceptions import OutOfResourcesError, StorageError

logger = structlog.get_logger(__name__)

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a rename or a new entry in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


FILE_MODE = 0o640
"""Mode of every file rgcds writes under the storage root, whatever the umask."""
DIR_MODE = 0o750
"""Mode of every directory rgcds creates under the storage root, whatever the umask."""


def make_dirs_durable(path: Path) -> None:
    """Create ``path`` and missing parents (mode 0750), fsyncing each parent after a creation."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode is filtered by the umask
        fsync_dir(d.parent)


def _os_error(exc: OSError, what: str) -> StorageError:
    if exc.errno in _NO_SPACE:
        return OutOfResourcesError(f"The disk is full while writing {what}: {exc.strerror}.")
    return StorageError(f"Cannot write {what}: {exc.strerror or exc}.")


class Spool:
    """Received instances on disk.

    Parameters
    ----------
    root
        ``storage.root``; the spool is ``root/spool`` and temporary files ``root/incoming``.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.spool_dir = self.root / "spool"
        self.incoming_dir = self.root / "incoming"
        try:
            make_dirs_durable(self.spool_dir)
            make_dirs_durable(self.incoming_dir)
        except OSError as exc:
            raise _os_error(exc, f"the spool under {self.root}") from None

    def study_dir(self, study_uid: str) -> Path:
        """The directory of a study (validated UID).

        Raises
        ------
        InvalidUIDError
            If the UID is not valid.
        """
        return uid_path(self.spool_dir, study_uid)

    def instance_path(self, meta: InstanceMeta) -> Path:
        """Where an instance is stored: ``spool/<Study>/<Series>/<SOPInstance>.dcm``."""
        return uid_path(
            self.spool_dir, meta.study_uid, meta.series_uid, meta.sop_instance_uid, suffix=".dcm"
        )

    def free_bytes(self) -> int:
        """Free bytes on the spool's file system (for unprivileged users)."""
        return shutil.disk_usage(self.spool_dir).free

    def check_space(self, needed: int, min_free_bytes: int) -> None:
        """Raise unless writing ``needed`` bytes leaves at least ``min_free_bytes`` free.

        Raises
        ------
        OutOfResourcesError
            If the watermark would be crossed.
        """
        free = self.free_bytes()
        if free - needed < min_free_bytes:
            raise OutOfResourcesError(
                f"Only {free} bytes are free on the spool's disk; storing {needed} more would "
                f"go below storage.min_free_bytes={min_free_bytes}. Free space or lower it."
            )

    def write_temp(self, data: bytes) -> Path:
        """Write ``data`` to a new temporary file (mode 0640) in ``incoming`` and fsync it.

        Raises
        ------
        OutOfResourcesError
            If the disk is full (the partial file is removed).
        StorageError
            On any other I/O error.
        """
        fd, name = tempfile.mkstemp(dir=self.incoming_dir, suffix=".part")
        tmp = Path(name)
        try:
            os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600; group rgcds may read, others not
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _os_error(exc, "a received instance") from None
        return tmp

    def commit(self, tmp: Path, dest: Path) -> None:
        """Atomically rename a temporary file to ``dest`` and fsync its directory.

        Raises
        ------
        StorageError
            If the rename or fsync fails (the temporary file is removed).
        """
        try:
            make_dirs_durable(dest.parent)
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _os_error(exc, str(dest.name)) from None

    def discard(self, path: Path) -> None:
        """Remove a file if it exists (best effort)."""
        try:
            path.unlink(missing_ok=True)
        except OSError:
            logger.warning("could not remove a spool file", file=path.name)

    def clean_incoming(self) -> int:
        """Delete temporary files left by a crash; returns how many were removed."""
        removed = 0
        for p in self.incoming_dir.glob("*.part"):
            self.discard(p)
            removed += 1
        if removed:
            logger.info("removed partial files from a previous run", count=removed)
        return removed


__all__ = ["Spool", "fsync_dir", "make_dirs_durable"]
