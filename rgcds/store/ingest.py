"""Store one received instance durably and record it: the listener's storage sink."""

from __future__ import annotations

import threading
from enum import StrEnum
from pathlib import Path
from typing import Literal

import structlog

from rgcds.dicom.errors import DuplicateInstanceError
from rgcds.dicom.parse import InstanceMeta
from rgcds.store.jobs import JobStore
from rgcds.store.spool import Spool

logger = structlog.get_logger(__name__)

DuplicatePolicy = Literal["replace", "ignore", "reject"]


class IngestOutcome(StrEnum):
    """What happened to a received instance (all are acknowledged with success)."""

    STORED = "stored"
    REPLACED = "replaced"
    IGNORED = "ignored"


class Ingestor:
    """Write an instance to the spool (temp, fsync, rename, fsync dir), then record it.

    Parameters
    ----------
    spool
        The spool.
    jobs
        The job store.
    duplicate_policy
        For a SOP Instance UID already recorded: ``replace`` the file and row, ``ignore``
        (keep the first, acknowledge), or ``reject`` (raise :class:`DuplicateInstanceError`).
    min_free_bytes
        Refuse (``OutOfResourcesError``) when the write would leave less free space.
    """

    def __init__(
        self,
        spool: Spool,
        jobs: JobStore,
        duplicate_policy: DuplicatePolicy = "replace",
        min_free_bytes: int = 0,
    ) -> None:
        self.spool = spool
        self.jobs = jobs
        self.duplicate_policy = duplicate_policy
        self.min_free_bytes = min_free_bytes
        self._lock = threading.Lock()

    def _duplicate(self, meta: InstanceMeta) -> IngestOutcome | None:
        if self.duplicate_policy == "replace":
            return None
        if self.jobs.find_instance(meta.sop_instance_uid) is None:
            return None
        if self.duplicate_policy == "ignore":
            logger.info("duplicate instance ignored", study_uid=meta.study_uid,
                        sop_instance_uid=meta.sop_instance_uid)
            return IngestOutcome.IGNORED
        raise DuplicateInstanceError(
            f"The SOP instance {meta.sop_instance_uid} was already received and "
            "storage.duplicate_policy is 'reject'."
        )

    def __call__(self, meta: InstanceMeta, data: bytes) -> IngestOutcome:
        """Store and record one instance; return only when both are durable.

        Parameters
        ----------
        meta
            The instance's validated identifiers.
        data
            The whole DICOM file (preamble, file meta, dataset) as received.

        Returns
        -------
        IngestOutcome
            ``stored``, ``replaced`` or ``ignored``.

        Raises
        ------
        DuplicateInstanceError
            If the instance is a duplicate and the policy is ``reject``.
        OutOfResourcesError
            If free space is below the watermark or the disk is full.
        StorageError
            If the file or the job store cannot be written.
        InvalidUIDError
            If a UID is unsafe for a path (normally caught earlier).
        """
        dest = self.spool.instance_path(meta)
        dup = self._duplicate(meta)  # fast path: no write for an ignored/rejected duplicate
        if dup is not None:
            return dup
        self.spool.check_space(len(data), self.min_free_bytes)
        tmp = self.spool.write_temp(data)
        try:
            with self._lock:
                dup = self._duplicate(meta)  # another association may have won the race
                if dup is not None:
                    self.spool.discard(tmp)
                    return dup
                previous = self.jobs.find_instance(meta.sop_instance_uid)
                self.spool.commit(tmp, dest)
                try:
                    job = self.jobs.record_instance(meta, dest, len(data))
                except BaseException:
                    if previous is None:  # not acknowledged and not recorded: no orphan
                        self.spool.discard(dest)
                    raise
        except BaseException:
            self.spool.discard(tmp)
            raise
        if previous is not None and Path(previous.path) != dest:
            self.spool.discard(Path(previous.path))
        outcome = IngestOutcome.REPLACED if previous is not None else IngestOutcome.STORED
        logger.debug("instance stored", study_uid=meta.study_uid, job_id=job.job_id,
                     sop_instance_uid=meta.sop_instance_uid, outcome=outcome.value)
        return outcome


__all__ = ["DuplicatePolicy", "IngestOutcome", "Ingestor"]
