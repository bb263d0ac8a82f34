"""The last-resort report: a Basic Text SR built with pydicom alone.

When the analysis failed *and* the regular writers (highdicom SR, PDF) failed too, or the
failure happened where the regular report cannot be built at all (the flow itself crashed),
the radiologist must still find a word in the study: "automated analysis failed, read the
study without automated results". This module writes that word with nothing but pydicom and
the study's own header, so it cannot depend on the part that failed.

The object is a Basic Text SR (PS3.3 A.35.1): one CONTAINER "Imaging Measurement Report"
(126000, DCM) holding TEXT items, completion PARTIAL, verification UNVERIFIED, series
description "rgcds not analysed - research use only".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_ROOT_UID, UID, ExplicitVRLittleEndian, generate_uid

from rgcds import __version__

#: Basic Text SR Storage.
BASIC_TEXT_SR = UID("1.2.840.10008.5.1.4.1.1.88.11")
SERIES_DESCRIPTION = "rgcds not analysed - research use only"
SERIES_NUMBER = 9909

# Patient / study attributes copied verbatim from the source (type 2 ones written empty).
_COPIED = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName",
)
_TYPE2 = {
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
}


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _text(concept: Dataset, value: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = DicomSequence([concept])
    item.TextValue = value[:10240]
    return item


def fallback_report(
    source: Dataset,
    reason: str,
    notes: Sequence[str] = (),
    when: datetime | None = None,
    key: str = "",
) -> Dataset:
    """The Basic Text SR of a study whose automated analysis failed.

    Parameters
    ----------
    source
        A header of one instance of the study (patient and study attributes are copied).
    reason
        What failed, in words for a radiologist.
    notes
        Further sentences (kept short).
    when
        Content date/time; now (UTC) by default.
    key
        Extra entropy for the UIDs (e.g. the job id), so a re-run replaces the same object.
    """
    when = when or datetime.now(UTC).replace(microsecond=0)
    study_uid = str(source.StudyInstanceUID)
    sources = ["rgcds-fallback-v1", study_uid, key]
    series_uid = generate_uid(prefix=PYDICOM_ROOT_UID, entropy_srcs=[*sources, "series"])
    sop_uid = generate_uid(prefix=PYDICOM_ROOT_UID, entropy_srcs=[*sources, "instance"])

    ds = Dataset()
    for keyword in _COPIED:
        if keyword in source and source[keyword].value not in (None, ""):
            setattr(ds, keyword, source[keyword].value)
        elif keyword in _TYPE2:
            setattr(ds, keyword, "")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "SR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence([])
    ds.Manufacturer = "rgcds"
    ds.ManufacturerModelName = "rgcds"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    ds.ContentDate, ds.ContentTime = date, time
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.CompletionFlag = "PARTIAL"
    ds.VerificationFlag = "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = DicomSequence([])
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = DicomSequence(
        [_code("126000", "DCM", "Imaging Measurement Report")]
    )
    finding = _code("121071", "DCM", "Finding")
    comment = _code("121106", "DCM", "Comment")
    items = [
        _text(finding, "Automated analysis not available for this study. Read the study "
                       "without automated results."),
        _text(comment, reason),
        *(_text(comment, n) for n in notes),
        _text(comment, "rgcds " + __version__ + ". Research use only; not for diagnosis."),
    ]
    ds.ContentSequence = DicomSequence(items)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def write_fallback_report(
    source_path: Path,
    out_dir: Path,
    reason: str,
    notes: Sequence[str] = (),
    key: str = "",
) -> tuple[str, Path]:
    """Write :func:`fallback_report` for the study of ``source_path`` into ``out_dir``.

    Returns
    -------
    tuple[str, pathlib.Path]
        ``(SOP Instance UID, path)``, as the outbox takes it.
    """
    source = pydicom.dcmread(source_path, stop_before_pixels=True)
    ds = fallback_report(source, reason, notes, key=key)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{ds.SOPInstanceUID}.dcm"
    tmp = path.with_suffix(".tmp")
    ds.save_as(tmp, enforce_file_format=True)
    tmp.replace(path)
    return str(ds.SOPInstanceUID), path


__all__ = ["BASIC_TEXT_SR", "fallback_report", "write_fallback_report"]
