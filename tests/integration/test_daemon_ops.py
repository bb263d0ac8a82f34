"""Daemon operations with real peers: systemd notify socket, /metrics, workers, retry, stop.

The daemon runs its real Storage SCP on a free loopback port; instances are sent with
pynetdicom; systemd is played by an AF_UNIX datagram socket named in ``NOTIFY_SOCKET``;
``/metrics`` is read over HTTP. No wall-clock assertions: every wait has a generous bound.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from rgcds.commands import retry
from rgcds.config import (
    ExportSettings,
    ListenerSettings,
    MetricsSettings,
    ProcessingSettings,
    Settings,
    StorageSettings,
    TriggerSettings,
)
from rgcds.dicom import Peer, StoreStatus, store_files
from rgcds.service import Daemon
from rgcds.store import Job, JobState, JobStore, OutboxState, job_store_path

MR = UID("1.2.840.10008.5.1.4.1.1.4")
AET = "RGCDS"
WAIT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def mr_file(directory: Path, study: str, n: int = 1, patient_name: str = "Ops^Phantom") -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MR
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = patient_name
    ds.PatientID = "PID-OPS"
    ds.Modality = "MR"
    ds.InstanceNumber = n
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\0\1\2\3"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def settings_for(root: Path, **storage: Any) -> Settings:
    return Settings(
        listener=ListenerSettings(ae_title=AET, host="127.0.0.1", acse_timeout=5,
                                  dimse_timeout=10, network_timeout=10),
        storage=StorageSettings(**{"root": root, "min_free_bytes": 0, **storage}),
        trigger=TriggerSettings(stable_seconds=0.3, poll_seconds=0.05),
        metrics=MetricsSettings(enabled=True, host="127.0.0.1", port=free_port()),
        processing=ProcessingSettings(concurrent_studies=2),
        export=ExportSettings(poll_seconds=0.05),
    )


def send(d: Daemon, *paths: Path) -> list[int]:
    peer = Peer("127.0.0.1", d.port, AET, calling_ae_title="SCANNER1", timeout=10.0)
    return [r.status for r in store_files(peer, paths)]


def scrape(d: Daemon) -> str:
    url = f"http://127.0.0.1:{d.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


class NotifySocket:
    """Plays systemd: collects the daemon's sd_notify datagrams."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode().splitlines())
            except TimeoutError:
                continue
            except OSError:
                return

    def lines(self) -> list[str]:
        return [line for m in list(self.messages) for line in m]

    def seen(self, line: str) -> bool:
        return any(x == line for x in self.lines())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    folder = tempfile.mkdtemp(prefix="rgcds-", dir="/tmp")  # AF_UNIX paths are short
    path = str(Path(folder) / "notify")
    server = NotifySocket(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)


def run_in_thread(d: Daemon) -> threading.Thread:
    t = threading.Thread(target=d.run_forever, name="daemon-under-test", daemon=True)
    t.start()
    return t


def test_ready_metrics_processor_watchdog_and_stop(tmp_path: Path, notify: NotifySocket) -> None:
    processed: list[Job] = []
    delivered = threading.Event()
    done = threading.Event()

    d = Daemon(settings_for(tmp_path / "root"), port=free_port())

    def process(job: Job) -> None:
        assert d.jobs is not None
        processed.append(job)
        d.jobs.mark(job.job_id, JobState.EXPORTING)
        d.jobs.mark(job.job_id, JobState.DONE)
        done.set()

    d.processor = process
    d.deliver = delivered.set
    t = run_in_thread(d)
    assert wait_for(lambda: notify.seen("READY=1")), notify.lines()
    ready = next(m for m in notify.messages if "READY=1" in m)
    assert any(x.startswith("STATUS=listening on :") for x in ready)

    study = generate_uid()
    assert send(d, mr_file(tmp_path / "in", study)) == [0]
    assert done.wait(WAIT), "the processor was not called with the queued job"
    [job] = processed
    assert job.study_uid == study and job.state is JobState.PROCESSING
    assert delivered.wait(WAIT), "the delivery slot was not called"
    assert wait_for(lambda: notify.seen("WATCHDOG=1")), "no watchdog ping"

    def metrics_done() -> bool:
        text = scrape(d)
        return ("rgcds_instances_received_total 1.0" in text
                and "rgcds_studies_received_total 1.0" in text
                and "rgcds_studies_processed_total 1.0" in text
                and "rgcds_queue_depth 0.0" in text)

    assert wait_for(metrics_done), scrape(d)
    idle = f"STATUS=listening on :{d.port}; 0 queued, 0 processing"
    assert wait_for(lambda: notify.seen(idle))
    assert "Ops" not in " ".join(notify.lines())  # no PHI in status lines

    d.request_stop()
    t.join(WAIT)
    assert not t.is_alive(), "run_forever did not return after request_stop()"
    assert wait_for(lambda: notify.seen("STOPPING=1"))
    assert d.scp is not None and not d.scp.is_running
    assert d.metrics_port is None
    with JobStore(job_store_path(tmp_path / "root")) as store:
        assert store.latest_job(study).state is JobState.DONE  # type: ignore[union-attr]


def test_rejections_are_counted(tmp_path: Path) -> None:
    d = Daemon(settings_for(tmp_path / "root", duplicate_policy="reject"), port=free_port())
    d.start()
    try:
        path = mr_file(tmp_path / "in", generate_uid())
        assert send(d, path) == [0]
        assert send(d, path) == [StoreStatus.DUPLICATE_SOP_INSTANCE]
        text = scrape(d)
        assert "rgcds_instances_received_total 1.0" in text
        assert 'rgcds_instances_rejected_total{reason="duplicate"} 1.0' in text
    finally:
        d.stop(timeout=2.0)


class StageError(RuntimeError):
    stage = "segment"


def _run_retry(root: Path, tmp_path: Path, study: str) -> int:
    config = tmp_path / "retry.toml"
    config.write_text(f'[storage]\nroot = "{root}"\n')
    args = argparse.Namespace(config=config, study_uid=study, json=True,
                              log_level="ERROR", log_format="json")
    return retry.run(args)


def test_processor_failure_then_retry_reprocesses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    calls: list[Job] = []
    second = threading.Event()

    d = Daemon(settings_for(root), port=free_port())

    def process(job: Job) -> None:
        calls.append(job)
        if len(calls) == 1:
            raise StageError("the segmentation model returned no tumour")
        assert d.jobs is not None
        d.jobs.mark(job.job_id, JobState.DONE)
        second.set()

    d.processor = process
    d.start()
    try:
        study = generate_uid()
        assert send(d, mr_file(tmp_path / "in", study, patient_name="Retry^Secret")) == [0]
        assert d.jobs is not None
        assert wait_for(lambda: d.jobs.latest_job(study).state  # type: ignore[union-attr]
                        is JobState.FAILED)
        failed = d.jobs.latest_job(study)
        assert failed is not None and failed.reason == "the segmentation model returned no tumour"
        assert wait_for(
            lambda: 'rgcds_studies_failed_total{stage="segment"} 1.0' in scrape(d)
        )

        capsys.readouterr()
        assert _run_retry(root, tmp_path, study) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["action"] == "requeued" and out["failed_job_id"] == failed.job_id
        assert out["job_id"] != failed.job_id
        assert second.wait(WAIT), "the retried study was not processed again"
        assert calls[-1].job_id == out["job_id"]
        assert d.jobs.latest_job(study).state is JobState.DONE  # type: ignore[union-attr]
        assert len(d.jobs.instances(study)) == 1

        # Not failed any more: retry refuses, with a clear message and exit 1.
        assert _run_retry(root, tmp_path, study) == 1
        captured = capsys.readouterr()
        assert "is done" in captured.err and "only a failed study" in captured.err
        assert "Secret" not in captured.out + captured.err
    finally:
        d.stop(timeout=2.0)


def test_retry_unknown_study_and_redelivery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    assert _run_retry(root, tmp_path, "1.2.3.4") == 1  # no job store yet
    assert "no study was received" in capsys.readouterr().err

    from rgcds.dicom.parse import InstanceMeta

    with JobStore(job_store_path(root)) as store:
        assert _run_retry(root, tmp_path, "1.2.3.4") == 1
        assert "No study with StudyInstanceUID 1.2.3.4" in capsys.readouterr().err
        study = generate_uid()
        meta = InstanceMeta(study, generate_uid(), generate_uid(), str(MR))
        job = store.record_instance(meta, root / "x.dcm", 1)
        for state in (JobState.STABLE, JobState.QUEUED, JobState.PROCESSING,
                      JobState.EXPORTING):
            store.mark(job.job_id, state)
        sent = store.outbox_add(job.job_id, "pacs", generate_uid(), root / "a.dcm")
        lost = store.outbox_add(job.job_id, "pacs", generate_uid(), root / "b.dcm")
        store.outbox_mark_sent(sent.item_id)
        store.outbox_mark_failed(lost.item_id, "PACS refused the SEG (0xA900)")
        store.mark(job.job_id, JobState.FAILED, "delivery failed")

    assert _run_retry(root, tmp_path, study) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["action"] == "redeliver" and out["rearmed_items"] == 1
    with JobStore(job_store_path(root)) as store:
        items = {i.item_id: i for i in store.outbox_items(job.job_id)}
        assert items[lost.item_id].state is OutboxState.PENDING
        assert items[sent.item_id].state is OutboxState.SENT
        assert [i.item_id for i in store.outbox_due()] == [lost.item_id]
        assert items[lost.item_id].attempts == 0  # the back-off starts afresh
        assert store.get(job.job_id).state is JobState.EXPORTING  # the deliverer closes it
        assert len(store.jobs()) == 1  # nothing reprocessed
        from rgcds.pipeline.delivery import settle_exporting_jobs

        store.outbox_mark_sent(lost.item_id)
        settle_exporting_jobs(store)
        assert store.get(job.job_id).state is JobState.DONE


def test_stop_during_processing_leaves_job_resumable(tmp_path: Path) -> None:
    root = tmp_path / "root"
    started = threading.Event()
    d = Daemon(settings_for(root), port=free_port())

    def slow(job: Job) -> None:
        started.set()
        while not d.shutting_down:  # a long stage that notices the shutdown
            time.sleep(0.01)
        raise RuntimeError("stopped between stages")

    d.processor = slow
    d.start()
    study = generate_uid()
    try:
        assert send(d, mr_file(tmp_path / "in", study)) == [0]
        assert started.wait(WAIT)
    finally:
        d.stop(timeout=10.0)
    with JobStore(job_store_path(root)) as store:
        job = store.latest_job(study)
        assert job is not None and job.state is JobState.QUEUED

    resumed = threading.Event()
    d2 = Daemon(settings_for(root), port=free_port(), processor=lambda j: resumed.set())
    d2.start()
    try:
        assert resumed.wait(WAIT), "the interrupted job was not processed after restart"
    finally:
        d2.stop(timeout=2.0)
