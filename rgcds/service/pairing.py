"""Pair a PET/CT study with the MR study of the same patient.

The PET of a post-operative amino-acid PET scan usually arrives as its own PET/CT study and
the MRI as another study of the same patient, in either order. When a job's study holds MR
but no PET (or PET but no MR), rgcds looks among the studies it has received for the other
modality's study of the same patient within ``[pairing] window_days`` and hands its series to
the same processing run. The study processed second therefore gets the paired analysis; the
first is analysed alone (PET on its own grid, MR as a pre-operative study) and its report
says so.

Patients are matched by a pseudonymous key, an HMAC-SHA-256 of Issuer of Patient ID and
Patient ID under a per-installation secret (:func:`installation_secret`, the file
``patient-key.secret`` in the storage root, 32 random bytes created 0600 on the first
start): the job store never holds the ID itself, a key cannot be reversed by hashing every
possible ID without the secret, and nothing here is logged but UIDs. Keys recorded by an
older rgcds (an unsalted SHA-256) are re-keyed from the spool once (:func:`rekey_studies`).
Where a ``[query]`` PACS is configured and no partner was received, the PACS is asked for
one (:mod:`rgcds.dicom.query`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import structlog
from pydicom.errors import InvalidDicomError

from rgcds.config import Settings
from rgcds.dicom.query import find_studies, move_study
from rgcds.dicom.scu import Peer
from rgcds.exceptions import PermanentExportError, TransientExportError
from rgcds.logging import remember_phi
from rgcds.store import JobState, JobStore

logger = structlog.get_logger(__name__)

#: Modalities that make a study an MR or a PET study for pairing.
MR_MODALITY = "MR"
PET_MODALITY = "PT"

_HEADER_TAGS = ["PatientID", "IssuerOfPatientID", "StudyDate"]


#: The per-installation secret of the patient key, in the storage root.
SECRET_NAME = "patient-key.secret"  # noqa: S105 - a file name, not a secret
#: Prefix of keys made with the secret; a key without it is an older unsalted SHA-256.
KEY_PREFIX = "h1:"

_SECRETS: dict[Path, bytes] = {}
_SECRETS_LOCK = threading.Lock()
_REKEYED: set[Path] = set()


def installation_secret(root: Path | str) -> bytes:
    """The installation's patient-key secret, created (0600, 32 random bytes) if missing.

    Parameters
    ----------
    root
        The storage root (``[storage] root``); the secret is ``root/patient-key.secret``.

    Raises
    ------
    OSError
        If the file can neither be read nor created (a full or read-only disk).
    ValueError
        If the file holds fewer than 32 bytes of hex.
    """
    path = Path(root) / SECRET_NAME
    with _SECRETS_LOCK:
        cached = _SECRETS.get(path)
        if cached is not None:
            return cached
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = secrets.token_hex(32)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:  # another process created it first
                text = path.read_text().strip()
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(text + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                logger.info("patient key secret created", file=str(path))
        if os.stat(path).st_mode & 0o077:
            try:
                os.chmod(path, 0o600)
            except OSError:
                logger.warning("patient key secret is readable by others", file=str(path))
        secret = bytes.fromhex(text)
        if len(secret) < 32:
            raise ValueError(f"{path} holds {len(secret)} bytes; it needs 32 (64 hex digits). "
                             "Restore it from a backup, or delete it to start a new one.")
        _SECRETS[path] = secret
        return secret


def patient_key(patient_id: str, issuer: str = "", *, secret: bytes) -> str:
    """The pseudonymous key of a patient (empty when the ID is empty: never paired).

    ``KEY_PREFIX`` + the first 40 hex digits of HMAC-SHA-256(``secret``, issuer ``\\`` ID).
    """
    pid = patient_id.strip()
    if not pid:
        return ""
    mac = hmac.new(secret, f"{issuer.strip()}\\{pid}".encode(), hashlib.sha256)
    return KEY_PREFIX + mac.hexdigest()[:40]


def _iso_date(value: str) -> str | None:
    try:
        return dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def _own_header(jobs: JobStore, study_uid: str) -> Any | None:
    """One readable header (Patient ID, issuer, Study Date only) of a received study."""
    for record in jobs.instances(study_uid)[:3]:
        try:
            ds = pydicom.dcmread(record.path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        except (InvalidDicomError, OSError, EOFError, ValueError):
            continue
        remember_phi(ds)
        return ds
    return None


def _key_of(ds: Any | None, secret: bytes) -> tuple[str, str | None]:
    if ds is None:
        return "", None
    key = patient_key(str(ds.get("PatientID", "")), str(ds.get("IssuerOfPatientID", "")),
                      secret=secret)
    return key, _iso_date(str(ds.get("StudyDate", "")))


def rekey_studies(jobs: JobStore, secret: bytes) -> int:
    """Re-key studies recorded with an older, unsalted key; returns how many were re-keyed.

    The ID itself was never stored, so a study is re-keyed from one of its headers in the
    spool; one whose files are gone keeps its old key and pairs with nothing new.
    """
    done = 0
    for study_uid, key in jobs.recorded_studies():
        if not key or key.startswith(KEY_PREFIX):
            continue
        ds = _own_header(jobs, study_uid)
        if ds is None:
            continue
        new_key, date = _key_of(ds, secret)
        jobs.record_study(study_uid, new_key, date)
        done += 1
    if done:
        logger.info("patient keys re-keyed with the installation secret", studies=done)
    return done


def record_new_studies(jobs: JobStore) -> int:
    """Read one header of every study not yet recorded; returns how many were recorded.

    Nothing is recorded while the installation secret cannot be read or created (a full
    disk): the studies stay unrecorded and are recorded on a later call.
    """
    try:
        secret = installation_secret(jobs.path.parent)
    except (OSError, ValueError) as exc:
        logger.warning("patient key secret unavailable; pairing waits", error=str(exc))
        return 0
    if jobs.path not in _REKEYED:
        _REKEYED.add(jobs.path)
        rekey_studies(jobs, secret)
    recorded = 0
    for study_uid in jobs.unrecorded_studies():
        key, date = _key_of(_own_header(jobs, study_uid), secret)
        jobs.record_study(study_uid, key, date)
        recorded += 1
    return recorded


@dataclass(frozen=True)
class Partner:
    """The study paired with a job's study.

    Attributes
    ----------
    study_uid
        The partner's Study Instance UID.
    modality
        ``"MR"`` or ``"PT"``: what the partner brings.
    days_apart
        Days between the two study dates.
    inputs
        The partner's series folders.
    """

    study_uid: str
    modality: str
    days_apart: int
    inputs: tuple[Path, ...]

    def note(self) -> str:
        """A sentence for the report."""
        what = "PET/CT" if self.modality == PET_MODALITY else "MR"
        return (
            f"Paired with the {what} study {self.study_uid} of the same patient "
            f"({self.days_apart} day(s) apart)."
        )


def wanted_modality(modalities: frozenset[str]) -> str | None:
    """The partner modality a study needs: PT for an MR-only study, MR for a PET-only one."""
    has_mr, has_pet = MR_MODALITY in modalities, PET_MODALITY in modalities
    if has_mr and not has_pet:
        return PET_MODALITY
    if has_pet and not has_mr:
        return MR_MODALITY
    return None


def _days(a: str | None, b: str | None) -> int | None:
    if a is None or b is None:
        return None
    return abs((dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days)


def find_partner(jobs: JobStore, study_uid: str, window_days: int) -> Partner | None:
    """The nearest received study of the other modality of the same patient, in the window.

    A candidate whose latest job is still receiving is left out (it may be incomplete), and
    so is one without a study date (the window cannot be checked), and so is a study that
    holds both an MR and a PET series (a combined MR + PET study, or a PET/MR): its PET is
    read with its own MR, and a pre-operative study's PET is no post-operative MR's partner.
    """
    record_new_studies(jobs)
    want = wanted_modality(jobs.study_modalities(study_uid))
    own = jobs.study_record(study_uid)
    if want is None or own is None or not own[0]:
        return None
    key, date = own
    best: tuple[int, str] | None = None
    for uid, other_date in jobs.patient_studies(key):
        modalities = jobs.study_modalities(uid)
        if uid == study_uid or want not in modalities or wanted_modality(modalities) is None:
            continue
        latest = jobs.latest_job(uid)
        if latest is None or latest.state is JobState.RECEIVING:
            continue
        days = _days(date, other_date)
        if days is None or days > window_days:
            continue
        if best is None or (days, uid) < best:
            best = (days, uid)
    if best is None:
        return None
    days, uid = best
    inputs = tuple(sorted({Path(r.path).parent for r in jobs.instances(uid)}))
    logger.info("partner study found", study_uid=study_uid, partner_uid=uid, days_apart=days)
    return Partner(study_uid=uid, modality=want, days_apart=days, inputs=inputs)


def retrieve_partner(settings: Settings, jobs: JobStore, study_uid: str) -> Partner | None:
    """Ask the ``[query]`` PACS for the partner study and C-MOVE it to our listener.

    The nearest study of the other modality within the window that rgcds has not received
    is moved; it is recorded as retrieved for this study first, so its own job is closed
    without a separate analysis. Network trouble is logged and gives ``None`` (the study is
    then analysed alone).
    """
    query = settings.query
    want = wanted_modality(jobs.study_modalities(study_uid))
    if query is None or want is None:
        return None
    ds = _own_header(jobs, study_uid)
    if ds is None or not str(ds.get("PatientID", "")).strip():
        return None
    window = settings.pairing.window_days
    date = _iso_date(str(ds.get("StudyDate", "")))
    centre = dt.date.fromisoformat(date) if date else None
    peer = Peer(
        host=query.host,
        port=query.port,
        ae_title=query.ae_title,
        calling_ae_title=query.calling_ae_title or settings.listener.ae_title,
        timeout=query.timeout_seconds,
    )
    try:
        found = find_studies(
            peer,
            str(ds.get("PatientID", "")),
            issuer=str(ds.get("IssuerOfPatientID", "")),
            modality=want,
            date_from=centre - dt.timedelta(days=window) if centre else None,
            date_to=centre + dt.timedelta(days=window) if centre else None,
        )
    except (TransientExportError, PermanentExportError) as exc:
        logger.warning("query PACS not answering; no partner retrieved", error=str(exc))
        return None
    candidates = sorted(
        (abs((f.study_date - centre).days), f.study_uid)
        for f in found
        if f.study_uid != study_uid and f.study_date is not None and centre is not None
        and abs((f.study_date - centre).days) <= window
    )
    destination = query.move_destination or settings.listener.ae_title
    for days, uid in candidates:
        jobs.mark_retrieved(uid, study_uid)
        try:
            move_study(peer, uid, destination)
        except (TransientExportError, PermanentExportError) as exc:
            logger.warning("partner study not retrieved", partner_uid=uid, error=str(exc))
            continue
        instances = jobs.instances(uid)
        if not instances:
            continue
        record_new_studies(jobs)
        logger.info("partner study retrieved", study_uid=study_uid, partner_uid=uid)
        inputs = tuple(sorted({Path(r.path).parent for r in instances}))
        return Partner(study_uid=uid, modality=want, days_apart=days, inputs=inputs)
    return None


def no_partner_note(study_modalities: frozenset[str], window_days: int) -> str | None:
    """The report's sentence when a single-modality study found no partner."""
    want = wanted_modality(study_modalities)
    if want == MR_MODALITY:
        return (
            f"No MR study of this patient was received within {window_days} days of the PET; "
            "PET-only analysis on the PET grid (no tumour segmentation, CTV or residual-tumour "
            "assessment). A paired analysis follows when the MR arrives."
        )
    return None


__all__ = [
    "KEY_PREFIX",
    "MR_MODALITY",
    "PET_MODALITY",
    "SECRET_NAME",
    "Partner",
    "find_partner",
    "installation_secret",
    "no_partner_note",
    "patient_key",
    "record_new_studies",
    "rekey_studies",
    "retrieve_partner",
    "wanted_modality",
]
