"""Shared pieces of the adversarial suite: a daemon on a free loopback port, raw PDUs.

Every connection goes to 127.0.0.1 on a port the OS handed out; every loop is bounded.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID
from pynetdicom.dimse_messages import C_ECHO_RQ
from pynetdicom.dimse_primitives import C_ECHO
from pynetdicom.pdu import A_ASSOCIATE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context

from rgcds.config import ListenerSettings, Settings, StorageSettings, TriggerSettings
from rgcds.dicom import Peer, echo
from rgcds.service import Daemon

AET = "RGCDS"
SCANNER = "SCANNER1"
VERIFICATION = "1.2.840.10008.1.1"
FAST = {"acse_timeout": 2.0, "dimse_timeout": 5.0, "network_timeout": 2.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def rss_bytes() -> int:
    """This process's resident set size (the daemon under test runs in it)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def make_settings(root: Path, **listener: Any) -> Settings:
    return Settings(
        listener=ListenerSettings(**{
            "ae_title": AET, "host": "127.0.0.1", "allowed_calling_aets": [SCANNER],
            **FAST, **listener,
        }),
        storage=StorageSettings(root=root, min_free_bytes=0),
        trigger=TriggerSettings(stable_seconds=600, poll_seconds=0.2),
    )


StartDaemon = Callable[..., Daemon]


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[StartDaemon]:
    started: list[Daemon] = []

    def start(settings: Settings | None = None, **listener: Any) -> Daemon:
        d = Daemon(settings or make_settings(tmp_path / f"root{len(started)}", **listener),
                   port=free_port())
        d.start()
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop(timeout=2.0)


def peer(d: Daemon, calling: str = SCANNER, **kw: Any) -> Peer:
    return Peer("127.0.0.1", d.port, AET, calling_ae_title=calling, timeout=kw.pop("timeout", 5.0),
                **kw)


def echo_ok(d: Daemon, **kw: Any) -> bool:
    try:
        return echo(peer(d, **kw)) == 0
    except Exception:
        return False


def answers_echo(port: int) -> bool:
    """Whether a daemon (any process) on ``port`` answers a C-ECHO from the scanner."""
    try:
        return echo(Peer("127.0.0.1", port, AET, calling_ae_title=SCANNER, timeout=5.0)) == 0
    except Exception:
        return False


def write_serve_config(path: Path, root: Path, port: int, extra: str = "", *,
                       min_free_bytes: int = 0, storage: str = "") -> Path:
    """A ``rgcds serve`` TOML for a daemon process on ``port`` (metrics off).

    ``storage`` lines go into ``[storage]``; ``extra`` (other sections) is appended.
    """
    path.write_text(
        f'[listener]\nae_title = "{AET}"\nhost = "127.0.0.1"\nport = {port}\n'
        f'allowed_calling_aets = ["{SCANNER}"]\n'
        f'[storage]\nroot = "{root}"\nmin_free_bytes = {min_free_bytes}\n{storage}'
        '[metrics]\nenabled = false\n' + extra
    )
    return path


def saved_files(datasets: list[Any], directory: Path) -> list[Path]:
    """Write ``datasets`` as Part 10 files ``mr<i>.dcm`` under ``directory``."""
    paths = []
    for i, ds in enumerate(datasets):
        paths.append(directory / f"mr{i}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


# -- raw PDUs ---------------------------------------------------------------------------


def associate_rq(calling: str | bytes = SCANNER, called: str = AET,
                 max_pdu: int = 16382) -> bytes:
    """An A-ASSOCIATE-RQ proposing Verification, as bytes (calling AE patched in raw)."""
    prim = A_ASSOCIATE()
    prim.application_context_name = "1.2.840.10008.3.1.1.1"
    prim.calling_ae_title = "PLACEHOLDER"
    prim.called_ae_title = called
    cx = build_context(VERIFICATION, [ImplicitVRLittleEndian])
    cx.context_id = 1
    prim.presentation_context_definition_list = [cx]
    ml = MaximumLengthNotification()
    ml.maximum_length_received = max_pdu
    ic = ImplementationClassUIDNotification()
    ic.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
    prim.user_information = [ml, ic]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(prim)
    data = bytearray(pdu.encode())
    raw = calling.encode("ascii") if isinstance(calling, str) else calling
    data[26:42] = raw.ljust(16, b" ")[:16]  # Calling AE Title field (PS3.8 9.3.2)
    return bytes(data)


def echo_pdata(message_id: int = 1) -> bytes:
    """The P-DATA-TF PDU(s) of a C-ECHO-RQ on presentation context 1."""
    prim = C_ECHO()
    prim.MessageID = message_id
    prim.AffectedSOPClassUID = VERIFICATION
    msg = C_ECHO_RQ()
    msg.primitive_to_message(prim)
    out = b""
    for primitive in msg.encode_msg(1, 16382):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        out += pdu.encode()
    return out


RELEASE_RQ = struct.pack(">BBLL", 0x05, 0, 4, 0)


def read_pdu(sock: socket.socket, timeout: float = 5.0) -> tuple[int, bytes] | None:
    """Read one PDU (type, body); ``None`` when the peer closes or resets first."""
    sock.settimeout(timeout)
    try:
        header = _exactly(sock, 6)
        if len(header) < 6:
            return None
        pdu_type, _, length = struct.unpack(">BBL", header)
        body = _exactly(sock, length)
    except (ConnectionResetError, BrokenPipeError):
        return None
    return pdu_type, body


def _exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def connect(d: Daemon, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", d.port), timeout=timeout)
    return s


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the listener closes ``sock`` within ``timeout`` (reading and discarding)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def raw_echo(port: int, timeout: float = 5.0) -> bool:
    """Associate, C-ECHO and release with raw PDUs; ``True`` if the echo answered Success."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(associate_rq())
        ac = read_pdu(s, timeout)
        if ac is None or ac[0] != 0x02:
            return False
        s.sendall(echo_pdata())
        rsp = read_pdu(s, timeout)
        if rsp is None or rsp[0] != 0x04:
            return False
        # Status (0000,0900) US in the implicit VR command set: tag, length 2, value 0.
        ok = b"\x00\x00\x00\x09\x02\x00\x00\x00\x00\x00" in rsp[1]
        s.sendall(RELEASE_RQ)
        read_pdu(s, timeout)
        return ok
