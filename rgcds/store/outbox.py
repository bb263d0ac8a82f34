"""The job store's outbox seen through the export stage's ``Outbox`` protocol.

:func:`rgcds.results.export.deliver_due` works on any outbox; the daemon gives it this one,
so results wait in the same durable SQLite file as the jobs until the PACS accepted them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rgcds.store.jobs import JobStore
from rgcds.store.records import OutboxItem


class _NewDelivery(Protocol):
    @property
    def destination(self) -> str: ...

    @property
    def sop_instance_uid(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def job_id(self) -> int: ...


class JobStoreOutbox:
    """Adapter from :class:`JobStore`'s ``outbox_*`` methods to the export ``Outbox`` protocol."""

    def __init__(self, jobs: JobStore, batch: int = 500) -> None:
        self.jobs = jobs
        self.batch = batch

    def add(self, item: _NewDelivery, now: float | None = None) -> int:
        """Queue a result file (idempotent per job, destination and instance)."""
        return self.jobs.outbox_add(
            item.job_id, item.destination, item.sop_instance_uid, item.path
        ).item_id

    def due(self, now: float) -> Sequence[OutboxItem]:
        """Pending items whose next attempt is due."""
        return self.jobs.outbox_due(now, limit=self.batch)

    def mark_sent(self, item_id: int) -> None:
        """The destination confirmed the item."""
        self.jobs.outbox_mark_sent(item_id)

    def mark_retry(self, item_id: int, next_attempt_at: float, error: str) -> None:
        """A transient failure; try again later."""
        self.jobs.outbox_mark_retry(item_id, next_attempt_at, error)

    def mark_failed(self, item_id: int, reason: str) -> None:
        """A permanent failure; never retried."""
        self.jobs.outbox_mark_failed(item_id, reason)


__all__ = ["JobStoreOutbox"]
