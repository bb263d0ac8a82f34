"""DIMSE status codes that the storage SCP returns (PS3.4 Annex B, PS3.7 Annex C)."""

from __future__ import annotations

from enum import IntEnum


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


__all__ = ["StoreStatus"]
