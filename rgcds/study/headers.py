"""The header evidence of a series: :class:`SeriesInfo` and the helpers that read it.

:func:`series_info_from_dataset` builds a :class:`SeriesInfo` from one representative header
(top level, or the functional groups of an Enhanced instance) and the series' instances;
:func:`rgcds.study.index.index_study` calls it for every series it finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom


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


__all__ = [
    "InstanceRef",
    "RadiopharmaceuticalInfo",
    "SeriesInfo",
    "series_info_from_dataset",
]
