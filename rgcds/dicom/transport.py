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

import select
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import structlog
from pynetdicom import evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.transport import (
    AssociationSocket,
    RequestHandler,
    ThreadedAssociationServer,
)

if TYPE_CHECKING:  # pragma: no cover
    from pynetdicom.association import Association

logger = structlog.get_logger(__name__)

PDU_HEADER = 6
A_ASSOCIATE_RQ_TYPE = 0x01
P_DATA_TF_TYPE = 0x04
A_ABORT_TYPE = 0x07
_PDU_TYPES = frozenset(range(0x01, 0x08))
_MAX_COMMAND_BYTES = 1 << 20
"""A DIMSE command set is a few hundred bytes; more than this is not a command."""

ABORT_SOURCE_PROVIDER = 0x02
ABORT_UNEXPECTED_PDU = 0x02
ABORT_UNRECOGNISED_PDU = 0x01
ABORT_INVALID_PARAMETER = 0x06


def abort_pdu(reason: int) -> bytes:
    """An A-ABORT PDU from the service provider (PS3.8 9.3.8) with ``reason``."""
    return struct.pack(">BBLBBBB", A_ABORT_TYPE, 0, 4, 0, 0, ABORT_SOURCE_PROVIDER, reason)


@dataclass(frozen=True, slots=True)
class ReceiveLimits:
    """The listener's receive deadlines and bounds (see :class:`rgcds.config.ListenerSettings`)."""

    acse_timeout: float
    network_timeout: float
    max_pdu_size: int
    max_associate_request_size: int
    max_instance_size: int
    max_pending: int
    max_pending_per_address: int

    @property
    def p_data_limit(self) -> int:
        """Largest P-DATA-TF variable field accepted (``max_pdu_size``; 0: instance limit)."""
        if self.max_pdu_size > 0:
            return self.max_pdu_size
        return self.max_instance_size + (1 << 16)


class _RateLimitedLog:
    """At most one warning per ``period`` seconds per event, with how many were folded in."""

    def __init__(self, period: float = 5.0) -> None:
        self._period = period
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def warning(self, event: str, **kw: Any) -> None:
        now = time.monotonic()
        with self._lock:
            last, folded = self._last.get(event, (-1e9, 0))
            if now - last < self._period:
                self._last[event] = (last, folded + 1)
                return
            self._last[event] = (now, 0)
        if folded:
            kw["similar_not_logged"] = folded
        logger.warning(event, **kw)


_log = _RateLimitedLog()


@dataclass(eq=False)
class Connection:
    """One accepted TCP connection, from accept to close.

    Attributes
    ----------
    sock
        The accepted (raw) socket; :meth:`close` shuts it down.
    address
        The peer's IP address.
    accepted_at
        ``time.monotonic()`` at accept.
    probe_token
        The calling AE title of the listener's own health probe, for its connection only.
    called_ae, calling_ae
        The AE title fields of the A-ASSOCIATE-RQ as sent (pynetdicom's decoder strips all
        white space from them; the standard makes only spaces insignificant).
    """

    sock: socket.socket
    address: str
    port: int
    accepted_at: float
    probe_token: str | None = None
    called_ae: bytes = b""
    calling_ae: bytes = b""
    state: str = "pending"  # pending -> requested -> associated; closed at the end
    assoc: Association | None = None
    thread: threading.Thread | None = field(default=None, repr=False)

    def close(self) -> None:
        """Shut the socket down (both directions): blocked reads and writes return at once."""
        try:
            # The plain socket's shutdown, also for an SSLSocket: it only acts on the file
            # descriptor and leaves the TLS object to the thread that reads from it.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass


class ConnectionRegistry:
    """Every open connection of one listener: the pending caps, the association count, stop.

    Parameters
    ----------
    limits
        The caps on pending connections.
    """

    def __init__(self, limits: ReceiveLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._conns: list[Connection] = []
        self._probes: dict[tuple[str, int], str] = {}
        self._closing = False
        self.evicted = 0
        self.refused = 0

    # -- admission (accept thread) -------------------------------------------------------

    def admit(self, sock: socket.socket, client_address: Any) -> Connection | None:
        """Register an accepted connection; ``None`` if the listener is stopping.

        Over a cap, the oldest pending connection of the same address (or of the address
        with the most pending connections) is closed to make room.
        """
        address, port = str(client_address[0]), int(client_address[1])
        now = time.monotonic()
        victims: list[Connection] = []
        with self._lock:
            if self._closing:
                self.refused += 1
                return None
            token = self._probes.pop((address, port), None)
            conn = Connection(sock, address, port, now, probe_token=token)
            if token is None:
                pending = [c for c in self._conns if c.state == "pending" and not c.probe_token]
                same = [c for c in pending if c.address == address]
                if len(same) >= self.limits.max_pending_per_address:
                    victims.append(same[0])
                elif len(pending) >= self.limits.max_pending:
                    by_address: dict[str, list[Connection]] = {}
                    for c in pending:
                        by_address.setdefault(c.address, []).append(c)
                    victims.append(max(by_address.values(), key=len)[0])
                for v in victims:
                    v.state = "closed"
                    self._conns.remove(v)
                    self.evicted += 1
            self._conns.append(conn)
        for v in victims:
            _log.warning(
                "pending connection closed to admit a new one (pending cap reached)",
                peer=v.address, pending_seconds=round(now - v.accepted_at, 3),
                max_pending=self.limits.max_pending,
                max_pending_per_address=self.limits.max_pending_per_address,
            )
            v.close()
        return conn

    def expect_probe(self, address: tuple[str, int], token: str) -> None:
        """Mark the next connection from ``address`` as the health probe (calling AE ``token``)."""
        with self._lock:
            self._probes[address] = token

    def forget_probe(self, address: tuple[str, int]) -> None:
        """Drop a probe registration that was not used."""
        with self._lock:
            self._probes.pop(address, None)

    # -- life of a connection ------------------------------------------------------------

    def mark_requested(self, conn: Connection) -> bool:
        """``conn`` sent a decodable A-ASSOCIATE-RQ: no longer pending (nor evictable)."""
        with self._lock:
            if conn.state != "pending":
                return False
            conn.state = "requested"
            return True

    def try_associate(self, conn: Connection, max_associations: int) -> bool:
        """Count ``conn`` as associated if fewer than ``max_associations`` are.

        The health probe's connection is always admitted and not counted.
        """
        with self._lock:
            if conn.state not in ("pending", "requested"):
                return False
            if conn.probe_token is None:
                n = sum(1 for c in self._conns if c.state == "associated" and not c.probe_token)
                if n >= max_associations:
                    return False
            conn.state = "associated"
            return True

    def release(self, conn: Connection) -> None:
        """Forget a connection that has ended (its slot is free at once)."""
        with self._lock:
            conn.state = "closed"
            if conn in self._conns:
                self._conns.remove(conn)

    # -- observation and stop ------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Open connections by state (the probe's not counted)."""
        with self._lock:
            out = {"pending": 0, "associated": 0}
            for c in self._conns:
                if not c.probe_token and c.state in out:
                    out[c.state] += 1
            return out

    def associations(self) -> list[Association]:
        """The pynetdicom associations of the associated connections."""
        with self._lock:
            return [c.assoc for c in self._conns if c.state == "associated" and c.assoc]

    def close_pending(self) -> int:
        """Stop admitting; close every pending connection. Returns how many."""
        with self._lock:
            self._closing = True
            pending = [c for c in self._conns if c.state == "pending"]
        for c in pending:
            c.close()
        return len(pending)

    def close_all(self) -> int:
        """Close every connection's socket. Returns how many were open."""
        with self._lock:
            self._closing = True
            conns = list(self._conns)
        for c in conns:
            c.close()
        return len(conns)

    def join(self, timeout: float) -> int:
        """Wait up to ``timeout`` for the connections' threads to end; how many did not."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [c.thread for c in self._conns if c.thread is not None]
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return sum(1 for t in threads if t.is_alive())


class _Deadline(Exception):
    """A read did not complete before its deadline (internal)."""


def _recv_exactly(sock: socket.socket, n: int, deadline: float) -> bytearray:
    """Read ``n`` bytes before ``deadline``; fewer when the peer closes.

    Raises
    ------
    _Deadline
        If the deadline passes first.
    """
    out = bytearray()
    while len(out) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Deadline
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(n - len(out), 65536))
        except (TimeoutError, ssl.SSLWantReadError):
            raise _Deadline from None
        except OSError:
            return out
        if not chunk:
            return out
        out += chunk
    return out


def _send_quietly(sock: socket.socket, data: bytes, timeout: float = 1.0) -> None:
    try:
        sock.settimeout(timeout)
        sock.sendall(data)
    except OSError:
        pass


class GuardedSocket(AssociationSocket):
    """An :class:`AssociationSocket` whose reads have deadlines and whose PDUs are bounded.

    pynetdicom's DUL reads each PDU as ``recv(6)`` then ``recv(length)``; this class serves
    those reads, first from the A-ASSOCIATE-RQ the handler already read (``prefetched``),
    then from the socket with a deadline of ``network_timeout`` from the header's first
    byte. A header over its bound is answered with A-ABORT, the connection is shut down
    and the DUL gets a short read (transport closed: A-P-ABORT to the association).
    """

    def __init__(
        self, assoc: Association, client_socket: socket.socket, *, conn: Connection,
        limits: ReceiveLimits, prefetched: bytes,
    ) -> None:
        super().__init__(assoc, client_socket=client_socket)
        self.conn = conn
        self.limits = limits
        self._prefetched = bytearray(prefetched)
        self._header_next = True
        self._deadline = 0.0
        self._pdu_type = 0
        self._command_bytes = 0
        self._dataset_bytes = 0
        client_socket.settimeout(limits.network_timeout)  # bounds sends to a stalled peer

    @property
    def ready(self) -> bool:
        """Whether data is available (the prefetched RQ counts)."""
        if self._prefetched:
            return True
        return super().ready

    def _violation(self, message: str, reason: int, **kw: Any) -> bytearray:
        _log.warning(message, peer=self.conn.address, **kw)
        if self.socket is not None:
            _send_quietly(self.socket, abort_pdu(reason))
        self.conn.close()
        return bytearray()

    def recv(self, nr_bytes: int) -> bytearray:
        """Read the next header or body the DUL asks for, within the PDU's deadline."""
        if self._prefetched:
            out = self._prefetched[:nr_bytes]
            del self._prefetched[:nr_bytes]
            return out
        sock = self.socket
        if sock is None:
            return bytearray()
        if self._header_next:
            return self._recv_header(sock, nr_bytes)
        self._header_next = True
        try:
            body = _recv_exactly(sock, nr_bytes, self._deadline)
        except _Deadline:
            return self._timed_out()
        finally:
            self._restore_timeout(sock)
        if len(body) == nr_bytes and self._pdu_type == P_DATA_TF_TYPE:
            return self._account(body)
        return body

    def _recv_header(self, sock: socket.socket, nr_bytes: int) -> bytearray:
        self._deadline = time.monotonic() + self.limits.network_timeout
        try:
            header = _recv_exactly(sock, nr_bytes, self._deadline)
        except _Deadline:
            return self._timed_out()
        finally:
            self._restore_timeout(sock)
        if len(header) < PDU_HEADER:
            return header  # closed by the peer: the DUL sees the transport close
        pdu_type, _, length = struct.unpack(">BBL", bytes(header[:PDU_HEADER]))
        if pdu_type not in _PDU_TYPES:
            return self._violation("unknown PDU type received; association aborted",
                                   ABORT_UNRECOGNISED_PDU, pdu_type=pdu_type)
        limit = (self.limits.p_data_limit if pdu_type == P_DATA_TF_TYPE
                 else self.limits.max_associate_request_size)
        if length > limit:
            return self._violation(
                "PDU longer than the negotiated maximum; association aborted",
                ABORT_INVALID_PARAMETER, pdu_type=pdu_type, pdu_length=length, limit=limit,
            )
        self._pdu_type = pdu_type
        self._header_next = False
        return header

    def _account(self, body: bytearray) -> bytearray:
        """Add a P-DATA-TF's fragments to the message being received; abort over a bound."""
        view, pos = memoryview(body), 0
        while pos + 6 <= len(view):
            (item_len,) = struct.unpack(">L", view[pos:pos + 4])
            if item_len < 2 or pos + 4 + item_len > len(view):
                break  # malformed: pynetdicom's decoder rejects it
            control = view[pos + 5]
            size = item_len - 2
            if control & 0x01:
                self._command_bytes += size
                if self._command_bytes > _MAX_COMMAND_BYTES:
                    return self._violation("DIMSE command set too large; association aborted",
                                           ABORT_INVALID_PARAMETER, size=self._command_bytes)
                if control & 0x02:
                    self._command_bytes = 0
            else:
                self._dataset_bytes += size
                if self._dataset_bytes > self.limits.max_instance_size:
                    return self._violation(
                        "data set larger than listener.max_instance_size; association aborted",
                        ABORT_INVALID_PARAMETER, size=self._dataset_bytes,
                        limit=self.limits.max_instance_size,
                    )
                if control & 0x02:
                    self._dataset_bytes = 0
            pos += 4 + item_len
        return body

    def _timed_out(self) -> bytearray:
        _log.warning("PDU not received within listener.network_timeout; connection closed",
                     peer=self.conn.address, network_timeout=self.limits.network_timeout)
        self.conn.close()
        return bytearray()

    def _restore_timeout(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(self.limits.network_timeout)
        except OSError:
            pass


def _handshake(sock: ssl.SSLSocket, deadline: float) -> None:
    """Complete a server-side TLS handshake before ``deadline`` (non-blocking, select).

    Raises
    ------
    _Deadline
        If the deadline passes.
    ssl.SSLError, OSError
        If the handshake fails.
    """
    sock.setblocking(False)
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            want_read = True
        except ssl.SSLWantWriteError:
            want_read = False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Deadline
        r, w, _ = select.select([sock] if want_read else [], [] if want_read else [sock], [],
                                remaining)
        if not r and not w:
            raise _Deadline


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
