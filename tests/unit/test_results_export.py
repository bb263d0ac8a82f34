"""Unit tests of the export outbox, backoff and status classification (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgcds.dicom.scu import StoreResult
from rgcds.exceptions import PermanentExportError, TransientExportError
from rgcds.results.export import (
    NewDelivery,
    RetryPolicy,
    classify_store_status,
    deliver_due,
)
from rgcds.store import OutboxState
from tests.outbox import StoreOutbox


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(initial_delay_s=10, factor=2, max_delay_s=100)
    assert [policy.delay(n) for n in range(6)] == [10, 20, 40, 80, 100, 100]
    assert policy.delay(10_000) == 100


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0x0000, None),
        (0xB000, None),
        (0xB006, None),
        (0xB007, None),
        (0x0107, None),
        (0x0116, None),
        (0xB001, PermanentExportError),
        (0x0111, PermanentExportError),
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
    # One rule: the SCU's per-file result agrees with the deliverer.
    result = StoreResult(path=Path("a.dcm"), sop_instance_uid="1.2.3", status=status)
    assert result.ok is (expected is None)


def test_outbox_add_is_idempotent_and_tracks_state(tmp_path: Path) -> None:
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    item = NewDelivery("pacs", "1.2.3", str(tmp_path / "a.dcm"), job_id=outbox.job_id)
    first = outbox.add(item, now=100.0)
    assert outbox.add(item, now=101.0) == first
    assert len(outbox.all()) == 1
    assert outbox.get(first).next_attempt_at == 100.0
    assert [d.item_id for d in outbox.due(101.0)] == [first]
    outbox.mark_retry(first, 200.0, "refused")
    assert outbox.due(150.0) == []
    again = outbox.due(200.0)[0]
    assert (again.attempts, again.last_error) == (1, "refused")
    outbox.mark_sent(first)
    assert outbox.get(first).state is OutboxState.SENT
    assert outbox.due(1e12) == []
    # Queuing the same job's object again leaves the sent row as it is.
    assert outbox.add(item, now=300.0) == first
    assert outbox.get(first).state is OutboxState.SENT
    # A re-run of the analysis is a new job: the same instance is a new, pending row.
    rerun = NewDelivery("pacs", "1.2.3", str(tmp_path / "a.dcm"), job_id=outbox.new_job())
    second = outbox.add(rerun, now=300.0)
    assert second != first
    assert outbox.get(second).state is OutboxState.PENDING
    outbox.mark_failed(second, "rejected")
    assert outbox.get(second).state is OutboxState.FAILED
    outbox.close()
    # Durable: a new store on the same file sees the same rows.
    from rgcds.store import JobStore

    with JobStore(tmp_path / "jobs.sqlite3") as reopened:
        assert reopened.outbox_item(second).last_error == "rejected"
        assert reopened.outbox_item(first).state is OutboxState.SENT


def test_unknown_destination_and_missing_file_fail_permanently(tmp_path: Path) -> None:
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    job = outbox.job_id
    gone = outbox.add(
        NewDelivery("old-pacs", "1.2.3", str(tmp_path / "a.dcm"), job_id=job), now=0.0
    )
    summary = deliver_due(outbox, [], now=1.0)
    assert summary.failed == 1
    assert "no longer configured" in (outbox.get(gone).last_error or "")

    from rgcds.config import DestinationSettings

    dest = DestinationSettings(name="pacs", ae_title="PACS", host="127.0.0.1", port=9)
    missing = outbox.add(
        NewDelivery("pacs", "1.2.4", str(tmp_path / "missing.dcm"), job_id=job), now=0.0
    )
    summary = deliver_due(outbox, [dest], now=1.0)
    assert summary.failed == 1
    assert outbox.get(missing).state is OutboxState.FAILED
    assert "export the results again" in (outbox.get(missing).last_error or "")
