"""The Storage SCP's event handlers: association checks, C-ECHO, C-STORE, the release barrier.

:class:`ScpHandlers` is mixed into :class:`rgcds.dicom.scp.StorageSCP` (see that module's
doc); the handlers never raise, and their log lines keep the listener's logger name.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, cast

import structlog
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import A_RELEASE

from rgcds.config import ListenerSettings
from rgcds.dicom.errors import DatasetMismatchError, DuplicateInstanceError, UidCollisionError
from rgcds.dicom.parse import read_instance_meta
from rgcds.dicom.status import StoreStatus
from rgcds.dicom.transport import Connection, GuardedAssociationServer, GuardedSocket
from rgcds.exceptions import (
    DicomInputError,
    InvalidUIDError,
    OutOfResourcesError,
    StorageError,
)

if TYPE_CHECKING:  # pragma: no cover
    from rgcds.dicom.scp import InstanceSink, ReleaseBarrier

logger = structlog.get_logger(__name__)

REJECT_PERMANENT = 0x01
REJECT_TRANSIENT = 0x02
SOURCE_SERVICE_USER = 0x01
SOURCE_PROVIDER_PRESENTATION = 0x03
REASON_CALLING_AE_NOT_RECOGNISED = 0x03
REASON_CALLED_AE_NOT_RECOGNISED = 0x07
REASON_LOCAL_LIMIT_EXCEEDED = 0x02


def ae_title_value(title: object) -> str:
    """An AE title as compared: leading and trailing spaces removed (PS3.5), nothing else."""
    return str(title).strip(" ")


def _status(code: StoreStatus, comment: str | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = int(code)
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


def _connection(assoc: Any) -> Connection | None:
    sock = getattr(assoc.dul, "socket", None)
    return sock.conn if isinstance(sock, GuardedSocket) else None


class ScpHandlers:
    """The pynetdicom event handlers of :class:`~rgcds.dicom.scp.StorageSCP`."""

    if TYPE_CHECKING:  # what StorageSCP provides (its __init__)
        settings: ListenerSettings
        _sink: InstanceSink
        _on_release: ReleaseBarrier | None
        _server: GuardedAssociationServer | None
        _lock: threading.Lock
        _open: dict[int, set[str]]
        _allowed_any: set[str]
        _allowed_hosts: dict[str, set[str]]

    def _on_requested(self, event: evt.Event) -> None:
        try:
            assoc = event.assoc
            rq = assoc.requestor.primitive
            if rq is None:
                return
            conn = _connection(assoc)
            if conn is not None and conn.calling_ae:
                calling = ae_title_value(conn.calling_ae.decode("latin-1"))
                called = ae_title_value(conn.called_ae.decode("latin-1"))
            else:
                calling = ae_title_value(rq.calling_ae_title)
                called = ae_title_value(rq.called_ae_title)
            address = assoc.requestor.address
            if conn is not None and conn.probe_token is not None:
                if calling == conn.probe_token and called == self.settings.ae_title:
                    self._admit(assoc, conn)
                    return
                conn.probe_token = None  # not our probe: checked like any peer
            if called != self.settings.ae_title:
                logger.warning("association rejected: called AE title not recognised",
                               calling_ae=calling, called_ae=called, peer=address)
                self._reject(assoc, REASON_CALLED_AE_NOT_RECOGNISED)
                return
            if not self._calling_allowed(calling, address):
                logger.warning("association rejected: calling AE title not recognised",
                               calling_ae=calling, peer=address)
                self._reject(assoc, REASON_CALLING_AE_NOT_RECOGNISED)
                return
            if conn is not None:
                self._admit(assoc, conn)
        except Exception:
            logger.exception("association check failed")

    def _admit(self, assoc: Any, conn: Connection) -> None:
        server = self._server
        if server is None or not server.registry.try_associate(
            conn, self.settings.max_associations
        ):
            logger.warning("association rejected: listener.max_associations reached",
                           peer=conn.address, max_associations=self.settings.max_associations)
            self._reject(assoc, REASON_LOCAL_LIMIT_EXCEEDED, REJECT_TRANSIENT,
                         SOURCE_PROVIDER_PRESENTATION)

    @staticmethod
    def _reject(assoc: Any, reason: int, result: int = REJECT_PERMANENT,
                source: int = SOURCE_SERVICE_USER) -> None:
        # As pynetdicom's own ACSE does: send A-ASSOCIATE-RJ, then let the DUL drain the
        # PDU before the socket is closed (kill() waits for that).
        assoc.acse.send_reject(result, source, reason)
        evt.trigger(assoc, evt.EVT_REJECTED, {})
        assoc.kill()

    def _calling_allowed(self, calling: str, address: str) -> bool:
        if not self.settings.allowed_calling_aets:
            return True
        if calling in self._allowed_any:
            return True
        return address in self._allowed_hosts.get(calling, set())

    def _on_echo(self, event: evt.Event) -> int:
        return int(StoreStatus.SUCCESS)

    def _on_acse_recv(self, event: evt.Event) -> None:
        # Called in the association's own thread when it takes the A-RELEASE-RQ from the
        # DUL, before pynetdicom sends the A-RELEASE-RP: the place for the release barrier.
        primitive = getattr(event, "primitive", None)
        if not isinstance(primitive, A_RELEASE) or primitive.result is not None:
            return
        barrier = self._on_release
        with self._lock:
            stored = id(event.assoc) in self._open
        if barrier is None or not stored:
            return
        try:
            ok = barrier(float(self.settings.dimse_timeout or 30.0))
        except Exception:
            logger.exception("release barrier failed")
            ok = False
        if not ok:
            logger.error("association aborted: its instances could not be made durable "
                         "before the release", peer=event.assoc.requestor.address)
            event.assoc.acse.send_abort(0x02)

    def _on_closed(self, event: evt.Event) -> None:
        with self._lock:
            self._open.pop(id(event.assoc), None)

    def _on_store(self, event: evt.Event) -> Dataset | int:
        req = cast(C_STORE, event.request)
        calling = ""
        try:
            calling = str(event.assoc.requestor.ae_title)
            data = event.encoded_dataset(include_meta=True)
            meta = read_instance_meta(
                data,
                str(req.AffectedSOPClassUID or ""),
                str(req.AffectedSOPInstanceUID or ""),
                max_inflated=self.settings.max_instance_size,
                transfer_syntax=str(event.context.transfer_syntax),
            )
            with self._lock:
                self._open.setdefault(id(event.assoc), set()).add(meta.study_uid)
            self._sink(meta, data)
        except UidCollisionError:
            logger.warning("instance refused: its SOP Instance UID belongs to another study",
                           calling_ae=calling, study_uid=meta.study_uid)
            return _status(StoreStatus.DUPLICATE_SOP_INSTANCE,
                           "SOP Instance UID already used in another study")
        except DuplicateInstanceError:
            logger.info("duplicate instance rejected", calling_ae=calling)
            return _status(StoreStatus.DUPLICATE_SOP_INSTANCE, "Duplicate SOP instance rejected")
        except OutOfResourcesError:
            logger.error("instance refused: out of resources", calling_ae=calling)
            return _status(StoreStatus.OUT_OF_RESOURCES, "Out of resources: disk space low")
        except InvalidUIDError as exc:
            logger.warning("instance refused: invalid UID", calling_ae=calling, error=str(exc))
            return _status(StoreStatus.CANNOT_UNDERSTAND, "Invalid UID")
        except DatasetMismatchError as exc:
            logger.warning("instance refused: dataset does not match", calling_ae=calling,
                           error=str(exc))
            return _status(StoreStatus.DATASET_DOES_NOT_MATCH_SOP_CLASS,
                           "Data set does not match the command")
        except DicomInputError as exc:
            logger.warning("instance refused: cannot understand", calling_ae=calling,
                           error=str(exc))
            return _status(StoreStatus.CANNOT_UNDERSTAND, "Dataset cannot be decoded")
        except StorageError as exc:
            logger.error("instance refused: storage failure", calling_ae=calling, error=str(exc))
            return _status(StoreStatus.PROCESSING_FAILURE, "Storage failure")
        except Exception:
            logger.exception("instance refused: unexpected error", calling_ae=calling)
            return _status(StoreStatus.PROCESSING_FAILURE, "Processing failure")
        return int(StoreStatus.SUCCESS)
