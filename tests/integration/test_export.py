"""Export against real DICOM peers on loopback: recovery after an outage, permanent refusals.

Peers are pynetdicom Storage SCPs (started with ``block=False``) and dcmtk's ``storescp``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import MRImageStorage

from rgcds.config import DestinationSettings
from rgcds.results import SegmentationResult, SourceSeries, write_results
from rgcds.results.export import (
    NetworkTimeouts,
    RetryPolicy,
    deliver_due,
    enqueue,
)
from rgcds.results.testing import SEG_MODEL, make_labels, make_mr_series, make_report_content
from rgcds.store import OutboxState
from tests.outbox import StoreOutbox

FAST = NetworkTimeouts(connection=3, acse=5, dimse=10, network=10)
POLICY = RetryPolicy(initial_delay_s=30, factor=2, max_delay_s=600)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    source = SourceSeries(tuple(make_mr_series(slices=8, rows=32, cols=32)))
    labels = make_labels(8, 32, 32)
    written = write_results(
        tmp_path_factory.mktemp("results"),
        make_report_content(source, labels),
        source=source,
        segmentation=SegmentationResult(labels, SEG_MODEL),
    )
    return written.files()


class Received:
    """A pynetdicom storage SCP that records what it stored and answers ``status``."""

    def __init__(
        self,
        port: int,
        *,
        status: int = 0x0000,
        require_calling: list[str] | None = None,
        contexts: list | None = None,
    ) -> None:
        self.uids: list[str] = []
        self.status = status
        ae = AE(ae_title="PACS")
        ae.supported_contexts = contexts if contexts is not None else AllStoragePresentationContexts
        if require_calling is not None:
            ae.require_calling_aet = require_calling
        self.server = ae.start_server(
            ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event: evt.Event) -> int:
        self.uids.append(str(event.request.AffectedSOPInstanceUID))
        return self.status

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def port() -> int:
    return _free_port()


@pytest.fixture
def scps() -> Iterator[list[Received]]:
    started: list[Received] = []
    yield started
    for scp in started:
        scp.stop()


def _dest(port: int, calling: str | None = "RGCDS") -> DestinationSettings:
    return DestinationSettings(
        name="pacs", ae_title="PACS", host="127.0.0.1", port=port, calling_ae_title=calling
    )


def test_destination_down_then_up_delivers_everything(
    tmp_path: Path, results: list[tuple[str, Path]], port: int, scps: list[Received]
) -> None:
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    ids = enqueue(outbox, results, [_dest(port)], job_id=outbox.job_id, now=1000.0)
    first = deliver_due(outbox, [_dest(port)], now=1000.0, policy=POLICY, timeouts=FAST)
    assert (first.sent, first.retried, first.failed) == (0, len(ids), 0)
    for item in outbox.all():
        assert item.state is OutboxState.PENDING
        assert item.next_attempt_at == 1030.0
        assert item.attempts == 1
    # Not due yet: nothing happens.
    assert (
        deliver_due(outbox, [_dest(port)], now=1010.0, policy=POLICY, timeouts=FAST).attempted == 0
    )
    # Still down at the retry: the backoff doubles.
    deliver_due(outbox, [_dest(port)], now=1030.0, policy=POLICY, timeouts=FAST)
    assert {i.next_attempt_at for i in outbox.all()} == {1090.0}

    scps.append(Received(port))
    summary = deliver_due(outbox, [_dest(port)], now=1090.0, policy=POLICY, timeouts=FAST)
    assert summary.sent == len(ids)
    assert sorted(scps[0].uids) == sorted(uid for uid, _ in results)
    assert all(i.state is OutboxState.SENT for i in outbox.all())
    assert deliver_due(outbox, [_dest(port)], now=1e12, policy=POLICY, timeouts=FAST).attempted == 0


def test_rejected_calling_ae_fails_permanently(
    tmp_path: Path, results: list[tuple[str, Path]], port: int, scps: list[Received]
) -> None:
    scps.append(Received(port, require_calling=["SOMEONE"]))
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    enqueue(outbox, results[:2], [_dest(port)], job_id=outbox.job_id, now=0.0)
    summary = deliver_due(outbox, [_dest(port)], now=0.0, policy=POLICY, timeouts=FAST)
    assert (summary.sent, summary.retried, summary.failed) == (0, 0, 2)
    for item in outbox.all():
        assert item.state is OutboxState.FAILED
        assert "rejected the association permanently" in (item.last_error or "")
    assert deliver_due(outbox, [_dest(port)], now=1e12, policy=POLICY, timeouts=FAST).attempted == 0
    assert scps[0].uids == []


def test_unsupported_sop_class_fails_permanently(
    tmp_path: Path, results: list[tuple[str, Path]], port: int, scps: list[Received]
) -> None:
    from pynetdicom.presentation import build_context

    scps.append(Received(port, contexts=[build_context(MRImageStorage)]))
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    enqueue(outbox, results, [_dest(port)], job_id=outbox.job_id, now=0.0)
    summary = deliver_due(outbox, [_dest(port)], now=0.0, policy=POLICY, timeouts=FAST)
    assert summary.failed == len(results) and summary.sent == 0
    assert all("accepted none" in (i.last_error or "") for i in outbox.all())


@pytest.mark.parametrize(
    ("status", "state"),
    [(0xA700, OutboxState.PENDING), (0xC000, OutboxState.FAILED), (0xB000, OutboxState.SENT)],
)
def test_store_status_decides_retry_or_failure(
    tmp_path: Path,
    results: list[tuple[str, Path]],
    port: int,
    scps: list[Received],
    status: int,
    state: OutboxState,
) -> None:
    scps.append(Received(port, status=status))
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    enqueue(outbox, results[:1], [_dest(port)], job_id=outbox.job_id, now=0.0)
    deliver_due(outbox, [_dest(port)], now=0.0, policy=POLICY, timeouts=FAST)
    item = outbox.all()[0]
    assert item.state is state
    if state is not OutboxState.SENT:
        assert f"0x{status:04X}" in (item.last_error or "")


@pytest.mark.dcmtk
def test_dcmtk_storescp_receives_all_objects(
    tmp_path: Path, results: list[tuple[str, Path]], port: int
) -> None:
    storescp = shutil.which("storescp")
    if storescp is None:
        pytest.skip("storescp is not installed (Debian package 'dcmtk').")
    out = tmp_path / "received"
    out.mkdir()
    proc = subprocess.Popen(
        [storescp, "--aetitle", "PACS", "--output-directory", str(out), "--promiscuous", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
        enqueue(outbox, results, [_dest(port)], job_id=outbox.job_id, now=0.0)
        deadline = time.monotonic() + 20
        now = 0.0
        while time.monotonic() < deadline:
            deliver_due(
                outbox,
                [_dest(port)],
                now=now,
                policy=RetryPolicy(initial_delay_s=0.1, max_delay_s=0.1),
                timeouts=FAST,
            )
            if all(i.state is OutboxState.SENT for i in outbox.all()):
                break
            now += 1.0
            time.sleep(0.3)
        assert all(i.state is OutboxState.SENT for i in outbox.all())
        stored = {
            str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in out.iterdir()
        }
        assert stored == {uid for uid, _ in results}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_slow_object_does_not_starve_the_others(
    tmp_path: Path, results: list[tuple[str, Path]], port: int
) -> None:
    """A PACS slower than the DIMSE timeout on one object: that object is retried later
    with its own attempt count; every other object goes out in the same round."""
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    ids = enqueue(outbox, results, [_dest(port)], job_id=outbox.job_id, now=1000.0)
    slow_uid = outbox.due(1000.0)[0].sop_instance_uid
    stored: list[str] = []

    def store(event: evt.Event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        if uid == slow_uid:
            time.sleep(2.5)  # longer than the DIMSE timeout below
            return 0x0000
        stored.append(uid)
        return 0x0000

    ae = AE(ae_title="PACS")
    ae.supported_contexts = AllStoragePresentationContexts
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, store)])
    try:
        quick = NetworkTimeouts(connection=3, acse=5, dimse=1, network=5)
        summary = deliver_due(outbox, [_dest(port)], now=1000.0, policy=POLICY, timeouts=quick)
    finally:
        server.shutdown()
    assert (summary.sent, summary.retried, summary.failed) == (len(ids) - 1, 1, 0)
    assert sorted(stored) == sorted(uid for uid, _ in results if uid != slow_uid)
    by_uid = {i.sop_instance_uid: i for i in outbox.all()}
    assert by_uid[slow_uid].state is OutboxState.PENDING and by_uid[slow_uid].attempts == 1
    assert all(i.state is OutboxState.SENT for u, i in by_uid.items() if u != slow_uid)


def test_daemon_calls_with_its_listener_ae_title(
    tmp_path: Path, results: list[tuple[str, Path]], port: int, scps: list[Received]
) -> None:
    """A PACS configured from the documentation knows rgcds by ``listener.ae_title``."""
    from rgcds.config import ListenerSettings, Settings, StorageSettings
    from rgcds.pipeline.delivery import make_deliverer

    scps.append(Received(port, require_calling=["SITE_RGCDS"]))  # rejects anyone else
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    settings = Settings(
        listener=ListenerSettings(ae_title="SITE_RGCDS"),
        storage=StorageSettings(root=tmp_path / "root", min_free_bytes=0),
        destinations=[_dest(port, calling=None)],
    )
    enqueue(outbox, results[:2], settings.destinations, job_id=outbox.job_id, now=0.0)
    make_deliverer(settings, lambda: outbox.jobs)()
    assert all(i.state is OutboxState.SENT for i in outbox.all())
    assert sorted(scps[0].uids) == sorted(uid for uid, _ in results[:2])
