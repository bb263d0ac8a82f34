"""Query/retrieve SCU: find a patient's studies on a PACS (C-FIND) and move one to us (C-MOVE).

Used to fetch the partner of a PET/CT or MR study (:mod:`rgcds.service.pairing`) from the
``[query]`` PACS. Study Root information model; identifiers carry the Patient ID, which is
never logged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import structlog
from pydicom.dataset import Dataset

from rgcds.dicom.scu import Peer, associate
from rgcds.exceptions import TransientExportError

logger = structlog.get_logger(__name__)

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]


@dataclass(frozen=True, slots=True)
class FoundStudy:
    """A study the PACS knows, as C-FIND answered it."""

    study_uid: str
    study_date: dt.date | None
    modalities: tuple[str, ...]


def _date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def find_studies(
    peer: Peer,
    patient_id: str,
    *,
    issuer: str = "",
    modality: str = "",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> list[FoundStudy]:
    """C-FIND at STUDY level for one patient's studies.

    ``modality`` filters on Modalities in Study where the PACS supports it and is checked
    again on the answers (some PACS ignore the key).

    Raises
    ------
    PermanentExportError, TransientExportError
        If no association could be made or the query failed.
    """
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = patient_id
    if issuer:
        query.IssuerOfPatientID = issuer
    query.StudyInstanceUID = ""
    query.ModalitiesInStudy = modality
    if date_from or date_to:
        lo = date_from.strftime("%Y%m%d") if date_from else ""
        hi = date_to.strftime("%Y%m%d") if date_to else ""
        query.StudyDate = f"{lo}-{hi}"
    else:
        query.StudyDate = ""
    found: list[FoundStudy] = []
    with associate(peer, [(STUDY_ROOT_FIND, _SYNTAXES)]) as assoc:
        for status, identifier in assoc.send_c_find(query, STUDY_ROOT_FIND):
            code = int(getattr(status, "Status", -1))
            if code in (0xFF00, 0xFF01) and identifier is not None:
                uid = str(identifier.get("StudyInstanceUID", ""))
                mods = identifier.get("ModalitiesInStudy", "")
                mods_t = tuple(str(m) for m in (mods if not isinstance(mods, str) else [mods]) if m)
                if uid and (not modality or not mods_t or modality in mods_t):
                    found.append(
                        FoundStudy(uid, _date(str(identifier.get("StudyDate", ""))), mods_t)
                    )
            elif code != 0x0000:
                raise TransientExportError(
                    f"{peer.ae_title} answered the C-FIND with status 0x{code:04X}."
                )
    logger.info("C-FIND done", peer=peer.ae_title, n_studies=len(found))
    return found


def move_study(peer: Peer, study_uid: str, destination: str) -> tuple[int, int]:
    """C-MOVE one study to ``destination``; returns (completed, failed) sub-operations.

    Raises
    ------
    PermanentExportError, TransientExportError
        If no association could be made or the move failed as a whole.
    """
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    completed = failed = 0
    final = -1
    with associate(peer, [(STUDY_ROOT_MOVE, _SYNTAXES)]) as assoc:
        for status, _ in assoc.send_c_move(query, destination, STUDY_ROOT_MOVE):
            code = int(getattr(status, "Status", -1))
            completed = int(getattr(status, "NumberOfCompletedSuboperations", completed) or 0)
            failed = int(getattr(status, "NumberOfFailedSuboperations", failed) or 0)
            if code != 0xFF00:
                final = code
    if final not in (0x0000, 0xB000):
        raise TransientExportError(
            f"{peer.ae_title} answered the C-MOVE of study {study_uid} with status "
            f"0x{final & 0xFFFF:04X} ({completed} completed, {failed} failed)."
        )
    logger.info("C-MOVE done", study_uid=study_uid, completed=completed, failed=failed)
    return completed, failed


__all__ = ["STUDY_ROOT_FIND", "STUDY_ROOT_MOVE", "FoundStudy", "find_studies", "move_study"]
