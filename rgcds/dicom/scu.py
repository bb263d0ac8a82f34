"""Small SCU helpers: C-ECHO and C-STORE of files to a DICOM node (with optional TLS)."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE
from pynetdicom.association import Association

from rgcds.dicom.sop_classes import TRANSFER_SYNTAXES, VERIFICATION_SOP_CLASS
from rgcds.dicom.status import is_store_success
from rgcds.exceptions import PermanentExportError, TransientExportError

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Peer:
    """Where to connect.

    Attributes
    ----------
    host, port, ae_title
        The called node.
    calling_ae_title
        Our AE title.
    ssl_context
        A client context (:func:`rgcds.dicom.tls.client_ssl_context`) for DICOM TLS.
    server_hostname
        Host name to check the server certificate against (defaults to ``host``).
    timeout
        ACSE, DIMSE and network timeout in seconds.
    """

    host: str
    port: int
    ae_title: str
    calling_ae_title: str = "RGCDS"
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class StoreResult:
    """The outcome of sending one file."""

    path: Path
    sop_instance_uid: str
    status: int

    @property
    def ok(self) -> bool:
        """Whether the instance was stored (:func:`rgcds.dicom.status.is_store_success`)."""
        return is_store_success(self.status)


@contextmanager
def associate(peer: Peer, contexts: Iterable[tuple[str, list[str]]]) -> Iterator[Association]:
    """Open an association, yield it, release it.

    Raises
    ------
    PermanentExportError
        If the peer rejects the association permanently.
    TransientExportError
        If it cannot be reached, aborts, or rejects transiently.
    """
    ae = AE(ae_title=peer.calling_ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = peer.timeout
    for uid, syntaxes in contexts:
        ae.add_requested_context(uid, syntaxes)
    tls_args = (
        (peer.ssl_context, peer.server_hostname or peer.host) if peer.ssl_context else None
    )
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, tls_args=tls_args)
    if assoc.is_rejected:
        rsp = assoc.acceptor.primitive
        result = getattr(rsp, "result", None)
        reason = getattr(rsp, "diagnostic", None)
        msg = f"{peer.ae_title}@{peer.host}:{peer.port} rejected the association (reason {reason})."
        if result == 0x01:
            raise PermanentExportError(msg)
        raise TransientExportError(msg)
    if not assoc.is_established:
        raise TransientExportError(
            f"No association with {peer.ae_title}@{peer.host}:{peer.port}; is it reachable?"
        )
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def echo(peer: Peer) -> int:
    """Send a C-ECHO and return the response status (``0`` is success).

    Raises
    ------
    PermanentExportError, TransientExportError
        If no association could be made, or no response came.
    """
    with associate(peer, [(VERIFICATION_SOP_CLASS, list(TRANSFER_SYNTAXES[:2]))]) as assoc:
        status = assoc.send_c_echo()
        if "Status" not in status:
            raise TransientExportError(f"{peer.ae_title} did not answer the C-ECHO.")
        return int(status.Status)


def store_files(peer: Peer, paths: Iterable[Path | str]) -> list[StoreResult]:
    """Send DICOM files with C-STORE in one association, each in its own transfer syntax.

    One presentation context is proposed per (SOP class, transfer syntax) pair found, so
    files are sent as they are (at most 128 distinct pairs per call).

    Parameters
    ----------
    peer
        The destination.
    paths
        DICOM files (Part 10).

    Returns
    -------
    list of StoreResult
        One result per file, in order; a file that got no response has status ``-1``.

    Raises
    ------
    PermanentExportError, TransientExportError
        If no association could be made.
    """
    files = [Path(p) for p in paths]
    contexts: dict[tuple[str, str], None] = {}
    metas = []
    for path in files:
        meta = read_file_meta_info(path)
        sop_class = str(meta.MediaStorageSOPClassUID)
        contexts[(sop_class, str(meta.TransferSyntaxUID))] = None
        metas.append(str(meta.MediaStorageSOPInstanceUID))
    results: list[StoreResult] = []
    with associate(peer, [(uid, [ts]) for uid, ts in contexts]) as assoc:
        for path, sop in zip(files, metas, strict=True):
            rsp = assoc.send_c_store(path)
            status = int(rsp.Status) if "Status" in rsp else -1
            results.append(StoreResult(path=path, sop_instance_uid=sop, status=status))
    return results


__all__ = ["Peer", "StoreResult", "associate", "echo", "store_files"]
