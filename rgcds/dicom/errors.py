"""Errors of the DICOM layer that a storage sink raises and the SCP maps to statuses."""

from __future__ import annotations

from rgcds.exceptions import DicomInputError, StorageError


class DatasetMismatchError(DicomInputError):
    """The dataset's identifiers contradict the C-STORE command or are missing or invalid."""


class DuplicateInstanceError(StorageError):
    """The SOP instance was received before and ``duplicate_policy`` is ``reject``."""


class UidCollisionError(DuplicateInstanceError):
    """The SOP Instance UID was received before in another study (``replace`` keeps that one)."""


__all__ = ["DatasetMismatchError", "DuplicateInstanceError", "UidCollisionError"]
