"""No connection can hold the listener: slow-loris, idle TLS, floods, stop, health (issue 21)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rgcds.config import TlsSettings
from rgcds.dicom import client_ssl_context
from rgcds.service import Daemon
from tests.adversarial.conftest import (
    AET,
    SCANNER,
    StartDaemon,
    associate_rq,
    closed_by_peer,
    connect,
    echo_ok,
    free_port,
    make_settings,
    peer,
    raw_echo,
    wait_for,
)
from tests.integration.test_listener_tls import Pki, pki  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(60)


def test_slow_loris_before_association_does_not_lock_senders_out(
    start_daemon: StartDaemon,
) -> None:
    d = start_daemon(max_associations=10)
    stalled: list[socket.socket] = []
    try:
        for i in range(11):
            s = connect(d)
            # Half send a 6-byte A-ASSOCIATE-RQ header, half a single byte; then stall.
            s.sendall(associate_rq()[:6] if i % 2 else b"\x01")
            stalled.append(s)
        assert echo_ok(d)  # served while every stalled connection is open
        # Each stalled connection is closed within acse_timeout (2 s here), not kept.
        assert all(closed_by_peer(s, 8.0) for s in stalled)
        assert wait_for(lambda: d.scp.connection_counts()["pending"] == 0)  # type: ignore[union-attr]
    finally:
        for s in stalled:
            s.close()


def test_slow_pdu_after_association_is_cut_at_network_timeout(
    start_daemon: StartDaemon,
) -> None:
    d = start_daemon()
    s = connect(d)
    try:
        s.sendall(associate_rq())
        s.settimeout(5)
        assert s.recv(1) == b"\x02"  # A-ASSOCIATE-AC
        s.recv(65536)
        s.sendall(b"\x04\x00\x00\x00\x10\x00")  # a P-DATA-TF header, then nothing
        assert closed_by_peer(s, 8.0)
    finally:
        s.close()
    assert echo_ok(d)


def test_silent_and_fire_and_forget_connections_hold_no_slot(start_daemon: StartDaemon) -> None:
    d = start_daemon(max_associations=2)
    for _ in range(11):
        with connect(d) as s:  # malformed A-ASSOCIATE-RQ, then gone
            s.sendall(b"\x01\x00\x00\x00\x00\x20" + os.urandom(32))
    silent = [connect(d) for _ in range(11)]
    try:
        assert echo_ok(d)
        assert echo_ok(d)
    finally:
        for s in silent:
            s.close()
    # A peer that closes frees its slot at once.
    assert wait_for(lambda: d.scp.connection_counts()["pending"] == 0, 5.0)  # type: ignore[union-attr]


def test_pending_connections_are_capped_per_address(start_daemon: StartDaemon) -> None:
    d = start_daemon(max_pending_per_address=4, max_pending_connections=6,
                     acse_timeout=20.0, network_timeout=20.0)
    conns = [connect(d) for _ in range(40)]
    try:
        assert wait_for(lambda: d.scp.connection_counts()["pending"] <= 4)  # type: ignore[union-attr]
        assert echo_ok(d, timeout=10.0)  # the newest connection gets in; the oldest go
        closed = sum(closed_by_peer(s, 0.2) for s in conns)
        assert closed >= 36
    finally:
        for s in conns:
            s.close()


@pytest.fixture
def tls_daemon(start_daemon: StartDaemon, tmp_path: Path, pki: Pki) -> Daemon:  # noqa: F811
    tls = TlsSettings(enabled=True, certificate=pki.server_cert, private_key=pki.server_key,
                      ca_certificates=pki.ca, require_client_certificate=True)
    return start_daemon(make_settings(tmp_path / "tls", tls=tls))


def _tls_peer(d: Daemon, pki: Pki) -> Any:  # noqa: F811
    ctx = client_ssl_context(TlsSettings(ca_certificates=pki.ca, certificate=pki.client_cert,
                                         private_key=pki.client_key))
    return peer(d, ssl_context=ctx, server_hostname="localhost")


def test_idle_tls_connection_does_not_stop_tls_associations(
    tls_daemon: Daemon, pki: Pki, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    from rgcds.dicom import echo

    idle = [connect(tls_daemon) for _ in range(3)]  # no byte sent
    try:
        assert echo(_tls_peer(tls_daemon, pki)) == 0
        assert tls_daemon.healthy()  # the probe gets through as well
        assert all(closed_by_peer(s, 8.0) for s in idle)  # handshake deadline: acse_timeout
    finally:
        for s in idle:
            s.close()
    with connect(tls_daemon) as s:  # not TLS at all
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        closed_by_peer(s, 5.0)
    assert wait_for(lambda: "TLS handshake failed" in capsys.readouterr().out, 5.0)


def test_stop_closes_stalled_connections_at_once(tls_daemon: Daemon) -> None:
    stalled = [connect(tls_daemon) for _ in range(5)]
    try:
        stopper = threading.Thread(target=tls_daemon.stop, kwargs={"timeout": 2.0})
        stopper.start()
        stopper.join(20.0)
        assert not stopper.is_alive(), "stop waited on a peer"
    finally:
        for s in stalled:
            s.close()


def test_sigterm_stops_serve_with_slow_loris_connections_open(tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "root"
    config = tmp_path / "rgcds.toml"
    config.write_text(
        f'[listener]\nae_title = "{AET}"\nhost = "127.0.0.1"\nport = {port}\n'
        f'allowed_calling_aets = ["{SCANNER}"]\n'
        f'[storage]\nroot = "{root}"\nmin_free_bytes = 0\n[metrics]\nenabled = false\n'
    )
    code = ("import argparse, sys; from pathlib import Path; from rgcds.commands import serve; "
            "sys.exit(serve.run(argparse.Namespace(config=Path(sys.argv[1]), "
            "log_level='INFO', log_format='json')))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stalled: list[socket.socket] = []
    try:
        assert wait_for(lambda: _raw_echo_quiet(port), 30.0)
        for i in range(11):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(associate_rq()[: 6 if i % 2 else 1])
            stalled.append(s)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)  # the default TimeoutStopSec is 120
    finally:
        for s in stalled:
            s.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert "daemon stopped" in err


def _raw_echo_quiet(port: int) -> bool:
    try:
        return raw_echo(port, timeout=2.0)
    except OSError:
        return False


def test_health_check_sees_a_wedged_listener(start_daemon: StartDaemon) -> None:
    d = start_daemon()
    assert d.healthy()
    server = d.scp._server  # type: ignore[union-attr]
    assert server is not None
    release = threading.Event()
    original = server.verify_request

    def wedged(request: Any, address: Any) -> bool:
        release.wait(30)  # the accept thread hangs, as a blocking handshake made it
        return original(request, address)

    server.verify_request = wedged  # type: ignore[method-assign]
    try:
        assert not d.healthy()  # the watchdog stops pinging; systemd restarts the daemon
    finally:
        release.set()
        server.verify_request = original  # type: ignore[method-assign]
    assert wait_for(d.healthy, 10.0)
