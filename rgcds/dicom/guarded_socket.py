"""The guarded socket: PDU reads with deadlines and bounds, and the TLS handshake.

Part of the transport (:mod:`rgcds.dicom.transport`).
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import time
from typing import TYPE_CHECKING, Any

from pynetdicom.transport import AssociationSocket

from rgcds.dicom.connections import (
    _MAX_COMMAND_BYTES,
    _PDU_TYPES,
    ABORT_INVALID_PARAMETER,
    ABORT_UNRECOGNISED_PDU,
    P_DATA_TF_TYPE,
    PDU_HEADER,
    Connection,
    ReceiveLimits,
    _log,
    abort_pdu,
)

if TYPE_CHECKING:  # pragma: no cover
    from pynetdicom.association import Association


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
