"""The listener's transport: pynetdicom's association server with deadlines and bounds.

pynetdicom 3.0.4 wraps TLS in the single accept thread and reads PDUs from sockets without
a timeout, buffering whatever length a PDU header declares. This module keeps pynetdicom's
DUL, ACSE and DIMSE as they are and changes only how connections reach them, through the
extension points that :meth:`pynetdicom.ae.ApplicationEntity.make_server` offers
(``server_class`` and ``request_handler``) and a subclass of
:class:`pynetdicom.transport.AssociationSocket`:

* The accept thread only accepts (:meth:`GuardedAssociationServer.get_request`) and admits
  (:meth:`GuardedAssociationServer.verify_request`): at most ``max_pending_connections``
  connections are *pending* (accepted, no A-ASSOCIATE-RQ yet), at most
  ``max_pending_per_address`` from one peer address. A connection over a cap closes the
  oldest pending one of that address (or of the address with the most), so a peer that
  completes its A-ASSOCIATE-RQ promptly is always served.
* Each connection's own thread (:class:`GuardedRequestHandler`) does the TLS handshake and
  reads the A-ASSOCIATE-RQ, both within ``acse_timeout`` of the accept and each PDU within
  ``network_timeout`` of its first byte. An RQ that is larger than
  ``max_associate_request_size``, is not an A-ASSOCIATE-RQ or does not decode is answered
  with A-ABORT and closed there; only a decoded RQ becomes a pynetdicom
  :class:`~pynetdicom.association.Association`, which finds the RQ already buffered.
* After that, :class:`GuardedSocket` reads every PDU within ``network_timeout`` of its first
  byte and checks each header before reading the body: a P-DATA-TF above the negotiated
  maximum (``max_pdu_size``), any other PDU above the RQ bound, or a data set whose
  fragments add up to more than ``max_instance_size`` is answered with A-ABORT and the
  connection is closed, before the body is buffered.
* :meth:`ConnectionRegistry.close_all` shuts down every connection's socket, which wakes any
  blocked read at once: stopping never waits on a peer.

Where pynetdicom has no hook, the code says so: :meth:`GuardedRequestHandler._create_association`
is pynetdicom 3.0.4's own, with :class:`GuardedSocket` in place of ``AssociationSocket``.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable
from copy import deepcopy
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import structlog
from pynetdicom import evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from rgcds.dicom.connections import A_ABORT_TYPE as A_ABORT_TYPE
from rgcds.dicom.connections import (
    A_ASSOCIATE_RQ_TYPE,
    ABORT_INVALID_PARAMETER,
    ABORT_UNEXPECTED_PDU,
    PDU_HEADER,
    Connection,
    ConnectionRegistry,
    ReceiveLimits,
    _log,
    abort_pdu,
)
from rgcds.dicom.connections import ABORT_SOURCE_PROVIDER as ABORT_SOURCE_PROVIDER
from rgcds.dicom.connections import ABORT_UNRECOGNISED_PDU as ABORT_UNRECOGNISED_PDU
from rgcds.dicom.connections import P_DATA_TF_TYPE as P_DATA_TF_TYPE
from rgcds.dicom.guarded_socket import (
    GuardedSocket,
    _Deadline,
    _handshake,
    _recv_exactly,
    _send_quietly,
)

if TYPE_CHECKING:  # pragma: no cover
    from pynetdicom.association import Association

logger = structlog.get_logger(__name__)


class GuardedRequestHandler(RequestHandler):
    """One connection, in its own thread: TLS handshake, A-ASSOCIATE-RQ, then pynetdicom."""

    server: GuardedAssociationServer

    def handle(self) -> None:
        """Bring the connection to a decoded A-ASSOCIATE-RQ, run the association, clean up."""
        conn = self.server.registry_connection(self.request)
        if conn is None:
            return
        conn.thread = threading.current_thread()
        limits = self.server.limits
        deadline = conn.accepted_at + limits.acse_timeout
        try:
            sock = self._secure(conn, deadline)
            if sock is None:
                return
            rq = self._read_request(conn, sock, deadline)
            if rq is None or not self.server.registry.mark_requested(conn):
                return
            assoc = self._create_guarded_association(sock, conn, rq)
            conn.assoc = assoc
            evt.trigger(assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})
            assoc.start()
            assoc.join()
        except Exception:
            logger.exception("connection handler failed", peer=conn.address)
        finally:
            self.server.registry.release(conn)
            conn.close()
            try:
                self.request.close()
            except OSError:
                pass

    def _secure(self, conn: Connection, deadline: float) -> socket.socket | None:
        ctx = self.server.guarded_ssl_context
        raw = cast(socket.socket, self.request)
        if ctx is None or conn.probe_token is not None:
            return raw
        try:
            tls = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError):
            return None
        # The raw socket is detached now: stop, eviction and clean-up act on the TLS one.
        conn.sock = tls
        self.request = tls
        try:
            _handshake(tls, deadline)
        except _Deadline:
            _log.warning("TLS handshake not completed within listener.acse_timeout; closed",
                         peer=conn.address, acse_timeout=self.server.limits.acse_timeout)
            return None
        except (ssl.SSLError, OSError) as exc:
            _log.warning("TLS handshake failed", peer=conn.address,
                         reason=getattr(exc, "reason", None) or type(exc).__name__)
            return None
        tls.setblocking(True)
        return tls

    def _read_request(self, conn: Connection, sock: socket.socket,
                      deadline: float) -> bytes | None:
        limits = self.server.limits
        try:
            header = _recv_exactly(sock, PDU_HEADER, deadline)
            if len(header) < PDU_HEADER:
                return None  # closed (or shut down to make room) before an RQ: nothing to say
            pdu_deadline = min(deadline, time.monotonic() + limits.network_timeout)
            pdu_type, _, length = struct.unpack(">BBL", bytes(header))
            if pdu_type != A_ASSOCIATE_RQ_TYPE:
                _log.warning("first PDU is not an A-ASSOCIATE-RQ; aborted",
                             peer=conn.address, pdu_type=pdu_type)
                _send_quietly(sock, abort_pdu(ABORT_UNEXPECTED_PDU))
                return None
            if length > limits.max_associate_request_size:
                _log.warning("A-ASSOCIATE-RQ larger than listener.max_associate_request_size; "
                             "aborted", peer=conn.address, pdu_length=length,
                             limit=limits.max_associate_request_size)
                _send_quietly(sock, abort_pdu(ABORT_INVALID_PARAMETER))
                return None
            body = _recv_exactly(sock, length, pdu_deadline)
        except _Deadline:
            _log.warning("no A-ASSOCIATE-RQ within listener.acse_timeout (or a PDU not within "
                         "listener.network_timeout); connection closed", peer=conn.address,
                         acse_timeout=limits.acse_timeout)
            return None
        if len(body) < length:
            return None
        data = bytes(header + body)
        try:
            A_ASSOCIATE_RQ().decode(data)
        except Exception as exc:
            _log.warning("A-ASSOCIATE-RQ cannot be decoded; aborted", peer=conn.address,
                         error=type(exc).__name__)
            _send_quietly(sock, abort_pdu(ABORT_INVALID_PARAMETER))
            return None
        conn.called_ae, conn.calling_ae = data[10:26], data[26:42]  # PS3.8 Table 9-11
        return data

    def _create_guarded_association(self, sock: socket.socket, conn: Connection,
                                    rq: bytes) -> Association:
        """pynetdicom 3.0.4's ``RequestHandler._create_association`` with a GuardedSocket.

        pynetdicom offers no hook for the socket class; this is its method, line for line,
        except for the socket and the pending-connection bookkeeping.
        """
        from pynetdicom.association import Association

        server = self.server
        assoc = Association(self.ae, MODE_ACCEPTOR)
        assoc._server = server  # as pynetdicom does
        timestamp = datetime.strftime(datetime.now(), "%Y%m%d%H%M%S")
        assoc.name = f"AcceptorThread@{timestamp}"
        assoc.set_socket(GuardedSocket(assoc, sock, conn=conn, limits=server.limits,
                                       prefetched=rq))
        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        assoc.acceptor.supported_contexts = deepcopy(server.contexts)
        assoc.requestor.address_info = self.remote
        handlers = server._handlers  # as pynetdicom does
        for event in handlers:
            if event.is_intervention and handlers[event]:
                assoc.bind(event, *handlers[event])
            elif isinstance(event, evt.NotificationEvent):
                for handler in handlers[event]:
                    handler = cast(Any, handler)
                    assoc.bind(event, handler[0], handler[1])
        return assoc


class GuardedAssociationServer(ThreadedAssociationServer):
    """A :class:`ThreadedAssociationServer` whose accept thread never waits on a peer.

    Build it with ``ae.make_server(address, server_class=GuardedAssociationServer,
    request_handler=GuardedRequestHandler, ssl_context=None, limits=...,
    guarded_ssl_context=...)``: TLS is done by the handler, not by ``get_request``.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, *args: Any, limits: ReceiveLimits,
                 guarded_ssl_context: ssl.SSLContext | None = None,
                 **kwargs: Any) -> None:
        self.limits = limits
        self.registry = ConnectionRegistry(limits)
        self.guarded_ssl_context = guarded_ssl_context
        self._by_socket: dict[int, Connection] = {}
        self._by_socket_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept a connection (no TLS here: the handler's thread does the handshake)."""
        sock = cast(socket.socket, self.socket)
        client, address = sock.accept()
        client.settimeout(self.limits.acse_timeout)
        return client, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Admit the connection under the pending caps (see :class:`ConnectionRegistry`)."""
        conn = self.registry.admit(cast(socket.socket, request), client_address)
        if conn is None:
            return False
        with self._by_socket_lock:
            self._by_socket[id(request)] = conn
        return True

    def registry_connection(self, request: Any) -> Connection | None:
        """The connection that :meth:`verify_request` registered for ``request``."""
        with self._by_socket_lock:
            return self._by_socket.pop(id(request), None)

    def shutdown(self) -> None:
        """Stop the accept loop and close the listening socket (associations are left)."""
        # ThreadedAssociationServer.shutdown also removes the server from ae._servers,
        # where ae.make_server() never put it.
        socketserver.BaseServer.shutdown(self)
        self.server_close()


ServerFactory = Callable[..., GuardedAssociationServer]

__all__ = [
    "Connection",
    "ConnectionRegistry",
    "GuardedAssociationServer",
    "GuardedRequestHandler",
    "GuardedSocket",
    "ReceiveLimits",
    "abort_pdu",
]
