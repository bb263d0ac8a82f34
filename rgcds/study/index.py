"""Index DICOM files into studies and series, reading headers only.

The index is the only place besides :mod:`rgcds.study.convert` that opens DICOM files. It
keeps the header evidence the classifier needs in a :class:`SeriesInfo` (a frozen dataclass,
no pydicom objects) and the file of every instance, so that later stages never hold a
Dataset.
"""

from __future__ import annotations

import os
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import structlog
from pydicom.errors import InvalidDicomError

from rgcds.exceptions import DicomInputError
from rgcds.logging import remember_phi
from rgcds.study.integrity import truncation

logger = structlog.get_logger(__name__)


class NoDicomFilesError(DicomInputError):
    """No readable DICOM image instance was found where one was expected."""


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """One stored instance of a series.

    Attributes
    ----------
    path
        The file that holds the instance.
    sop_instance_uid, sop_class_uid
        SOP Instance UID (0008,0018) and SOP Class UID (0008,0016).
    instance_number
        Instance Number (0020,0013), or ``None``; used only to break ties, never to sort
        slices.
    number_of_frames
        Number of Frames (0028,0008); 1 for single-frame instances.
    """

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None = None
    number_of_frames: int = 1


@dataclass(frozen=True, slots=True)
class RadiopharmaceuticalInfo:
    """The PET tracer as coded in the Radiopharmaceutical Information Sequence (0054,0016)."""

    name: str = ""
    code_value: str = ""
    coding_scheme: str = ""
    code_meaning: str = ""
    radionuclide: str = ""


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """A series and the header evidence used to identify its sequence.

    Text attributes are empty strings when absent, numbers ``None``. Multi-valued
    attributes are upper-case tuples.
    """

    series_instance_uid: str
    study_instance_uid: str
    modality: str
    sop_class_uid: str
    instances: tuple[InstanceRef, ...]
    series_description: str = ""
    protocol_name: str = ""
    series_number: int | None = None
    manufacturer: str = ""
    image_type: tuple[str, ...] = ()
    scanning_sequence: tuple[str, ...] = ()
    sequence_variant: tuple[str, ...] = ()
    scan_options: tuple[str, ...] = ()
    mr_acquisition_type: str = ""
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    diffusion_b_value: float | None = None
    contrast_bolus_agent: str = ""
    slice_thickness: float | None = None
    series_time: str = ""
    acquisition_time: str = ""
    frame_of_reference_uid: str = ""
    radiopharmaceutical: RadiopharmaceuticalInfo | None = None
    units: str = ""

    @property
    def n_instances(self) -> int:
        """How many instances the series holds."""
        return len(self.instances)

    @property
    def n_frames(self) -> int:
        """How many frames (2D images) the series holds in all."""
        return sum(i.number_of_frames for i in self.instances)

    @property
    def is_3d(self) -> bool:
        """Whether MR Acquisition Type (0018,0023) says 3D."""
        return self.mr_acquisition_type.upper() == "3D"


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


# --- header helpers -----------------------------------------------------------------------


def _find(ds: Any, keyword: str) -> Any:
    """Return ``keyword`` from the top level or the shared functional groups (Enhanced)."""
    value = ds.get(keyword)
    if value not in (None, ""):
        return value
    for group_kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(group_kw)
        if not groups:
            continue
        for macro in groups[0]:
            if macro.VR != "SQ" or not macro.value:
                continue
            item = macro.value[0]
            if keyword in item and item.get(keyword) not in (None, ""):
                return item.get(keyword)
    return None


def _text(ds: Any, keyword: str) -> str:
    value = _find(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _upper_tuple(ds: Any, keyword: str) -> tuple[str, ...]:
    value = _find(ds, keyword)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip().upper() for v in value.split("\\") if v.strip())
    try:
        return tuple(str(v).strip().upper() for v in value if str(v).strip())
    except TypeError:
        return (str(value).strip().upper(),)


def _float(ds: Any, keyword: str) -> float | None:
    value = _find(ds, keyword)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, list | tuple | pydicom.multival.MultiValue):
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _int(ds: Any, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _radiopharmaceutical(ds: Any) -> RadiopharmaceuticalInfo | None:
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        return None
    item = seq[0]
    code_value = scheme = meaning = ""
    codes = item.get("RadiopharmaceuticalCodeSequence")
    if codes:
        code_value = str(codes[0].get("CodeValue", ""))
        scheme = str(codes[0].get("CodingSchemeDesignator", ""))
        meaning = str(codes[0].get("CodeMeaning", ""))
    nuclide = ""
    nuclides = item.get("RadionuclideCodeSequence")
    if nuclides:
        nuclide = str(nuclides[0].get("CodeMeaning", ""))
    return RadiopharmaceuticalInfo(
        name=str(item.get("Radiopharmaceutical", "")),
        code_value=code_value,
        coding_scheme=scheme,
        code_meaning=meaning,
        radionuclide=nuclide,
    )


def _contrast_agent(ds: Any) -> str:
    agent = _text(ds, "ContrastBolusAgent")
    if agent:
        return agent
    # Enhanced MR: Contrast/Bolus Usage Sequence in the functional groups.
    usage = ds.get("ContrastBolusAgentSequence")
    if usage:
        return str(usage[0].get("CodeMeaning", "contrast agent"))
    for group_kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(group_kw)
        if groups and "ContrastBolusUsageSequence" in groups[0]:
            for use in groups[0].ContrastBolusUsageSequence:
                if str(use.get("ContrastBolusAgentAdministered", "")).upper() == "YES":
                    return "administered"
    return ""


def _scanning_sequence(ds: Any) -> tuple[str, ...]:
    values = _upper_tuple(ds, "ScanningSequence")
    if values:
        return values
    # Enhanced MR: Echo Pulse Sequence + Inversion Recovery stand in for ScanningSequence.
    derived: list[str] = []
    echo = _text(ds, "EchoPulseSequence").upper()
    if echo in ("SPIN", "BOTH"):
        derived.append("SE")
    if echo in ("GRADIENT", "BOTH"):
        derived.append("GR")
    if _text(ds, "InversionRecovery").upper() == "YES":
        derived.append("IR")
    if _text(ds, "EchoPlanarPulseSequence").upper() == "YES":
        derived.append("EP")
    return tuple(derived)


def series_info_from_dataset(ds: Any, instances: Sequence[InstanceRef]) -> SeriesInfo:
    """Build a :class:`SeriesInfo` from a representative header and the series' instances.

    Parameters
    ----------
    ds
        A pydicom Dataset (read with ``stop_before_pixels``) of one instance of the series.
    instances
        Every instance of the series.

    Returns
    -------
    SeriesInfo
    """
    return SeriesInfo(
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        modality=str(ds.get("Modality", "")).upper(),
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        instances=tuple(instances),
        series_description=_text(ds, "SeriesDescription"),
        protocol_name=_text(ds, "ProtocolName"),
        series_number=_int(ds, "SeriesNumber"),
        manufacturer=_text(ds, "Manufacturer"),
        image_type=_upper_tuple(ds, "ImageType"),
        scanning_sequence=_scanning_sequence(ds),
        sequence_variant=_upper_tuple(ds, "SequenceVariant"),
        scan_options=_upper_tuple(ds, "ScanOptions"),
        mr_acquisition_type=_text(ds, "MRAcquisitionType").upper(),
        repetition_time=_float(ds, "RepetitionTime"),
        echo_time=_float(ds, "EchoTime") or _float(ds, "EffectiveEchoTime"),
        inversion_time=_float(ds, "InversionTime") or _float(ds, "InversionTimes"),
        diffusion_b_value=_float(ds, "DiffusionBValue"),
        contrast_bolus_agent=_contrast_agent(ds),
        slice_thickness=_float(ds, "SliceThickness"),
        series_time=_text(ds, "SeriesTime"),
        acquisition_time=_text(ds, "AcquisitionTime") or _text(ds, "AcquisitionDateTime"),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        radiopharmaceutical=_radiopharmaceutical(ds),
        units=_text(ds, "Units").upper(),
    )


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
