"""The listener's connections: receive limits, the pending caps, the A-ABORT PDU.

Part of the transport (:mod:`rgcds.dicom.transport`): its log lines keep the
transport's logger name.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:  # pragma: no cover
    from pynetdicom.association import Association

# The connection registry's and the guarded socket's log lines.
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
