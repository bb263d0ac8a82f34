"""Pairing a PET/CT study with the MR study of the same patient (job store + headers)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from rgcds.config import Settings
from rgcds.dicom.parse import InstanceMeta
from rgcds.service.pairing import (
    KEY_PREFIX,
    SECRET_NAME,
    find_partner,
    installation_secret,
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
    secret = bytes(range(32))
    key = patient_key("PHGBM-000001", secret=secret)
    assert key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 40
    assert "PHGBM" not in key
    assert patient_key("PHGBM-000001", "SITE-A", secret=secret) != key
    assert patient_key("  ", secret=secret) == ""


def test_patient_key_is_an_hmac_with_the_installation_secret(tmp_path: Path) -> None:
    secret = installation_secret(tmp_path)
    path = tmp_path / SECRET_NAME
    assert len(secret) == 32 and (path.stat().st_mode & 0o777) == 0o600
    assert installation_secret(tmp_path) == secret  # read back, not made anew
    key = patient_key("1234567", secret=secret)
    # Not the unsalted SHA-256 an attacker can enumerate (7-digit IDs in seconds) ...
    assert hashlib.sha256(b"\\1234567").hexdigest()[:40] not in key
    # ... and another installation's secret gives another key.
    other = tmp_path / "other"
    assert patient_key("1234567", secret=installation_secret(other)) != key
    assert installation_secret(other) != secret


def test_studies_recorded_with_old_keys_are_rekeyed(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as jobs:
        mr, pet = generate_uid(), generate_uid()
        _instance(tmp_path, jobs, study=mr, modality="MR", patient="P9", date="20260110",
                  sop_class=MR_CLASS)
        _instance(tmp_path, jobs, study=pet, modality="PT", patient="P9", date="20260112",
                  sop_class=PET_CLASS)
        _complete(jobs, mr)
        _complete(jobs, pet)
        old_key = hashlib.sha256(b"\\P9").hexdigest()[:40]  # what rgcds recorded before
        jobs.record_study(mr, old_key, "2026-01-10")
        assert record_new_studies(jobs) == 1  # the PET study; the MR study is re-keyed
        mr_record, pet_record = jobs.study_record(mr), jobs.study_record(pet)
        assert mr_record is not None and pet_record is not None
        assert mr_record[0] == pet_record[0] and mr_record[0].startswith(KEY_PREFIX)
        partner = find_partner(jobs, pet, window_days=14)
        assert partner is not None and partner.study_uid == mr


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


def test_a_study_with_its_own_mr_and_pet_is_nobody_s_partner(tmp_path: Path) -> None:
    # The pre-operative study (MR + PET) of a patient, then the post-operative MR study a
    # few days later, before its PET/CT has arrived: no pairing with the old study's PET.
    with JobStore(tmp_path / "jobs.sqlite") as jobs:
        preop, postop, petct = generate_uid(), generate_uid(), generate_uid()
        for modality, sop_class in (("MR", MR_CLASS), ("PT", PET_CLASS)):
            _instance(tmp_path, jobs, study=preop, modality=modality, patient="P1",
                      date="20260110", sop_class=sop_class)
        _instance(tmp_path, jobs, study=postop, modality="MR", patient="P1", date="20260115",
                  sop_class=MR_CLASS)
        _complete(jobs, preop)
        _complete(jobs, postop)
        assert find_partner(jobs, postop, window_days=14) is None
        _instance(tmp_path, jobs, study=petct, modality="PT", patient="P1", date="20260118",
                  sop_class=PET_CLASS)
        _complete(jobs, petct)
        partner = find_partner(jobs, postop, window_days=14)
        assert partner is not None and partner.study_uid == petct
        back = find_partner(jobs, petct, window_days=14)
        assert back is not None and back.study_uid == postop


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
        assert alone.partner_inputs == ()
        assert alone.notes == (no_partner_note(frozenset({"PT"}), 14),)
        assert "PET-only" in alone.notes[0]
        _instance(tmp_path, jobs, study=mr, modality="MR", patient="P1", date="20260110",
                  sop_class=MR_CLASS)
        _complete(jobs, mr)
        paired = flow_parameters(settings, None, jobs, job)
        assert paired.partner_inputs and mr in paired.notes[0]
        off = settings.model_copy(update={"pairing": settings.pairing.model_copy(
            update={"enabled": False})})
        assert flow_parameters(off, None, jobs, job).partner_inputs == ()
