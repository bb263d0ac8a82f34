"""Index DICOM files into studies and series, reading headers only.

The index is the only place besides :mod:`rgcds.study.convert` that opens DICOM files. It
keeps the header evidence the classifier needs in a :class:`SeriesInfo` (a frozen dataclass,
no pydicom objects; :mod:`rgcds.study.headers` reads it) and the file of every instance, so
that later stages never hold a Dataset.
"""

from __future__ import annotations

import os
import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import structlog
from pydicom.errors import InvalidDicomError

from rgcds.exceptions import DicomInputError
from rgcds.logging import remember_phi
from rgcds.study.headers import (
    InstanceRef,
    RadiopharmaceuticalInfo,
    SeriesInfo,
    _int,
    series_info_from_dataset,
)
from rgcds.study.integrity import truncation

logger = structlog.get_logger(__name__)


class NoDicomFilesError(DicomInputError):
    """No readable DICOM image instance was found where one was expected."""


@dataclass(frozen=True, slots=True)
class DamagedFile:
    """A received file that is cut short (:func:`rgcds.study.integrity.truncation`).

    ``series_instance_uid`` is empty when the header itself was cut before it; the other
    series fields are then empty too.
    """

    path: Path
    reason: str
    series_instance_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    modality: str = ""


@dataclass(frozen=True, slots=True)
class StudyIndex:
    """All series found, with their study UIDs, in a stable order (study, series number).

    A series with a damaged (truncated) instance is not in ``series``: an incomplete series
    must not be analysed as if it were whole. ``damaged`` lists those files and
    :meth:`damage_notes` says so in the report's words.
    """

    series: tuple[SeriesInfo, ...]
    skipped_files: int = 0
    damaged: tuple[DamagedFile, ...] = ()

    def damage_notes(self) -> tuple[str, ...]:
        """One sentence per series left out for damaged files (and one for unknown series)."""
        by_series: dict[str, list[DamagedFile]] = defaultdict(list)
        for d in self.damaged:
            by_series[d.series_instance_uid].append(d)
        notes = []
        for uid, files in by_series.items():
            first = files[0]
            if not uid:
                notes.append(
                    f"{len(files)} received file(s) are cut short on disk before their series "
                    f"is named ({first.reason}), so their series may be missing from the "
                    "analysis; resend the study."
                )
                continue
            number = f" {first.series_number}" if first.series_number is not None else ""
            what = f" ({first.series_description})" if first.series_description else ""
            notes.append(
                f"{first.modality or 'The'} series{number}{what} was not used: {len(files)} "
                f"of its received instance(s) are cut short on disk ({first.reason}); resend "
                "the series."
            )
        return tuple(notes)

    @property
    def study_instance_uids(self) -> tuple[str, ...]:
        """The distinct Study Instance UIDs, in order of first appearance."""
        return tuple(dict.fromkeys(s.study_instance_uid for s in self.series))

    def get(self, series_instance_uid: str) -> SeriesInfo:
        """Return the series with this UID.

        Raises
        ------
        KeyError
            If the index has no such series.
        """
        for s in self.series:
            if s.series_instance_uid == series_instance_uid:
                return s
        raise KeyError(series_instance_uid)


def _iter_files(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(source, str | os.PathLike):
        root = Path(source)
        if root.is_file():
            return [root]
        if not root.is_dir():
            raise NoDicomFilesError(
                f"The path {root} is neither a file nor a directory; give the folder that "
                "holds the study's DICOM files."
            )
        return sorted(p for p in root.rglob("*") if p.is_file())
    files: list[Path] = []
    for item in source:
        files.extend(_iter_files(item))
    return files


def index_study(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
) -> StudyIndex:
    """Group the DICOM instances under ``source`` by series, reading headers only.

    Parameters
    ----------
    source
        A directory (searched recursively), one file, or an iterable of files and
        directories. Files that are not DICOM are skipped and counted.

    Returns
    -------
    StudyIndex
        The series ordered by study, series number and series time.

    Raises
    ------
    NoDicomFilesError
        If no DICOM instance was found.
    """
    headers: dict[str, Any] = {}
    members: dict[str, list[InstanceRef]] = defaultdict(list)
    seen: set[str] = set()
    skipped = 0
    damaged: list[DamagedFile] = []
    for path in _iter_files(source):
        try:
            with open(path, "rb") as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
                cut = truncation(fh, ds)
        except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, struct.error):
            skipped += 1
            continue
        remember_phi(ds)
        series_uid = str(ds.get("SeriesInstanceUID", ""))
        sop_uid = str(ds.get("SOPInstanceUID", ""))
        if cut is not None:
            damaged.append(DamagedFile(
                path=path, reason=cut, series_instance_uid=series_uid,
                series_number=_int(ds, "SeriesNumber"),
                series_description=str(ds.get("SeriesDescription", "")),
                modality=str(ds.get("Modality", "")),
            ))
            continue
        if not series_uid or not sop_uid:
            skipped += 1
            continue
        if sop_uid in seen:  # the same instance stored twice
            continue
        seen.add(sop_uid)
        headers.setdefault(series_uid, ds)
        members[series_uid].append(
            InstanceRef(
                path=path,
                sop_instance_uid=sop_uid,
                sop_class_uid=str(ds.get("SOPClassUID", "")),
                instance_number=_int(ds, "InstanceNumber"),
                number_of_frames=_int(ds, "NumberOfFrames") or 1,
            )
        )
    for d in damaged:  # an incomplete series is not analysed as if it were whole
        members.pop(d.series_instance_uid, None)
        headers.pop(d.series_instance_uid, None)
    if damaged:
        logger.warning("damaged files found", n_files=len(damaged),
                       n_series=len({d.series_instance_uid for d in damaged}))
    if not members:
        cut = f", {len(damaged)} cut short on disk" if damaged else ""
        raise NoDicomFilesError(
            f"No DICOM instance was found in the input ({skipped} files skipped as not DICOM"
            f"{cut}); check that the study was received completely."
        )
    series = [
        series_info_from_dataset(headers[uid], sorted(refs, key=_instance_key))
        for uid, refs in members.items()
    ]
    series.sort(
        key=lambda s: (
            s.study_instance_uid,
            s.series_number if s.series_number is not None else 1 << 30,
            s.series_time,
            s.series_instance_uid,
        )
    )
    logger.info(
        "study indexed",
        n_series=len(series),
        n_instances=sum(s.n_instances for s in series),
        skipped_files=skipped,
        study_uids=list(dict.fromkeys(s.study_instance_uid for s in series)),
    )
    return StudyIndex(series=tuple(series), skipped_files=skipped, damaged=tuple(damaged))


def _instance_key(ref: InstanceRef) -> tuple[int, str]:
    return (ref.instance_number if ref.instance_number is not None else 0, ref.sop_instance_uid)


__all__ = [
    "DamagedFile",
    "InstanceRef",
    "NoDicomFilesError",
    "RadiopharmaceuticalInfo",
    "SeriesInfo",
    "StudyIndex",
    "index_study",
    "series_info_from_dataset",
]
