"""Storage Commitment Push Model SCP (PS3.4 Annex J): "does rgcds hold these instances?"

A PACS or modality that uses storage commitment sends an N-ACTION request (Action Type 1,
"Request Storage Commitment") naming a Transaction UID and the SOP Class and Instance UIDs it
sent. rgcds answers the N-ACTION at once with Success (the request is accepted, not yet
answered) and then, in a background thread:

1. waits until everything acknowledged so far is durable and indexed (the ingestor's flush:
   in ``durability = "association"`` mode this is the fsync that makes a C-STORE success
   durable; a commitment success is never given for an instance a crash could still lose);
2. looks each instance up in the job store: held (the same SOP Class, its file present) is
   committed; otherwise it fails with Failure Reason 0112H (no such object instance) or
   0119H (class/instance conflict);
3. sends the N-EVENT-REPORT (Event Type 1, all committed; 2, some failed; with the Referenced
   SOP Sequence and the Failed SOP Sequence) on a new association to the requester, found by
   its AE title among the configured ``[[destinations]]`` (rgcds takes the SCP role of the
   SOP class there, by role selection), or, when the requester is no configured
   destination, on the requesting association if it is still open (both allowed by PS3.4
   J.3.3). A report that cannot be delivered is logged with the Transaction UID; the
   requester then asks again, as the standard expects.

Nothing about the instances' content is logged (UIDs are not PHI but are not logged either:
only counts and the Transaction UID).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role
from pynetdicom.sop_class import StorageCommitmentPushModel  # type: ignore[attr-defined]

logger = structlog.get_logger(__name__)

STORAGE_COMMITMENT_SOP_CLASS = str(StorageCommitmentPushModel)
#: The well-known SOP Instance of the Storage Commitment Push Model (PS3.4 J.3.5).
STORAGE_COMMITMENT_SOP_INSTANCE = "1.2.840.10008.1.20.1.1"
REQUEST_STORAGE_COMMITMENT = 1
EVENT_ALL_COMMITTED = 1
EVENT_SOME_FAILED = 2
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
PROCESSING_FAILURE = 0x0110
#: N-ACTION statuses (PS3.7 C.4.3): success, no such action, invalid argument, failure.
SUCCESS = 0x0000
NO_SUCH_ACTION_TYPE = 0x0123
INVALID_ARGUMENT = 0x0115
MISSING_ATTRIBUTE = 0x0120


@dataclass(frozen=True)
class ReportPeer:
    """Where to send a requester's N-EVENT-REPORT on a new association."""

    host: str
    port: int
    ae_title: str
    calling_ae_title: str
    timeout: float = 30.0


HeldLookup = Callable[[str, str], str | None]
"""``(sop_class_uid, sop_instance_uid) -> None`` when held, else why not (a short phrase)."""


class StorageCommitment:
    """The service behind the N-ACTION handler: check, then report.

    Parameters
    ----------
    lookup
        Whether an instance is held (see :data:`HeldLookup`).
    flush
        Makes everything acknowledged durable and indexed; returns ``False`` when it could
        not within the timeout (then every instance of the request fails with 0110H).
    peer_for
        The report address of a calling AE title, or ``None`` (then the requesting
        association is used if it is still open).
    max_references
        Requests naming more instances are refused (Invalid Argument).
    """

    def __init__(self, lookup: HeldLookup, flush: Callable[[float], bool],
                 peer_for: Callable[[str], ReportPeer | None], *,
                 max_references: int = 100_000, flush_timeout: float = 60.0) -> None:
        self._lookup = lookup
        self._flush = flush
        self._peer_for = peer_for
        self._max = max_references
        self._flush_timeout = flush_timeout
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    # -- the N-ACTION handler ------------------------------------------------------------

    def on_n_action(self, event: Any) -> tuple[int, Dataset | None]:
        """pynetdicom ``EVT_N_ACTION`` handler; never raises."""
        calling = ""
        try:
            calling = str(event.assoc.requestor.ae_title).strip()
            req = event.request
            if str(req.RequestedSOPClassUID) != STORAGE_COMMITMENT_SOP_CLASS:
                return INVALID_ARGUMENT, None
            if int(req.ActionTypeID) != REQUEST_STORAGE_COMMITMENT:
                return NO_SUCH_ACTION_TYPE, None
            info = event.action_information
            transaction = str(info.get("TransactionUID", "")).strip()
            refs = info.get("ReferencedSOPSequence")
            if not transaction or refs is None or len(refs) == 0:
                return MISSING_ATTRIBUTE, None
            if len(refs) > self._max:
                logger.warning("storage commitment refused: too many instances",
                               calling_ae=calling, count=len(refs), limit=self._max)
                return INVALID_ARGUMENT, None
            pairs = [(str(r.get("ReferencedSOPClassUID", "")),
                      str(r.get("ReferencedSOPInstanceUID", ""))) for r in refs]
        except Exception as exc:  # a malformed request: answer, never crash the listener
            logger.warning("storage commitment request not understood", calling_ae=calling,
                           error=type(exc).__name__)
            return PROCESSING_FAILURE, None
        logger.info("storage commitment requested", calling_ae=calling,
                    transaction_uid=transaction, instances=len(pairs))
        thread = threading.Thread(target=self._answer, args=(event.assoc, calling, transaction,
                                                             pairs),
                                  name="rgcds-commitment", daemon=True)
        with self._lock:
            self._threads = {t for t in self._threads if t.is_alive()}
            self._threads.add(thread)
        thread.start()
        return SUCCESS, None

    def join(self, timeout: float | None = None) -> None:
        """Wait for the reports in progress (tests, shutdown)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    # -- the answer ----------------------------------------------------------------------

    def report(self, transaction: str, pairs: list[tuple[str, str]]) -> tuple[int, Dataset]:
        """The N-EVENT-REPORT's event type and information for a request."""
        durable = self._flush(self._flush_timeout)
        committed: list[tuple[str, str]] = []
        failed: list[tuple[str, str, int]] = []
        for sop_class, sop_instance in pairs:
            why = "not durable yet" if not durable else self._lookup(sop_class, sop_instance)
            if why is None:
                committed.append((sop_class, sop_instance))
            elif not durable:
                failed.append((sop_class, sop_instance, PROCESSING_FAILURE))
            elif why == "class conflict":
                failed.append((sop_class, sop_instance, CLASS_INSTANCE_CONFLICT))
            else:
                failed.append((sop_class, sop_instance, NO_SUCH_OBJECT_INSTANCE))
        ds = Dataset()
        ds.TransactionUID = transaction
        if committed:
            ds.ReferencedSOPSequence = [_ref(c, i) for c, i in committed]
        if failed:
            items = []
            for c, i, reason in failed:
                item = _ref(c, i)
                item.FailureReason = reason
                items.append(item)
            ds.FailedSOPSequence = items
        return (EVENT_SOME_FAILED if failed else EVENT_ALL_COMMITTED), ds

    def _answer(self, assoc: Any, calling: str, transaction: str,
                pairs: list[tuple[str, str]]) -> None:
        try:
            event_type, info = self.report(transaction, pairs)
        except Exception:
            logger.exception("storage commitment check failed", transaction_uid=transaction)
            return
        failed = len(info.get("FailedSOPSequence", []))
        peer = self._peer_for(calling)
        sent = False
        if peer is not None:
            sent = _send_new_association(peer, event_type, info, transaction)
        elif getattr(assoc, "is_established", False):
            sent = _send(assoc, event_type, info, transaction)
        if sent:
            logger.info("storage commitment reported", calling_ae=calling,
                        transaction_uid=transaction, committed=len(pairs) - failed,
                        failed=failed, new_association=peer is not None)
        else:
            logger.warning(
                "storage commitment report not delivered; the requester can ask again",
                calling_ae=calling, transaction_uid=transaction,
                reason="no [[destinations]] entry with this AE title and the requesting "
                       "association is closed" if peer is None else "the requester's "
                       "report association failed",
            )


def _ref(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def _send(assoc: Any, event_type: int, info: Dataset, transaction: str) -> bool:
    try:
        status, _reply = assoc.send_n_event_report(
            info, event_type, STORAGE_COMMITMENT_SOP_CLASS, STORAGE_COMMITMENT_SOP_INSTANCE)
    except Exception as exc:
        logger.warning("storage commitment report failed", transaction_uid=transaction,
                       error=type(exc).__name__)
        return False
    code = int(getattr(status, "Status", 0xC000)) if status else 0xC000
    if code != 0:
        logger.warning("storage commitment report not accepted", transaction_uid=transaction,
                       status=f"0x{code:04X}")
    return code == 0


def _send_new_association(peer: ReportPeer, event_type: int, info: Dataset,
                          transaction: str) -> bool:
    ae = AE(ae_title=peer.calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = peer.timeout
    ae.add_requested_context(STORAGE_COMMITMENT_SOP_CLASS)
    # rgcds is the SCP of the SOP class on an association it requests (PS3.4 J.3.3).
    role = build_role(STORAGE_COMMITMENT_SOP_CLASS, scu_role=False, scp_role=True)
    try:
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, ext_neg=[role])
    except Exception as exc:
        logger.warning("storage commitment report association failed",
                       transaction_uid=transaction, error=type(exc).__name__)
        return False
    if not assoc.is_established:
        return False
    try:
        return _send(assoc, event_type, info, transaction)
    finally:
        assoc.release()


__all__ = [
    "STORAGE_COMMITMENT_SOP_CLASS",
    "STORAGE_COMMITMENT_SOP_INSTANCE",
    "HeldLookup",
    "ReportPeer",
    "StorageCommitment",
]
