"""Unit tests of the export outbox, backoff and status classification (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgcds.exceptions import PermanentExportError, TransientExportError
from rgcds.results.export import (
    DeliveryState,
    NewDelivery,
    RetryPolicy,
    SqliteOutbox,
    classify_store_status,
    deliver_due,
)


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(initial_delay_s=10, factor=2, max_delay_s=100)
    assert [policy.delay(n) for n in range(6)] == [10, 20, 40, 80, 100, 100]
    assert policy.delay(10_000) == 100


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0x0000, None),
        (0xB000, None),
        (0xB007, None),
        (0xA700, TransientExportError),
        (0xA7FF, TransientExportError),
        (0x0110, TransientExportError),
        (0x0122, PermanentExportError),
        (0x0124, PermanentExportError),
        (0xA900, PermanentExportError),
        (0xC000, PermanentExportError),
        (0xC123, PermanentExportError),
    ],
)
def test_store_status_classification(status: int, expected: type | None) -> None:
    assert classify_store_status(status) is expected


def test_outbox_add_is_idempotent_and_tracks_state(tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite")
    item = NewDelivery("pacs", "1.2.3", str(tmp_path / "a.dcm"), job_id=7)
    first = outbox.add(item, now=100.0)
    assert outbox.add(item, now=101.0) == first
    assert len(outbox.all()) == 1
    assert [d.item_id for d in outbox.due(101.0)] == [first]
    outbox.mark_retry(first, 200.0, "refused")
    assert outbox.due(150.0) == []
    again = outbox.due(200.0)[0]
    assert (again.attempts, again.last_error) == (1, "refused")
    outbox.mark_sent(first)
    assert outbox.get(first).state is DeliveryState.SENT
    assert outbox.due(1e12) == []
    # Re-export of the same analysis re-queues the same row.
    assert outbox.add(item, now=300.0) == first
    assert outbox.get(first).state is DeliveryState.PENDING
    outbox.mark_failed(first, "rejected")
    assert outbox.get(first).state is DeliveryState.FAILED
    # Durable: a new instance on the same file sees the same rows.
    assert SqliteOutbox(tmp_path / "outbox.sqlite").get(first).last_error == "rejected"


def test_unknown_destination_and_missing_file_fail_permanently(tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite")
    gone = outbox.add(NewDelivery("old-pacs", "1.2.3", str(tmp_path / "a.dcm")), now=0.0)
    summary = deliver_due(outbox, [], now=1.0)
    assert summary.failed == 1
    assert "no longer configured" in (outbox.get(gone).last_error or "")

    from rgcds.config import DestinationSettings

    dest = DestinationSettings(name="pacs", ae_title="PACS", host="127.0.0.1", port=9)
    missing = outbox.add(NewDelivery("pacs", "1.2.4", str(tmp_path / "missing.dcm")), now=0.0)
    summary = deliver_due(outbox, [dest], now=1.0)
    assert summary.failed == 1
    assert outbox.get(missing).state is DeliveryState.FAILED
    assert "export the results again" in (outbox.get(missing).last_error or "")
