"""The outbox: every result object waits here, per destination, until the peer accepted it.

Outbox API for the export side::

    for item in store.outbox_due():     # pending and due now
        try: send(item) ; store.outbox_mark_sent(item.item_id)
        except TransientExportError as e: store.outbox_mark_retry(item.item_id, t, str(e))
        except PermanentExportError as e: store.outbox_mark_failed(item.item_id, str(e))
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rgcds.store.db import _INSERT_OUTBOX, _SELECT_OUTBOX, Database, _record
from rgcds.store.records import (
    OutboxItem,
    OutboxState,
    UnknownJobError,
)


def _outbox(row: tuple[Any, ...]) -> OutboxItem:
    return _record(OutboxItem, row, state=OutboxState)


class OutboxTable(Database):
    """The ``outbox`` table."""

    def outbox_add(
        self,
        study_job: int,
        destination: str,
        sop_instance_uid: str,
        path: Path | str,
        now: float | None = None,
    ) -> OutboxItem:
        """Queue a result file for delivery; idempotent per (job, destination, instance).

        Parameters
        ----------
        study_job
            The job id the result belongs to.
        destination
            A destination name from ``[[destinations]]``.
        sop_instance_uid
            The result's SOP Instance UID.
        path
            The result file.
        now
            The queue time (POSIX), when the item is first due; the current time by default.

        Returns
        -------
        OutboxItem
            The new item, due at ``now``, or the existing one unchanged.
        """
        now = time.time() if now is None else now
        with self._tx() as db:
            db.execute(
                _INSERT_OUTBOX,
                (study_job, destination, sop_instance_uid, str(path),
                 OutboxState.PENDING.value, now, now, now),
            )
            row = db.execute(
                _SELECT_OUTBOX + " WHERE job_id=? AND destination=? "
                "AND sop_instance_uid=?",
                (study_job, destination, sop_instance_uid),
            ).fetchone()
        return _outbox(row)

    def outbox_due(self, now: float | None = None, limit: int = 100) -> list[OutboxItem]:
        """Pending items whose ``next_attempt_at`` is not after ``now``, oldest first."""
        now = time.time() if now is None else now
        rows = self._query(
            _SELECT_OUTBOX + " WHERE state=? AND next_attempt_at<=? "
            "ORDER BY next_attempt_at, item_id LIMIT ?",
            (OutboxState.PENDING.value, now, limit),
        )
        return [_outbox(r) for r in rows]

    def outbox_items(self, study_job: int) -> list[OutboxItem]:
        """All outbox items of a job, in insertion order."""
        rows = self._query(
            _SELECT_OUTBOX + " WHERE job_id=? ORDER BY item_id", (study_job,)
        )
        return [_outbox(r) for r in rows]

    def outbox_item(self, item_id: int) -> OutboxItem:
        """One outbox item by id.

        Raises
        ------
        UnknownJobError
            If there is no item with that id.
        """
        rows = self._query(_SELECT_OUTBOX + " WHERE item_id=?", (item_id,))
        if not rows:
            raise UnknownJobError(f"There is no outbox item with id {item_id}.")
        return _outbox(rows[0])

    def _outbox_update(self, item_id: int, sql: str, params: tuple[Any, ...]) -> OutboxItem:
        with self._tx() as db:
            cur = db.execute(sql, (*params, time.time(), item_id))
            if cur.rowcount == 0:
                raise UnknownJobError(f"There is no outbox item with id {item_id}.")
            row = db.execute(
                _SELECT_OUTBOX + " WHERE item_id=?", (item_id,)
            ).fetchone()
        return _outbox(row)

    def outbox_mark_sent(self, item_id: int) -> OutboxItem:
        """The destination confirmed the item (C-STORE success)."""
        return self._outbox_update(
            item_id,
            "UPDATE outbox SET state=?, attempts=attempts+1, last_error=NULL, updated_at=? "
            "WHERE item_id=?",
            (OutboxState.SENT.value,),
        )

    def outbox_mark_retry(self, item_id: int, next_attempt_at: float, error: str) -> OutboxItem:
        """A transient failure: stay pending, try again at ``next_attempt_at``."""
        return self._outbox_update(
            item_id,
            "UPDATE outbox SET state=?, attempts=attempts+1, next_attempt_at=?, last_error=?, "
            "updated_at=? WHERE item_id=?",
            (OutboxState.PENDING.value, next_attempt_at, error),
        )

    def outbox_mark_failed(self, item_id: int, reason: str) -> OutboxItem:
        """A permanent failure: the item will not be retried."""
        return self._outbox_update(
            item_id,
            "UPDATE outbox SET state=?, attempts=attempts+1, last_error=?, updated_at=? "
            "WHERE item_id=?",
            (OutboxState.FAILED.value, reason),
        )


__all__ = ["OutboxTable"]
