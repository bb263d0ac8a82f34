"""The rgcds error hierarchy.

Every error rgcds raises on purpose derives from :class:`RgcdsError`. Where the meaning
matches a built-in exception the class inherits both, so callers may catch either.
Messages are full sentences that say what was wrong and what to do about it.
"""

from __future__ import annotations


class RgcdsError(Exception):
    """Base class of all errors raised by rgcds."""


class ConfigError(RgcdsError, ValueError):
    """The configuration file or an ``RGCDS_*`` variable is missing, malformed or invalid."""


class PhiLeakError(RgcdsError, ValueError):
    """A log event carried protected health information and was refused."""


class InvalidUIDError(RgcdsError, ValueError):
    """A DICOM UID is not valid and must not be used (for example in a path)."""


class StorageError(RgcdsError, OSError):
    """The spool or the job store could not be written or read."""


class OutOfResourcesError(StorageError):
    """Free disk space is below the configured watermark."""


class DicomInputError(RgcdsError, ValueError):
    """A DICOM object or series cannot be used as input (malformed, missing, inconsistent)."""


class GeometryError(DicomInputError):
    """A series' geometry cannot be turned into one regular 3D volume."""


class MissingSequenceError(DicomInputError):
    """A study lacks a sequence the analysis requires (for example T1c)."""


class ModelError(RgcdsError):
    """A model card, its weights or its runtime is invalid or unavailable."""


class SegmentationQualityError(ModelError):
    """An automatic segmentation failed quality control: reported with the reason, not measured."""

    stage = "qc"


class ExportError(RgcdsError):
    """Results could not be delivered to a destination."""


class TransientExportError(ExportError):
    """Delivery failed for a reason that may pass (peer down, timeout): retry later."""


class PermanentExportError(ExportError):
    """Delivery failed for a reason that will not pass by retrying (rejected, refused)."""


__all__ = [
    "ConfigError",
    "DicomInputError",
    "ExportError",
    "GeometryError",
    "InvalidUIDError",
    "MissingSequenceError",
    "ModelError",
    "OutOfResourcesError",
    "PermanentExportError",
    "PhiLeakError",
    "RgcdsError",
    "SegmentationQualityError",
    "StorageError",
    "TransientExportError",
]
