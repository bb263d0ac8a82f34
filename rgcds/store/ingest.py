"""Store received instances durably and index them: the listener's storage sink.

The critical path of a C-STORE is one append to the spool journal
(:class:`rgcds.store.journal.Journal`) and, in ``instance`` durability, one group-committed
``fdatasync`` that covers it. Everything else happens in the *indexer* thread, in batches:

1. (``association`` durability) fsync the journal up to the batch, one fsync for the batch;
2. *materialise* each record as the per-instance file the rest of rgcds reads,
   ``spool/<Study>/<Series>/<SOPInstance>.dcm`` (an in-kernel copy from the segment,
   ``copy_file_range``; written to ``incoming/`` and renamed into place; not fsynced);
3. record the batch in the job store in one transaction.

The journal segment stays the durable record of an instance until a *checkpoint* has made
the per-instance files durable (one ``syncfs``) after the job store recorded them; only
then is the segment deleted. So the job store is never the only record of an acknowledged
instance: at start, :meth:`Ingestor.recover` replays the segments left by a crash
(re-materialising any file that is missing or differs, re-recording any row that is
missing) and :func:`rebuild_index` rebuilds a lost job store from the spool files.

Durability (``[storage] durability``):

``instance``
    Success is sent once the instance's record is fsynced (group commit shares the fsync
    between concurrent associations). A power loss loses no acknowledged instance.
``association``
    Success is sent once the record is written to the kernel (a crash or ``kill -9`` of
    rgcds loses nothing); the indexer fsyncs in batches and :meth:`Ingestor.flush` fsyncs
    everything before the A-RELEASE response (and before any storage commitment success).
    A power loss may lose the instances acknowledged on associations not yet released.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

import structlog

from rgcds.dicom.errors import DuplicateInstanceError, UidCollisionError
from rgcds.dicom.parse import InstanceMeta
from rgcds.exceptions import RgcdsError, StorageError
from rgcds.store.jobs import JobStore
from rgcds.store.journal import Journal, Position, sync_filesystem
from rgcds.store.recovery import (
    RecoveryReport,
    _copy_out,
    _header,
    rebuild_index,
    replay_journal,
)
from rgcds.store.spool import Spool

logger = structlog.get_logger(__name__)

DuplicatePolicy = Literal["replace", "ignore", "reject"]
JOURNAL_DIR = "journal"


class Durability(StrEnum):
    """When a C-STORE success is sent (``[storage] durability``); see the module doc."""

    INSTANCE = "instance"
    ASSOCIATION = "association"


class IngestOutcome(StrEnum):
    """What happened to a received instance (all are acknowledged with success)."""

    STORED = "stored"
    REPLACED = "replaced"
    IGNORED = "ignored"


@dataclass(eq=False, slots=True)
class _Pending:
    meta: InstanceMeta
    dest: Path
    pos: Position
    received_at: float


class Ingestor:
    """The storage sink: journal append (+ group commit), indexing in another thread.

    Parameters
    ----------
    spool
        The spool (``storage.root``); the journal is ``root/journal``.
    jobs
        The job store.
    duplicate_policy
        For a SOP Instance UID already received: ``replace`` the file and row, ``ignore``
        (keep the first, acknowledge), or ``reject`` (raise :class:`DuplicateInstanceError`).
    min_free_bytes
        Refuse (``OutOfResourcesError``) when the write would leave less free space.
    durability
        ``instance`` or ``association`` (see the module docstring).
    batch_seconds
        The indexer commits at most once per this interval (unless flushed).
    checkpoint_seconds
        How long a journal segment stays open (and so at least on disk) before it is
        closed and, once indexed, checkpointed and deleted.
    segment_bytes
        A journal segment is closed once it holds this many bytes.
    recover
        Replay the journal left by a previous run now (the daemon's start); tests may
        call :meth:`recover` themselves.

    Raises
    ------
    StorageError
        If the journal cannot be opened or recovered.
    """

    def __init__(
        self,
        spool: Spool,
        jobs: JobStore,
        duplicate_policy: DuplicatePolicy = "replace",
        min_free_bytes: int = 0,
        *,
        durability: Durability | str = Durability.INSTANCE,
        batch_seconds: float = 0.05,
        checkpoint_seconds: float = 20.0,
        segment_bytes: int = 256 << 20,
        recover: bool = True,
    ) -> None:
        self.spool = spool
        self.jobs = jobs
        self.duplicate_policy = duplicate_policy
        self.min_free_bytes = min_free_bytes
        self.durability = Durability(durability)
        self.batch_seconds = batch_seconds
        self.checkpoint_seconds = checkpoint_seconds
        self.journal = Journal(spool.root / JOURNAL_DIR, segment_bytes=segment_bytes,
                               segment_seconds=checkpoint_seconds)
        self._lock = threading.Lock()  # duplicate check + append
        # Its own read connection: a WAL reader never waits for the indexer's commit (and
        # its fsync), which holds the shared store's lock.
        self._reader_lock = threading.Lock()
        try:
            self._reader = sqlite3.connect(f"file:{jobs.path}?mode=ro", uri=True,
                                           check_same_thread=False, timeout=30.0)
        except sqlite3.Error as exc:
            raise StorageError(f"The job store {jobs.path} cannot be read: {exc}.") from None
        self._cv = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._pending: dict[str, _Pending] = {}
        self._indexed_lsn = 0
        self._flush_wanted = False
        self._closed = False
        self._index_error: str | None = None
        self.last_recovery: RecoveryReport | None = None
        if recover:
            self.recover()
        self._thread = threading.Thread(target=self._index_loop, name="rgcds-indexer",
                                        daemon=True)
        self._thread.start()

    # -- the critical path --------------------------------------------------------------

    def _owner(self, sop_instance_uid: str) -> str | None:
        """The study that already holds this SOP Instance UID (pending or recorded)."""
        pending = self._pending.get(sop_instance_uid)
        if pending is not None:
            return pending.meta.study_uid
        with self._reader_lock:
            try:
                row = self._reader.execute(
                    "SELECT study_uid FROM instances WHERE sop_instance_uid=?",
                    (sop_instance_uid,),
                ).fetchone()
            except sqlite3.Error:
                found = self.jobs.find_instance(sop_instance_uid)
                return None if found is None else found.study_uid
        return None if row is None else str(row[0])

    def _duplicate(self, meta: InstanceMeta) -> tuple[IngestOutcome | None, bool]:
        """What the duplicate policy says, and whether this study already holds the UID."""
        owner = self._owner(meta.sop_instance_uid)
        if owner is None:
            return None, False
        if owner != meta.study_uid:
            # Not a resend: another study's instance. Replacing (or ignoring) would take its
            # file and row from that study, or drop this one unsaid: refused instead.
            raise UidCollisionError(
                f"The SOP Instance UID {meta.sop_instance_uid} already belongs to another "
                f"study ({owner}); the instance is refused and that study's instance kept."
            )
        if self.duplicate_policy == "replace":
            return None, True
        if self.duplicate_policy == "ignore":
            logger.info("duplicate instance ignored", study_uid=meta.study_uid,
                        sop_instance_uid=meta.sop_instance_uid)
            return IngestOutcome.IGNORED, True
        raise DuplicateInstanceError(
            f"The SOP instance {meta.sop_instance_uid} was already received and "
            "storage.duplicate_policy is 'reject'."
        )

    def __call__(self, meta: InstanceMeta, data: bytes) -> IngestOutcome:
        """Store one instance; return once it is as durable as ``durability`` promises.

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
            If the journal cannot be written or fsynced.
        InvalidUIDError
            If a UID is unsafe for a path (normally caught earlier).
        """
        if self._closed:
            raise StorageError("The spool is closed; the listener is stopping.")
        dest = self.spool.instance_path(meta)
        dup, _ = self._duplicate(meta)  # fast path: no write for an ignored/rejected duplicate
        if dup is not None:
            return dup
        self.spool.check_space(len(data), self.min_free_bytes)
        received_at = time.time()
        with self._lock:
            dup, replaced = self._duplicate(meta)  # another association may have won the race
            if dup is not None:
                return dup
            pos = self.journal.append(_header(meta, received_at), data)
            item = _Pending(meta, dest, pos, received_at)
            self._pending[meta.sop_instance_uid] = item
            with self._cv:  # under the append lock: the queue is in LSN order
                self._queue.append(item)
                self._cv.notify_all()
        if self.durability is Durability.INSTANCE:
            self.journal.sync(pos.lsn)
        outcome = IngestOutcome.REPLACED if replaced else IngestOutcome.STORED
        logger.debug("instance stored", study_uid=meta.study_uid, lsn=pos.lsn,
                     sop_instance_uid=meta.sop_instance_uid, outcome=outcome.value)
        return outcome

    def flush(self, timeout: float | None = None) -> bool:
        """Make every instance stored so far durable and indexed; ``True`` when done.

        What the listener calls before the A-RELEASE response (and a storage commitment
        answer). ``False`` if ``timeout`` passed first or the index could not be written.

        Raises
        ------
        StorageError
            If the journal cannot be fsynced.
        """
        target = self.journal.appended_lsn
        self.journal.sync(target)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            self._flush_wanted = True
            self._cv.notify_all()
            while self._indexed_lsn < target:
                if not self._thread.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(0.5 if left is None else min(left, 0.5))
        return True

    # -- the indexer --------------------------------------------------------------------

    def _index_loop(self) -> None:
        last_commit = 0.0
        last_checkpoint = time.monotonic()
        retry = 0.1
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    if self._cv.wait(1.0) is False:
                        break  # idle tick: maintenance below
                if self._queue and not (self._closed or self._flush_wanted):
                    wait = last_commit + self.batch_seconds - time.monotonic()
                    if wait > 0:
                        self._cv.wait(wait)
                if self._closed and not self._queue:
                    return
                batch = list(self._queue)
                self._flush_wanted = False
            if batch:
                try:
                    self._index(batch)
                except Exception as exc:  # retried: the journal has it all
                    self._index_error = str(exc)
                    logger.error("indexing received instances failed; retrying",
                                 error=str(exc), instances=len(batch))
                    if self._closed:
                        return
                    time.sleep(retry)
                    retry = min(5.0, retry * 2)
                    continue
                retry = 0.1
                last_commit = time.monotonic()
                with self._cv:
                    for _ in batch:
                        self._queue.popleft()
                    for item in batch:
                        if self._pending.get(item.meta.sop_instance_uid) is item:
                            del self._pending[item.meta.sop_instance_uid]
                        item.pos.segment.indexed += 1
                    self._indexed_lsn = max(self._indexed_lsn, batch[-1].pos.lsn)
                    self._index_error = None
                    self._cv.notify_all()
            if time.monotonic() - last_checkpoint >= min(1.0, self.checkpoint_seconds):
                last_checkpoint = time.monotonic()
                try:
                    self.checkpoint()
                except (OSError, RgcdsError) as exc:
                    logger.warning("spool checkpoint failed; segments kept", error=str(exc))

    def _index(self, batch: list[_Pending]) -> None:
        self.journal.sync(batch[-1].pos.lsn)  # association mode: one fsync for the batch
        latest: dict[str, _Pending] = {}
        for item in batch:
            latest[item.meta.sop_instance_uid] = item
        previous: list[Path] = []
        for item in latest.values():
            _copy_out(item.pos.segment.fd, item.pos.offset, item.pos.length, item.dest,
                      self.spool.incoming_dir)
            if self.duplicate_policy == "replace":
                old = self.jobs.find_instance(item.meta.sop_instance_uid)
                if old is not None and Path(old.path) != item.dest:
                    previous.append(Path(old.path))
        self.jobs.record_instances(
            [(i.meta, i.dest, i.pos.length, i.received_at) for i in latest.values()]
        )
        for p in previous:
            self.spool.discard(p)

    def checkpoint(self, *, everything: bool = False) -> int:
        """Delete journal segments whose records are indexed, after a ``syncfs``.

        Parameters
        ----------
        everything
            Close the current segment first (at stop), whatever its age.

        Returns
        -------
        int
            The number of segments deleted.
        """
        if everything:
            self.journal.close_current()
        else:
            self.journal.rotate_if_idle(self.checkpoint_seconds)
        segments = self.journal.retirable()
        if not segments:
            return 0
        sync_filesystem(self.spool.root)  # the materialised files, their directories
        self.journal.retire(segments)
        logger.debug("spool checkpoint", segments=len(segments))
        return len(segments)

    # -- recovery -----------------------------------------------------------------------

    def recover(self) -> RecoveryReport:
        """Replay the journal segments a crash left (:func:`~rgcds.store.recovery.replay_journal`).

        The report is kept as :attr:`last_recovery`.
        """
        report = replay_journal(self.journal, self.spool, self.jobs)
        self.last_recovery = report
        if report.segments:
            logger.warning("spool journal recovered after an unclean stop",
                           segments=report.segments, records=report.records,
                           materialised=report.materialised, recorded=report.recorded,
                           torn_bytes=report.torn_bytes)
        return report

    # -- life cycle ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Instances stored but not yet indexed."""
        with self._cv:
            return len(self._queue)

    def close(self, timeout: float = 30.0) -> bool:
        """Index everything, checkpoint, stop the indexer; ``True`` if all was indexed.

        What is not indexed (the job store failed) stays in the journal for the next start.
        """
        done = False
        try:
            done = self.flush(timeout)
        except StorageError as exc:
            logger.error("spool not flushed at stop", error=str(exc))
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout)
        if done:
            try:
                self.checkpoint(everything=True)
            except (OSError, RgcdsError) as exc:
                logger.warning("spool checkpoint at stop failed; segments kept",
                               error=str(exc))
        self.journal.close()
        with self._reader_lock:
            self._reader.close()
        return done


__all__ = [
    "JOURNAL_DIR",
    "DuplicatePolicy",
    "Durability",
    "IngestOutcome",
    "Ingestor",
    "RecoveryReport",
    "rebuild_index",
]
