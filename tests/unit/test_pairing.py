"""Pairing a PET/CT study with the MR study of the same patient (job store + headers)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from rgcds.config import Settings
from rgcds.dicom.parse import InstanceMeta
from rgcds.service.pairing import (
    find_partner,
    no_partner_note,
    patient_key,
    record_new_studies,
    wanted_modality,
)
from rgcds.service.processing import flow_parameters
from rgcds.store import JobState, JobStore

MR_CLASS = "1.2.840.10008.5.1.4.1.1.4"
PET_CLASS = "1.2.840.10008.5.1.4.1.1.128"
CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"


def _instance(
    root: Path, jobs: JobStore, *, study: str, modality: str, patient: str, date: str,
    sop_class: str,
) -> Path:
    series = generate_uid()
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    sop = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientID, ds.StudyDate, ds.Modality = patient, date, modality
    folder = root / study / series
    folder.mkdir(parents=True)
    path = folder / f"{sop}.dcm"
    ds.save_as(path, enforce_file_format=True)
    meta = InstanceMeta(study, series, sop, sop_class, str(ExplicitVRLittleEndian), modality)
    jobs.record_instance(meta, path, path.stat().st_size)
    return path


def _complete(jobs: JobStore, study: str) -> None:
    job = jobs.latest_job(study)
    assert job is not None
    jobs.mark(job.job_id, JobState.STABLE)


def test_patient_key_is_a_hash_and_empty_ids_never_pair() -> None:
    key = patient_key("PHGBM-000001")
    assert len(key) == 40 and "PHGBM" not in key
    assert patient_key("PHGBM-000001", "SITE-A") != key
    assert patient_key("  ") == ""


def test_wanted_modality() -> None:
    assert wanted_modality(frozenset({"MR"})) == "PT"
    assert wanted_modality(frozenset({"PT", "CT"})) == "MR"
    assert wanted_modality(frozenset({"MR", "PT"})) is None
    assert wanted_modality(frozenset({"CT"})) is None


def test_pet_study_pairs_with_mr_of_same_patient_in_window(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as jobs:
        mr, pet, other, old = (generate_uid() for _ in range(4))
        _instance(tmp_path, jobs, study=mr, modality="MR", patient="P1", date="20260110",
                  sop_class=MR_CLASS)
        _instance(tmp_path, jobs, study=pet, modality="PT", patient="P1", date="20260115",
                  sop_class=PET_CLASS)
        _instance(tmp_path, jobs, study=pet, modality="CT", patient="P1", date="20260115",
                  sop_class=CT_CLASS)
        _instance(tmp_path, jobs, study=other, modality="MR", patient="P2", date="20260114",
                  sop_class=MR_CLASS)
        _instance(tmp_path, jobs, study=old, modality="MR", patient="P1", date="20251101",
                  sop_class=MR_CLASS)
        for uid in (mr, pet, other, old):
            _complete(jobs, uid)
        assert record_new_studies(jobs) == 4
        partner = find_partner(jobs, pet, window_days=14)
        assert partner is not None
        assert (partner.study_uid, partner.modality, partner.days_apart) == (mr, "MR", 5)
        assert partner.inputs and all(p.is_dir() for p in partner.inputs)
        assert "PET/CT" not in partner.note() and mr in partner.note()
        back = find_partner(jobs, mr, window_days=14)
        assert back is not None and back.study_uid == pet and back.modality == "PT"
        assert find_partner(jobs, pet, window_days=4) is None
        assert find_partner(jobs, other, window_days=14) is None


def test_a_partner_still_receiving_is_not_used(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as jobs:
        mr, pet = generate_uid(), generate_uid()
        _instance(tmp_path, jobs, study=mr, modality="MR", patient="P1", date="20260110",
                  sop_class=MR_CLASS)
        _instance(tmp_path, jobs, study=pet, modality="PT", patient="P1", date="20260111",
                  sop_class=PET_CLASS)
        _complete(jobs, pet)
        assert find_partner(jobs, pet, window_days=14) is None
        _complete(jobs, mr)
        assert find_partner(jobs, pet, window_days=14) is not None


def test_flow_parameters_carry_partner_and_notes(tmp_path: Path) -> None:
    settings = Settings(storage={"root": tmp_path})  # type: ignore[arg-type]
    with JobStore(tmp_path / "jobs.sqlite") as jobs:
        mr, pet = generate_uid(), generate_uid()
        _instance(tmp_path, jobs, study=pet, modality="PT", patient="P1", date="20260111",
                  sop_class=PET_CLASS)
        _complete(jobs, pet)
        job = jobs.latest_job(pet)
        assert job is not None
        alone = flow_parameters(settings, None, jobs, job)
        assert alone["partner_inputs"] == []
        assert alone["notes"] == [no_partner_note(frozenset({"PT"}), 14)]
        assert "PET-only" in alone["notes"][0]
        _instance(tmp_path, jobs, study=mr, modality="MR", patient="P1", date="20260110",
                  sop_class=MR_CLASS)
        _complete(jobs, mr)
        paired = flow_parameters(settings, None, jobs, job)
        assert paired["partner_inputs"] and mr in paired["notes"][0]
        off = settings.model_copy(update={"pairing": settings.pairing.model_copy(
            update={"enabled": False})})
        assert flow_parameters(off, None, jobs, job)["partner_inputs"] == []
