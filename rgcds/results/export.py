"""Delivery of result files to the configured DICOM destinations through a durable outbox.

Each result file is an outbox item per destination. :func:`deliver_due`, which the daemon
calls periodically, sends every due item with C-STORE (one association per destination and
round) and records the outcome:

* success (0x0000, or a C-STORE warning: 0x0107, 0x0116, 0xB000, 0xB006, 0xB007; the one
  rule is :func:`rgcds.dicom.status.is_store_success`): ``sent``;
* a transient failure (connection refused or timed out, association aborted or rejected
  transient, 0xA7xx out of resources, 0x0110 processing failure, 0x0213 resource
  limitation, no response): retried with exponential backoff, capped at
  :attr:`RetryPolicy.max_delay_s`;
* a permanent failure (association rejected permanent, e.g. unknown calling AE; no
  presentation context accepted for the SOP class; 0x0122 SOP class not supported,
  0x0124 not authorised, 0xA9xx dataset does not match, 0xCxxx cannot understand; the file
  is gone): ``failed`` with the reason, never retried.

Delivery is idempotent: an item is keyed by (destination, SOP Instance UID), the files and
UIDs are the same on every attempt, and a PACS that receives an instance twice replaces it.

:class:`Outbox` is the interface this module needs; the only implementation is the job
store's outbox, through :class:`rgcds.pipeline.delivery.JobStoreOutbox`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pydicom
import pydicom.errors
import structlog
from pynetdicom.association import Association

from rgcds.config import DestinationSettings
from rgcds.dicom.status import classify_store_status, store_status_reason
from rgcds.exceptions import PermanentExportError, TransientExportError
from rgcds.results.export_session import DEFAULT_CALLING_AE, NetworkTimeouts, _Session
from rgcds.results.export_session import AssociateResult as AssociateResult

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A result file to deliver to one destination."""

    destination: str
    sop_instance_uid: str
    path: str
    job_id: int = 0


class DeliveryRecord(Protocol):
    """What :func:`deliver_due` reads of an outbox item."""

    @property
    def item_id(self) -> int: ...

    @property
    def destination(self) -> str: ...

    @property
    def sop_instance_uid(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def attempts(self) -> int: ...


class Outbox(Protocol):
    """The durable outbox :func:`deliver_due` works on."""

    def add(self, item: NewDelivery, now: float | None = None) -> int:
        """Queue ``item`` (due now); re-adding the same destination and UID re-queues it."""
        ...

    def due(self, now: float) -> Sequence[DeliveryRecord]:
        """Pending items whose next attempt is at or before ``now``, oldest first."""
        ...

    def mark_sent(self, item_id: int) -> None:
        """Record a successful delivery."""
        ...

    def mark_retry(self, item_id: int, next_attempt_at: float, error: str) -> None:
        """Record a transient failure and when to try again."""
        ...

    def mark_failed(self, item_id: int, reason: str) -> None:
        """Record a permanent failure; the item is not retried."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff of transient failures.

    The n-th retry (n = attempts so far, from 0) waits
    ``min(initial_delay_s * factor ** n, max_delay_s)``. With ``max_attempts`` set, an item
    that has failed transiently that many times goes to ``failed``; by default transient
    failures are retried for ever (an unreachable PACS comes back eventually, and the item
    stays visible as pending with its last error).
    """

    initial_delay_s: float = 30.0
    factor: float = 2.0
    max_delay_s: float = 3600.0
    max_attempts: int | None = None

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (0-based)."""
        return float(min(self.initial_delay_s * self.factor ** min(attempts, 64), self.max_delay_s))


@dataclass(slots=True)
class DeliverySummary:
    """What one :func:`deliver_due` round did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    """Last error per destination name (no PHI: statuses and reasons only)."""

    @property
    def attempted(self) -> int:
        """Items tried this round."""
        return self.sent + self.retried + self.failed


def _read(path: str) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path)
    except FileNotFoundError as exc:
        raise PermanentExportError(
            f"The result file {path} no longer exists; export the results again."
        ) from exc
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise PermanentExportError(f"The result file {path} cannot be read: {exc}.") from exc


def _sop_class_and_syntax(path: str) -> tuple[str, str] | None:
    try:
        meta = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        return str(meta.file_meta.MediaStorageSOPClassUID), str(meta.file_meta.TransferSyntaxUID)
    except Exception:
        return None


def _send_one(assoc: Association, item: DeliveryRecord) -> None:
    ds = _read(item.path)
    if str(ds.SOPInstanceUID) != item.sop_instance_uid:
        raise PermanentExportError(
            f"The result file {item.path} holds another instance than the outbox item; "
            "export the results again."
        )
    try:
        rsp = assoc.send_c_store(ds)
    except ValueError as exc:  # no accepted presentation context for this SOP class
        raise PermanentExportError(
            f"The destination accepted no presentation context for SOP class "
            f"{ds.SOPClassUID} ({exc})."
        ) from exc
    except (OSError, RuntimeError) as exc:
        raise TransientExportError(f"The association failed while sending: {exc}.") from exc
    status = rsp.get("Status") if rsp is not None else None
    if status is None:
        raise TransientExportError(
            "No C-STORE response (DIMSE timeout, or the association was aborted)."
        )
    error = classify_store_status(int(status))
    if error is not None:
        raise error(f"The destination answered {store_status_reason(int(status))}.")


def _record_failure(
    outbox: Outbox,
    item: DeliveryRecord,
    exc: Exception,
    now: float,
    policy: RetryPolicy,
    summary: DeliverySummary,
) -> None:
    reason = str(exc)
    transient = isinstance(exc, TransientExportError)
    if transient and policy.max_attempts is not None and item.attempts + 1 >= policy.max_attempts:
        transient = False
        reason = f"Gave up after {item.attempts + 1} attempts; last error: {reason}"
    if transient:
        next_at = now + policy.delay(item.attempts)
        outbox.mark_retry(item.item_id, next_at, reason)
        summary.retried += 1
        logger.warning(
            "export_retry_scheduled",
            destination=item.destination,
            sop_instance_uid=item.sop_instance_uid,
            attempts=item.attempts + 1,
            retry_in_s=round(next_at - now, 1),
            error=reason,
        )
    else:
        outbox.mark_failed(item.item_id, reason)
        summary.failed += 1
        logger.error(
            "export_failed",
            destination=item.destination,
            sop_instance_uid=item.sop_instance_uid,
            attempts=item.attempts + 1,
            reason=reason,
        )
    summary.errors[item.destination] = reason


def _deliver_to(
    outbox: Outbox,
    destination: DestinationSettings,
    items: Sequence[DeliveryRecord],
    now: float,
    policy: RetryPolicy,
    timeouts: NetworkTimeouts,
    summary: DeliverySummary,
    calling_ae_title: str = DEFAULT_CALLING_AE,
) -> None:
    contexts: set[tuple[str, str]] = set()
    sendable: list[DeliveryRecord] = []
    for item in items:
        found = _sop_class_and_syntax(item.path)
        if found is None:
            missing = PermanentExportError(
                f"The result file {item.path} is missing or not a DICOM file; export the "
                "results again."
            )
            _record_failure(outbox, item, missing, now, policy, summary)
        else:
            contexts.add(found)
            sendable.append(item)
    # Each object gets its own attempt and its own DIMSE timeout: an object the peer does
    # not answer in time aborts the association (pynetdicom), is scheduled for a retry,
    # and the objects after it go on a new association in this round rather than being
    # counted as failed attempts they never had (a PACS slower than the timeout used to
    # get the first object every round and the others never). At most one association
    # per object per round.
    remaining = list(sendable)
    while remaining:
        session = _Session(destination, contexts, timeouts, calling_ae_title)
        try:
            assoc = session.open()
        except (TransientExportError, PermanentExportError) as exc:
            for item in remaining:
                _record_failure(outbox, item, exc, now, policy, summary)
            return
        try:
            while remaining and assoc.is_established:
                item = remaining.pop(0)
                try:
                    _send_one(assoc, item)
                except (TransientExportError, PermanentExportError) as err:
                    _record_failure(outbox, item, err, now, policy, summary)
                else:
                    outbox.mark_sent(item.item_id)
                    summary.sent += 1
                    logger.info(
                        "export_sent",
                        destination=item.destination,
                        sop_instance_uid=item.sop_instance_uid,
                        attempts=item.attempts + 1,
                    )
        finally:
            if assoc.is_established:
                assoc.release()


def deliver_due(
    outbox: Outbox,
    destinations: Sequence[DestinationSettings],
    now: float | None = None,
    *,
    policy: RetryPolicy | None = None,
    timeouts: NetworkTimeouts | None = None,
    calling_ae_title: str = DEFAULT_CALLING_AE,
) -> DeliverySummary:
    """Send every due outbox item to its destination and record the outcomes.

    Parameters
    ----------
    outbox
        The durable outbox.
    destinations
        The configured destinations (``Settings.destinations``); an item whose destination
        is no longer configured is marked failed.
    now
        The current POSIX time (``time.time()`` by default); retries are scheduled from it.
    policy
        Backoff of transient failures.
    timeouts
        SCU timeouts.
    calling_ae_title
        The calling AE title of every association (the daemon passes
        ``listener.ae_title``), unless a destination sets its own ``calling_ae_title``.

    Returns
    -------
    DeliverySummary
        Counts of items sent, scheduled for retry and failed in this round.
    """
    now = time.time() if now is None else now
    policy = policy or RetryPolicy()
    timeouts = timeouts or NetworkTimeouts()
    by_name = {d.name: d for d in destinations}
    grouped: dict[str, list[DeliveryRecord]] = defaultdict(list)
    for item in outbox.due(now):
        grouped[item.destination].append(item)
    summary = DeliverySummary()
    for name, items in grouped.items():
        destination = by_name.get(name)
        if destination is None:
            exc = PermanentExportError(
                f"The destination {name!r} is no longer configured; add it back and "
                "re-export, or ignore this result."
            )
            for item in items:
                _record_failure(outbox, item, exc, now, policy, summary)
            continue
        _deliver_to(outbox, destination, items, now, policy, timeouts, summary,
                    calling_ae_title)
    if summary.attempted:
        logger.info(
            "export_round", sent=summary.sent, retried=summary.retried, failed=summary.failed
        )
    return summary


def enqueue(
    outbox: Outbox,
    files: Iterable[tuple[str, Path]],
    destinations: Sequence[DestinationSettings],
    *,
    job_id: int = 0,
    now: float | None = None,
) -> list[int]:
    """Queue result files (``(sop_instance_uid, path)`` pairs) for every destination.

    Returns
    -------
    list of int
        The outbox item ids, destination-major.
    """
    ids = []
    pairs = list(files)
    for destination in destinations:
        for sop_uid, path in pairs:
            ids.append(
                outbox.add(
                    NewDelivery(destination.name, sop_uid, str(path), job_id=job_id), now=now
                )
            )
    return ids


__all__ = [
    "DEFAULT_CALLING_AE",
    "DeliveryRecord",
    "DeliverySummary",
    "NetworkTimeouts",
    "NewDelivery",
    "Outbox",
    "RetryPolicy",
    "classify_store_status",
    "deliver_due",
    "enqueue",
]
