"""Storage Commitment Push Model SCP (issue 23), with a real Orthanc as the SCU.

Orthanc (1.6 and later) asks a modality for storage commitment through its REST API
(``POST /modalities/{id}/storage-commitment``): it sends the N-ACTION, closes the
association and waits for the N-EVENT-REPORT on its own DICOM port, then shows the outcome
under ``/storage-commitment/{transaction}``. rgcds must answer on a new association to the
requester, found among its ``[[destinations]]``: committed for what it holds, failed (no such
object instance) for what it does not, and for an instance stored with another SOP class.
A requester that is no destination and keeps its association open gets the report on it
(pynetdicom as the SCU).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt

from rgcds.config import (
    DestinationSettings,
    ListenerSettings,
    Settings,
    StorageSettings,
    TriggerSettings,
)
from rgcds.dicom import Peer, store_files
from rgcds.dicom.commitment import STORAGE_COMMITMENT_SOP_CLASS, STORAGE_COMMITMENT_SOP_INSTANCE
from rgcds.service import Daemon
from tests.conftest import free_port

MR = "1.2.840.10008.5.1.4.1.1.4"
CT = "1.2.840.10008.5.1.4.1.1.2"


def _image(folder: Path, study: str, number: int, series: str = "") -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = MR, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series or generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "MR", "SC-1", "Commit^Test"
    ds.InstanceNumber = number
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.PixelData = bytes(32)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MR, ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path = folder / f"{number}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, str(ds.SOPInstanceUID)


def _daemon(tmp_path: Path, orthanc: Any) -> tuple[Daemon, int]:
    port = free_port()
    settings = Settings(
        listener=ListenerSettings(ae_title="RGCDS", host="127.0.0.1", port=port),
        storage=StorageSettings(root=tmp_path / "root", min_free_bytes=0),
        trigger=TriggerSettings(stable_seconds=600, poll_seconds=0.2),
        destinations=[DestinationSettings(name="pacs", ae_title=orthanc.aet, host="127.0.0.1",
                                          port=orthanc.dicom_port)],
    )
    daemon = Daemon(settings, port=port)
    daemon.start()
    return daemon, port


def _wait_report(orthanc: Any, path: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        report: dict[str, Any] = orthanc.get(path)
        if report.get("Status") != "Pending" or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def test_orthanc_gets_a_commitment_report_for_what_rgcds_holds(orthanc: Any,
                                                                tmp_path: Path) -> None:
    daemon, port = _daemon(tmp_path, orthanc)
    orthanc.request("PUT", "/modalities/RGCDS", {"AET": "RGCDS", "Host": "127.0.0.1",
                                                 "Port": port})
    try:
        study, series = generate_uid(), generate_uid()
        stored = [_image(tmp_path / "in", study, i, series) for i in range(1, 4)]
        sender = Peer("127.0.0.1", port, "RGCDS", orthanc.aet, timeout=20)
        assert all(r.ok for r in store_files(sender, [p for p, _ in stored]))
        held = [{"SOPClassUID": MR, "SOPInstanceUID": uid} for _, uid in stored]
        missing = {"SOPClassUID": MR, "SOPInstanceUID": generate_uid()}
        wrong_class = {"SOPClassUID": CT, "SOPInstanceUID": stored[0][1]}

        answer = orthanc.request("POST", "/modalities/RGCDS/storage-commitment",
                                 {"DicomInstances": held})
        report = _wait_report(orthanc, answer["Path"])
        assert report["Status"] == "Success", report
        assert sorted(i["SOPInstanceUID"] for i in report["Success"]) == sorted(
            uid for _, uid in stored)
        assert report["Failures"] == []

        answer = orthanc.request("POST", "/modalities/RGCDS/storage-commitment",
                                 {"DicomInstances": [*held[:1], missing, wrong_class]})
        report = _wait_report(orthanc, answer["Path"])
        assert report["Status"] == "Failure", report
        assert [i["SOPInstanceUID"] for i in report["Success"]] == [stored[0][1]]
        reasons = {(i["SOPClassUID"], i["SOPInstanceUID"]): i["FailureReason"]
                   for i in report["Failures"]}
        assert reasons == {(MR, missing["SOPInstanceUID"]): 0x0112,
                           (CT, stored[0][1]): 0x0119}
    finally:
        daemon.stop(timeout=5.0)
        orthanc.request("DELETE", "/modalities/RGCDS")


def test_a_requester_that_is_no_destination_gets_the_report_on_its_association(
    orthanc: Any, tmp_path: Path,
) -> None:
    daemon, port = _daemon(tmp_path, orthanc)
    try:
        study = generate_uid()
        path, uid = _image(tmp_path / "in", study, 1)
        assert all(r.ok for r in store_files(Peer("127.0.0.1", port, "RGCDS", "MODALITY1",
                                                  timeout=20), [path]))
        reports: list[tuple[int, Dataset]] = []
        got = threading.Event()

        def on_report(event: Any) -> tuple[int, None]:
            reports.append((int(event.event_type), event.event_information))
            got.set()
            return 0x0000, None

        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(STORAGE_COMMITMENT_SOP_CLASS)
        assoc = ae.associate("127.0.0.1", port, ae_title="RGCDS",
                             evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
        assert assoc.is_established
        try:
            info = Dataset()
            info.TransactionUID = generate_uid()
            item = Dataset()
            item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = MR, uid
            info.ReferencedSOPSequence = [item]
            status, _ = assoc.send_n_action(info, 1, STORAGE_COMMITMENT_SOP_CLASS,
                                            STORAGE_COMMITMENT_SOP_INSTANCE)
            assert status.Status == 0x0000
            assert got.wait(20), "no N-EVENT-REPORT on the requesting association"
        finally:
            assoc.release()
        event_type, report = reports[0]
        assert event_type == 1
        assert report.TransactionUID == info.TransactionUID
        assert [r.ReferencedSOPInstanceUID for r in report.ReferencedSOPSequence] == [uid]
        assert "FailedSOPSequence" not in report
    finally:
        daemon.stop(timeout=5.0)


def test_a_malformed_commitment_request_gets_a_failure_status_not_a_crash(
    orthanc: Any, tmp_path: Path,
) -> None:
    daemon, port = _daemon(tmp_path, orthanc)
    try:
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(STORAGE_COMMITMENT_SOP_CLASS)
        assoc = ae.associate("127.0.0.1", port, ae_title="RGCDS")
        assert assoc.is_established
        try:
            no_refs = Dataset()
            no_refs.TransactionUID = generate_uid()
            status, _ = assoc.send_n_action(no_refs, 1, STORAGE_COMMITMENT_SOP_CLASS,
                                            STORAGE_COMMITMENT_SOP_INSTANCE)
            assert status.Status == 0x0120  # missing attribute
            status, _ = assoc.send_n_action(no_refs, 7, STORAGE_COMMITMENT_SOP_CLASS,
                                            STORAGE_COMMITMENT_SOP_INSTANCE)
            assert status.Status == 0x0123  # no such action type
        finally:
            assoc.release()
        assert daemon.scp is not None and daemon.scp.probe()
    finally:
        daemon.stop(timeout=5.0)
