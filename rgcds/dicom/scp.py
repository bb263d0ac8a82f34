"""The DICOM Storage SCP: C-ECHO and C-STORE, access control, optional TLS.

With a :class:`rgcds.dicom.commitment.StorageCommitment` it is also the Storage Commitment
Push Model SCP (N-ACTION in, N-EVENT-REPORT out; see that module).

The listener decodes only the identifying tags of each instance
(:func:`rgcds.dicom.parse.read_instance_meta`) and hands the encoded bytes to a *sink*
(in the daemon, :class:`rgcds.store.Ingestor`), which returns once the instance is as
durable as ``storage.durability`` promises (fsynced, or written to the kernel). Only then
is Success sent. When the peer asks to release, the *release barrier* (the daemon's
:meth:`rgcds.store.Ingestor.flush`) runs before the A-RELEASE response: everything the
association stored is then fsynced and indexed; if it cannot be, the association is aborted
instead of released. The handler never raises: every error becomes a DIMSE failure status
(:class:`rgcds.dicom.status.StoreStatus`).

Access control happens when the association is requested: the called AE title must be
``listener.ae_title`` and the calling AE title must be in ``listener.allowed_calling_aets``
(a table entry with ``host`` also pins the peer's address). Others get A-ASSOCIATE-RJ,
rejected-permanent, source service-user, reason "calling AE title not recognised" (3) or
"called AE title not recognised" (7). An empty ``allowed_calling_aets`` accepts any calling
AE title; :meth:`StorageSCP.start` logs a warning saying so. AE titles are compared exactly,
after removing the leading and trailing spaces that PS3.5 calls insignificant (nothing else:
a tab or newline is part of the title). An association over ``listener.max_associations``
gets A-ASSOCIATE-RJ rejected-transient, source service-provider (presentation), reason
"local limit exceeded".

The connection-level guards (TLS handshake and A-ASSOCIATE-RQ deadlines, pending-connection
caps, PDU and instance bounds, prompt stop) are in :mod:`rgcds.dicom.transport`.
:meth:`StorageSCP.probe` associates with the running listener over loopback and sends a
C-ECHO: the daemon's health check.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import structlog
from pynetdicom import AE, evt

from rgcds.config import CallingAE, ListenerSettings
from rgcds.dicom.commitment import STORAGE_COMMITMENT_SOP_CLASS, StorageCommitment
from rgcds.dicom.parse import InstanceMeta
from rgcds.dicom.scp_handlers import (
    REASON_CALLED_AE_NOT_RECOGNISED,
    REASON_CALLING_AE_NOT_RECOGNISED,
    REASON_LOCAL_LIMIT_EXCEEDED,
    ScpHandlers,
    ae_title_value,
)
from rgcds.dicom.scp_handlers import REJECT_PERMANENT as REJECT_PERMANENT
from rgcds.dicom.scp_handlers import REJECT_TRANSIENT as REJECT_TRANSIENT
from rgcds.dicom.scp_handlers import SOURCE_PROVIDER_PRESENTATION as SOURCE_PROVIDER_PRESENTATION
from rgcds.dicom.scp_handlers import SOURCE_SERVICE_USER as SOURCE_SERVICE_USER
from rgcds.dicom.sop_classes import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES, VERIFICATION_SOP_CLASS
from rgcds.dicom.tls import server_ssl_context
from rgcds.dicom.transport import GuardedAssociationServer, GuardedRequestHandler, ReceiveLimits
from rgcds.exceptions import StorageError

logger = structlog.get_logger(__name__)

InstanceSink = Callable[[InstanceMeta, bytes], object]
"""Stores one instance durably; returns when done, raises on failure (see module doc)."""

ReleaseBarrier = Callable[[float], bool]
"""Makes everything stored so far durable and indexed within the timeout; ``False`` if not."""


PROBE_TIMEOUT = 10.0
"""Seconds the health probe waits for its association and C-ECHO."""



def receive_limits(listener: ListenerSettings) -> ReceiveLimits:
    """The transport's deadlines and bounds from the ``[listener]`` settings."""
    return ReceiveLimits(
        acse_timeout=listener.acse_timeout,
        network_timeout=listener.network_timeout,
        max_pdu_size=listener.max_pdu_size,
        max_associate_request_size=listener.max_associate_request_size,
        max_instance_size=listener.max_instance_size,
        max_pending=listener.max_pending_connections,
        max_pending_per_address=listener.max_pending_per_address,
    )


def _probe_target(host: str, port: int) -> tuple[int, str]:
    """Where the probe connects: loopback for a wildcard listener, else the host itself."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - the wildcard address, read not bound
        return socket.AF_INET, "127.0.0.1"
    if host == "::":
        return socket.AF_INET6, "::1"
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    return int(family), str(addr[0])


def _resolve(host: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        logger.warning("cannot resolve a pinned calling AE host; it will never match", host=host)
        return set()



class StorageSCP(ScpHandlers):
    """A Storage SCP on ``listener.host:listener.port``.

    Parameters
    ----------
    listener
        The ``[listener]`` settings (AE title, access list, limits, timeouts, TLS).
    sink
        Called with each received instance's identifiers and bytes; it must make the
        instance durable before returning. It may raise :class:`OutOfResourcesError`,
        :class:`DuplicateInstanceError`, :class:`StorageError` or
        :class:`InvalidUIDError`; each maps to a failure status.
    port
        Override ``listener.port`` (tests pass a free port).
    on_release
        The release barrier (see the module docstring), called with ``dimse_timeout``
        before the A-RELEASE response of an association that stored instances.
    """

    def __init__(
        self,
        listener: ListenerSettings,
        sink: InstanceSink,
        *,
        port: int | None = None,
        on_release: ReleaseBarrier | None = None,
        commitment: StorageCommitment | None = None,
    ) -> None:
        self.settings = listener
        self._sink = sink
        self._on_release = on_release
        self.commitment = commitment
        self._port = listener.port if port is None else port
        self._server: GuardedAssociationServer | None = None
        self._probe_lock = threading.Lock()
        self._ae: AE | None = None
        self._lock = threading.Lock()
        self._open: dict[int, set[str]] = {}
        self._allowed_any: set[str] = set()
        self._allowed_hosts: dict[str, set[str]] = {}

    # -- life cycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the listener is bound to."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._port

    @property
    def is_running(self) -> bool:
        """Whether the listener accepts associations."""
        return self._server is not None

    def _build_ae(self) -> AE:
        s = self.settings
        ae = AE(ae_title=s.ae_title)
        # The listener counts associations itself (in _on_requested, associated connections
        # only); pynetdicom's own count includes connections still negotiating, so it is
        # set above anything the pending caps let through.
        ae.maximum_associations = s.max_associations + s.max_pending_connections + 8
        ae.maximum_pdu_size = s.max_pdu_size
        ae.acse_timeout = s.acse_timeout
        ae.dimse_timeout = s.dimse_timeout
        ae.network_timeout = s.network_timeout
        ae.require_called_aet = False  # checked in _on_requested, with logging
        for uid in STORAGE_SOP_CLASSES:
            ae.add_supported_context(uid, list(TRANSFER_SYNTAXES))
        ae.add_supported_context(VERIFICATION_SOP_CLASS, list(TRANSFER_SYNTAXES[:2]))
        if self.commitment is not None:
            ae.add_supported_context(STORAGE_COMMITMENT_SOP_CLASS, list(TRANSFER_SYNTAXES[:2]))
        return ae

    def start(self) -> None:
        """Bind and start accepting associations in background threads.

        Raises
        ------
        ConfigError
            If TLS is enabled but its files are missing or invalid.
        StorageError
            If the port cannot be bound.
        """
        s = self.settings
        self._allowed_any = set()
        self._allowed_hosts = {}
        for entry in s.allowed_calling_aets:
            if isinstance(entry, CallingAE) and entry.host:
                self._allowed_hosts.setdefault(entry.ae_title, set()).update(
                    _resolve(entry.host)
                )
            else:
                self._allowed_any.add(entry.ae_title if isinstance(entry, CallingAE) else entry)
        if not s.allowed_calling_aets:
            logger.warning(
                "listener.allowed_calling_aets is empty: any calling AE title is accepted; "
                "list the PACS and scanners to restrict access"
            )
        ssl_context = server_ssl_context(s.tls) if s.tls.enabled else None
        self._ae = self._build_ae()
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_ACSE_RECV, self._on_acse_recv),
            (evt.EVT_RELEASED, self._on_closed),
            (evt.EVT_ABORTED, self._on_closed),
            (evt.EVT_CONN_CLOSE, self._on_closed),
        ]
        if self.commitment is not None:
            handlers.append((evt.EVT_N_ACTION, self.commitment.on_n_action))
        try:
            server = cast(GuardedAssociationServer, self._ae.make_server(
                (s.host, self._port), evt_handlers=handlers, ssl_context=None,
                server_class=GuardedAssociationServer, request_handler=GuardedRequestHandler,
                limits=receive_limits(s), guarded_ssl_context=ssl_context,
            ))
        except OSError as exc:
            raise StorageError(
                f"The listener cannot bind {s.host}:{self._port}: {exc.strerror or exc}. "
                "Is another process using the port?"
            ) from None
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="rgcds-listener-accept", daemon=True)
        thread.start()
        self._server = server
        logger.info(
            "listener started", ae_title=s.ae_title, host=s.host, port=self.port,
            tls=s.tls.enabled, max_associations=s.max_associations,
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, let associations finish (up to ``timeout``), then close them.

        Connections that have not associated are closed at once. Closing shuts the sockets
        down, so no peer can make this wait longer than ``timeout`` plus a few seconds.

        Parameters
        ----------
        timeout
            Seconds to wait for open associations before closing them.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # the accept loop never waits on a peer, so this returns at once
        registry = server.registry
        closed_pending = registry.close_pending()
        deadline = time.monotonic() + timeout
        while registry.counts()["associated"] and time.monotonic() < deadline:
            time.sleep(0.05)
        remaining = registry.counts()["associated"]
        for assoc in registry.associations():
            assoc.acse.send_abort(0x02)  # A-P-ABORT, queued; the socket closes next
        time.sleep(0.05 if remaining else 0.0)
        registry.close_all()
        stuck = registry.join(5.0)
        logger.info("listener stopped", aborted=remaining, closed_pending=closed_pending,
                    threads_left=stuck)

    def probe(self, timeout: float | None = None) -> bool:
        """Associate with the running listener over loopback and C-ECHO; ``True`` on success.

        The probe's connection is recognised by its source address and port (registered
        before it connects) and its one-off calling AE title: it skips TLS (the handshake is
        done by the same thread that would run the association) and the access and
        association limits, not the accept loop, the handler threads or pynetdicom.

        Parameters
        ----------
        timeout
            Seconds for the association and the C-ECHO (default: ``acse_timeout`` + 1,
            at most :data:`PROBE_TIMEOUT`).
        """
        server = self._server
        if server is None:
            return False
        if timeout is None:
            timeout = min(PROBE_TIMEOUT, self.settings.acse_timeout + 1.0)
        with self._probe_lock:
            try:
                family, target = _probe_target(self.settings.host, self.port)
                with socket.socket(family, socket.SOCK_STREAM) as s:
                    s.bind((target, 0))
                    source = s.getsockname()[:2]
            except OSError as exc:
                logger.error("health probe cannot bind a loopback port", error=str(exc))
                return False
            token = "PROBE" + secrets.token_hex(5).upper()
            server.registry.expect_probe((str(source[0]), int(source[1])), token)
            ae = AE(ae_title=token)
            ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
            ae.connection_timeout = timeout
            ae.add_requested_context(VERIFICATION_SOP_CLASS)
            try:
                assoc = ae.associate(target, self.port, ae_title=self.settings.ae_title,
                                     bind_address=(str(source[0]), int(source[1])))
                if not assoc.is_established:
                    return False
                try:
                    status = assoc.send_c_echo()
                    return bool(status) and int(status.Status) == 0
                finally:
                    assoc.release()
            except Exception:
                logger.exception("health probe failed")
                return False
            finally:
                server.registry.forget_probe((str(source[0]), int(source[1])))
                ae.shutdown()

    def connection_counts(self) -> dict[str, int]:
        """Open connections: ``pending`` (no A-ASSOCIATE-RQ yet) and ``associated``."""
        server = self._server
        return server.registry.counts() if server is not None else {}

    # -- state for the trigger ----------------------------------------------------------

    def busy_studies(self) -> set[str]:
        """Study UIDs that received instances on associations that are still open."""
        with self._lock:
            out: set[str] = set()
            for studies in self._open.values():
                out |= studies
            return out


__all__ = [
    "REASON_CALLED_AE_NOT_RECOGNISED",
    "REASON_CALLING_AE_NOT_RECOGNISED",
    "REASON_LOCAL_LIMIT_EXCEEDED",
    "InstanceSink",
    "ReleaseBarrier",
    "StorageSCP",
    "ae_title_value",
    "receive_limits",
]
