"""DIMSE status codes of C-STORE (PS3.4 Annex B.2.3, PS3.7 Annex C) and the one rule for them.

The storage SCP returns :class:`StoreStatus` values; every C-STORE rgcds sends (the
deliverer in :mod:`rgcds.results.export` and :func:`rgcds.dicom.scu.store_files`) judges the
answer with :func:`is_store_success` and :func:`classify_store_status`, the same rule as
pynetdicom's status tables (``pynetdicom.status``): success, or one of the warnings
:data:`STORE_WARNING_STATUSES` (the instance was stored), counts as delivered.
"""

from __future__ import annotations

from enum import IntEnum

from rgcds.exceptions import PermanentExportError, TransientExportError


class StoreStatus(IntEnum):
    """C-STORE and C-ECHO response status values used by rgcds."""

    SUCCESS = 0x0000
    """The instance is on disk, fsynced and recorded."""

    PROCESSING_FAILURE = 0x0110
    """An unexpected error (e.g. the job store could not be written)."""

    DUPLICATE_SOP_INSTANCE = 0x0111
    """The SOP Instance UID was already received and ``duplicate_policy`` is ``reject``."""

    SOP_CLASS_NOT_SUPPORTED = 0x0122
    """The SOP class is not one the listener accepts."""

    OUT_OF_RESOURCES = 0xA700
    """Free disk space is below ``storage.min_free_bytes`` or the disk is full."""

    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    """The dataset's UIDs contradict the command or required identifiers are missing."""

    CANNOT_UNDERSTAND = 0xC000
    """The dataset cannot be decoded."""

    @property
    def is_success(self) -> bool:
        """Whether the status means the instance was accepted."""
        return self == StoreStatus.SUCCESS


class StoreWarning(IntEnum):
    """C-STORE warning statuses: the instance was stored (PS3.4 B.2.3, PS3.7 C.4)."""

    ATTRIBUTE_LIST_ERROR = 0x0107
    """PS3.7 C.4.2: some attributes were not recognised or not supported."""

    ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116
    """PS3.7 C.4.3: some attribute values were out of range."""

    COERCION_OF_DATA_ELEMENTS = 0xB000
    """PS3.4 B.2.3: some data elements were coerced."""

    ELEMENT_DISCARDED = 0xB006
    """PS3.4 B.2.3: some data elements were discarded."""

    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xB007
    """PS3.4 B.2.3: the data set does not match the SOP class, stored anyway."""


STORE_WARNING_STATUSES = frozenset(int(w) for w in StoreWarning)
"""The warning statuses that count as success-with-warning for C-STORE."""

_TRANSIENT_STATUSES = frozenset({0x0110, 0x0213, 0xFE00})


def is_store_success(status: int) -> bool:
    """Whether a C-STORE response status means the instance was stored.

    ``0x0000`` and the warnings in :data:`STORE_WARNING_STATUSES`; every other value
    (other 0xBxxx codes included: they belong to other services) is a failure.
    """
    return status == StoreStatus.SUCCESS or status in STORE_WARNING_STATUSES


def classify_store_status(
    status: int,
) -> type[TransientExportError] | type[PermanentExportError] | None:
    """Map a C-STORE response status to ``None`` (delivered) or the error class.

    Parameters
    ----------
    status
        The DIMSE status value.

    Returns
    -------
    None, TransientExportError or PermanentExportError
        ``None`` when :func:`is_store_success`; transient for 0xA7xx, 0x0110, 0x0213,
        0xFE00; permanent for everything else (0x0122, 0x0124, 0xA9xx, 0xCxxx, unknown
        codes).
    """
    if is_store_success(status):
        return None
    if (status & 0xFF00) == 0xA700 or status in _TRANSIENT_STATUSES:
        return TransientExportError
    return PermanentExportError


def store_status_reason(status: int) -> str:
    """``C-STORE status 0xNNNN (meaning)`` for logs and outbox errors (no PHI)."""
    names = {
        0x0110: "processing failure",
        0x0122: "SOP class not supported",
        0x0124: "not authorised",
        0x0213: "resource limitation",
        0xFE00: "cancelled",
    }
    if (status & 0xFF00) == 0xA700:
        name = "out of resources"
    elif (status & 0xFF00) == 0xA900:
        name = "dataset does not match SOP class"
    elif (status & 0xF000) == 0xC000:
        name = "cannot understand"
    else:
        name = names.get(status, "failure")
    return f"C-STORE status 0x{status:04X} ({name})"


__all__ = [
    "STORE_WARNING_STATUSES",
    "StoreStatus",
    "StoreWarning",
    "classify_store_status",
    "is_store_success",
    "store_status_reason",
]
