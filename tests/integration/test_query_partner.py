"""The ``[query]`` PACS: C-FIND for the MR partner of a PET/CT study, then C-MOVE to rgcds.

A real Orthanc holds the patient's MR study; rgcds has received only the PET/CT study. The
pairing asks Orthanc (C-FIND, Study Root), moves the MR study to rgcds' own listener
(C-MOVE) and pairs the two; the retrieved study's own job is closed without an analysis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from rgcds.config import (
    ListenerSettings,
    QuerySettings,
    Settings,
    StorageSettings,
    TriggerSettings,
)
from rgcds.dicom import Peer, store_files
from rgcds.dicom.query import find_studies
from rgcds.service import Daemon
from rgcds.service.pairing import find_partner, retrieve_partner
from rgcds.service.processing import make_processor
from rgcds.store import JobState
from rgcds.store.records import InvalidTransitionError
from tests.conftest import free_port

pytestmark = pytest.mark.orthanc

MR = UID("1.2.840.10008.5.1.4.1.1.4")
PET = UID("1.2.840.10008.5.1.4.1.1.128")


def _image(directory: Path, sop_class: UID, modality: str, study: str, series: str,
           patient: str, date: str, n: int) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID = "Query^Test", patient
    ds.StudyDate = ds.SeriesDate = date
    ds.StudyTime = "120000"
    ds.Modality, ds.InstanceNumber = modality, n
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 15, 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(32)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_mr_partner_is_found_and_moved_from_the_pacs(orthanc: Any, tmp_path: Path) -> None:
    orthanc.clear()
    patient = f"QR-{generate_uid()[-8:]}"
    mr_study, pet_study = generate_uid(), generate_uid()
    mr_series = generate_uid()
    mr_files = [_image(tmp_path / "mr", MR, "MR", mr_study, mr_series, patient, "20260110", i)
                for i in range(1, 4)]
    orthanc_peer = Peer("127.0.0.1", orthanc.dicom_port, orthanc.aet, "SCANNER1", timeout=20)
    assert all(r.ok for r in store_files(orthanc_peer, mr_files))

    port = free_port()
    settings = Settings(
        listener=ListenerSettings(ae_title="RGCDS", host="127.0.0.1", port=port),
        storage=StorageSettings(root=tmp_path / "root", min_free_bytes=0),
        trigger=TriggerSettings(stable_seconds=600, poll_seconds=0.2),
        query=QuerySettings(ae_title=orthanc.aet, host="127.0.0.1", port=orthanc.dicom_port,
                            timeout_seconds=30),
    )
    orthanc.request("PUT", "/modalities/RGCDS",
                    {"AET": "RGCDS", "Host": "127.0.0.1", "Port": port})
    daemon = Daemon(settings, port=port)
    daemon.start()
    try:
        pet_files = [
            _image(tmp_path / "pet", PET, "PT", pet_study, generate_uid(), patient, "20260113", i)
            for i in range(1, 3)
        ]
        rgcds = Peer("127.0.0.1", port, "RGCDS", "SCANNER1", timeout=20)
        assert all(r.ok for r in store_files(rgcds, pet_files))
        jobs = daemon.jobs
        assert jobs is not None
        pet_job = jobs.latest_job(pet_study)
        assert pet_job is not None
        jobs.mark(pet_job.job_id, JobState.STABLE)

        query_peer = Peer("127.0.0.1", orthanc.dicom_port, orthanc.aet, "RGCDS", timeout=20)
        found = find_studies(query_peer, patient, modality="MR")
        assert [f.study_uid for f in found] == [mr_study]

        assert find_partner(jobs, pet_study, 14) is None
        partner = retrieve_partner(settings, jobs, pet_study)
        assert partner is not None
        assert (partner.study_uid, partner.modality, partner.days_apart) == (mr_study, "MR", 3)
        assert len(jobs.instances(mr_study)) == 3
        assert all(p.is_dir() for p in partner.inputs)
        assert jobs.retrieved_for(mr_study) == pet_study

        # The retrieved study's own job is closed without a separate analysis.
        mr_job = jobs.latest_job(mr_study)
        assert mr_job is not None
        jobs.mark(mr_job.job_id, JobState.STABLE)
        # The running daemon's trigger queues a stable job on its next poll (0.2 s): whoever
        # gets there first queues it, and the job must be queued either way.
        try:
            jobs.mark(mr_job.job_id, JobState.QUEUED, expect=JobState.STABLE)
        except InvalidTransitionError:
            assert jobs.get(mr_job.job_id).state is JobState.QUEUED
        jobs.mark(mr_job.job_id, JobState.PROCESSING, expect=JobState.QUEUED)
        make_processor(settings, None, lambda: jobs)(jobs.get(mr_job.job_id))
        closed = jobs.get(mr_job.job_id)
        assert closed.state is JobState.DONE and "partner" in (closed.reason or "")
    finally:
        daemon.stop(timeout=5.0)
        orthanc.request("DELETE", "/modalities/RGCDS")
        orthanc.clear()


def test_an_unreachable_query_pacs_gives_no_partner(tmp_path: Path) -> None:
    from rgcds.dicom.parse import InstanceMeta
    from rgcds.store import JobStore

    settings = Settings(
        storage=StorageSettings(root=tmp_path, min_free_bytes=0),
        query=QuerySettings(ae_title="NOPACS", host="127.0.0.1", port=free_port(),
                            timeout_seconds=2),
    )
    with JobStore(tmp_path / "jobs.sqlite") as jobs:
        study = generate_uid()
        path = _image(tmp_path / "pet", PET, "PT", study, generate_uid(), "P9", "20260101", 1)
        jobs.record_instance(
            InstanceMeta(study, generate_uid(), generate_uid(), str(PET), "", "PT"), path, 1
        )
        assert retrieve_partner(settings, jobs, study) is None
