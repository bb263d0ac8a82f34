"""systemd notify over a real datagram socket; Prometheus metrics rendering."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from rgcds.service.metrics import Metrics
from rgcds.service.notify import SystemdNotifier


def test_notify_sends_ready_status_watchdog(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(5)
        n = SystemdNotifier(path)
        assert n.enabled
        assert n.ready("listening on 11112")
        assert server.recv(1024).decode().splitlines() == ["READY=1", "STATUS=listening on 11112"]
        assert n.watchdog()
        assert server.recv(1024) == b"WATCHDOG=1"
        assert n.stopping()
        assert b"STOPPING=1" in server.recv(1024)


def test_notify_is_noop_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = SystemdNotifier()
    assert not n.enabled
    assert n.ready("x") is False


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert SystemdNotifier("/nonexistent").watchdog_interval() == 30.0


def test_metrics_render() -> None:
    m = Metrics()
    m.studies_received.inc()
    m.stage_seconds.labels("segment").observe(3.0)
    m.export_retries.labels("pacs").inc()
    text = generate_latest(m.registry).decode()
    assert "rgcds_studies_received_total 1.0" in text
    assert 'rgcds_stage_seconds_count{stage="segment"} 1.0' in text
    assert 'rgcds_export_retries_total{destination="pacs"} 1.0' in text
