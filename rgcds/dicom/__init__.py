"""DICOM networking: the storage SCP, SCU helpers, TLS contexts, UID and path safety."""

from __future__ import annotations

from rgcds.dicom.errors import DatasetMismatchError, DuplicateInstanceError
from rgcds.dicom.parse import InstanceMeta, read_instance_meta
from rgcds.dicom.scp import (
    REASON_CALLED_AE_NOT_RECOGNISED,
    REASON_CALLING_AE_NOT_RECOGNISED,
    InstanceSink,
    StorageSCP,
)
from rgcds.dicom.scu import Peer, StoreResult, associate, echo, store_files
from rgcds.dicom.sop_classes import (
    SELF_CONTAINED_SOP_CLASSES,
    STORAGE_SOP_CLASSES,
    TRANSFER_SYNTAXES,
    VERIFICATION_SOP_CLASS,
)
from rgcds.dicom.status import StoreStatus
from rgcds.dicom.tls import client_ssl_context, server_ssl_context
from rgcds.dicom.uids import UID_MAX_LENGTH, UID_PATTERN, is_valid_uid, uid_path, validate_uid

__all__ = [
    "REASON_CALLED_AE_NOT_RECOGNISED",
    "REASON_CALLING_AE_NOT_RECOGNISED",
    "SELF_CONTAINED_SOP_CLASSES",
    "STORAGE_SOP_CLASSES",
    "TRANSFER_SYNTAXES",
    "UID_MAX_LENGTH",
    "UID_PATTERN",
    "VERIFICATION_SOP_CLASS",
    "DatasetMismatchError",
    "DuplicateInstanceError",
    "InstanceMeta",
    "InstanceSink",
    "Peer",
    "StorageSCP",
    "StoreResult",
    "StoreStatus",
    "associate",
    "client_ssl_context",
    "echo",
    "is_valid_uid",
    "read_instance_meta",
    "server_ssl_context",
    "store_files",
    "uid_path",
    "validate_uid",
]
