"""Read the few identifying tags of a received instance from its encoded bytes.

The hot path never decodes pixel data: :func:`read_instance_meta` parses the encoded file
with ``stop_before_pixels`` and ``specific_tags`` and returns a small frozen record. A
Deflated Explicit VR Little Endian data set is inflated as a stream under a budget (the
whole data set at most ``max_inflated`` bytes, of which only the first
:data:`HEADER_BUDGET` are kept for parsing), never with pydicom's one-shot
``zlib.decompress``, so a deflate bomb costs bounded memory.

The PHI attributes are read only to register them with
:func:`rgcds.logging.remember_phi` so that no log line can contain them; they are never
returned or stored.
"""

from __future__ import annotations

import re
import struct
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset, read_preamble
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

from rgcds.dicom.errors import DatasetMismatchError
from rgcds.dicom.uids import validate_uid
from rgcds.exceptions import DicomInputError
from rgcds.logging import PHI_KEYWORDS, remember_phi, remember_phi_values

_PHI = [k for k in PHI_KEYWORDS if not k.endswith("Sequence")]
_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "InstanceNumber",
    "ImagesInAcquisition",
    "NumberOfFrames",
    "AcquisitionNumber",
    *_PHI,
]
_TAG_VALUES = [
    t for t in (tag_for_keyword(k) for k in ["SpecificCharacterSet", *_TAGS]) if t is not None
]


HEADER_BUDGET = 16 << 20
"""Inflated bytes of a deflated data set kept for parsing its identifying tags."""

_CHUNK = 1 << 20
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_LAST_TAG = max(_TAG_VALUES)
"""The highest tag read: the header parse stops at the first element past it."""
_SPECIFIC: list[BaseTag | int] = [BaseTag(t) for t in _TAG_VALUES]
_KEY_TAGS = [(k, BaseTag(tag_for_keyword(k) or 0)) for k in _TAGS[:9]]
"""The identifying keywords and their tags (looked up by tag: a keyword costs a search)."""
_PHI_TAGS = [BaseTag(tag_for_keyword(k) or 0) for k in PHI_KEYWORDS]
_META_START = 128 + 4  # preamble, b"DICM"


def _inflate_bounded(deflated: memoryview, max_inflated: int) -> bytes:
    """Inflate a raw deflate stream, keeping :data:`HEADER_BUDGET` bytes.

    Raises
    ------
    DicomInputError
        If the inflated data set would exceed ``max_inflated`` bytes, or is not deflate.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    head = bytearray()
    total = 0
    try:
        for start in range(0, len(deflated), _CHUNK):
            chunk: bytes | memoryview = deflated[start:start + _CHUNK]
            while chunk:
                out = inflater.decompress(chunk, _CHUNK)
                total += len(out)
                if total > max_inflated:
                    raise DicomInputError(
                        "The deflated data set inflates to more than "
                        f"listener.max_instance_size ({max_inflated} bytes)."
                    )
                if len(head) < HEADER_BUDGET:
                    head += out[:HEADER_BUDGET - len(head)]
                chunk = inflater.unconsumed_tail
    except zlib.error:
        raise DicomInputError("The deflated data set is not a valid deflate stream.") from None
    return bytes(head)


def _read_deflated(encoded: bytes, max_inflated: int) -> Dataset | None:
    """The identifying tags of a deflated instance, or ``None`` if it is not deflated."""
    from pydicom.filereader import _read_file_meta_info  # no public form for a file object

    fp = BytesIO(encoded)
    read_preamble(fp, False)
    file_meta = _read_file_meta_info(fp)
    if file_meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return None
    head = _inflate_bounded(memoryview(encoded)[fp.tell():], max_inflated)

    def at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
        return int(tag) in _PIXEL_TAGS

    ds = read_dataset(BytesIO(head), is_implicit_VR=False, is_little_endian=True,
                      stop_when=at_pixels, specific_tags=[BaseTag(t) for t in _TAG_VALUES])
    ds.file_meta = file_meta
    return ds


_UI = re.compile(rb"([0-9.]{1,64})\x00?")
_CS = re.compile(rb" *([A-Z0-9_]{1,16}) *")
_IS = re.compile(rb" *([0-9]{1,9}) *")
_PLAIN = {
    "SOPClassUID": _UI, "SOPInstanceUID": _UI, "StudyInstanceUID": _UI,
    "SeriesInstanceUID": _UI, "Modality": _CS, "InstanceNumber": _IS,
    "ImagesInAcquisition": _IS, "NumberOfFrames": _IS, "AcquisitionNumber": _IS,
}
"""The common, unambiguous encodings of the identifying values (by keyword: an implicit VR
data set has no VR to go by), decoded without pydicom."""


def _value(ds: Dataset, keyword: str, tag: BaseTag) -> Any:
    """The value of one identifying element: the plain common case decoded directly.

    Converting a raw element through pydicom (hooks, validation, ``MultiValue``) costs
    more than parsing the header. A UID that is only digits and dots, a code string of
    upper-case letters and digits and an unsigned integer string are decoded here; any
    other value is converted by pydicom, whose result and warnings stay the reference.
    """
    elem = ds.get_item(tag)
    if elem is None:
        return None
    raw = elem.value
    pattern = _PLAIN[keyword]
    if isinstance(raw, bytes) and (m := pattern.fullmatch(raw)):
        text = m.group(1).decode("ascii")
        return int(text) if pattern is _IS else text
    return ds[tag].value


def _past_last(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) > _LAST_TAG


def _read_header(encoded: bytes, transfer_syntax: str) -> Dataset | None:
    """The identifying tags read straight from the data set, or ``None`` to use dcmread.

    The bounded header parse of the hot path: the file meta group (which the listener
    built itself for the presentation context's ``transfer_syntax``) is skipped by its
    group length, and the data set is read only up to :data:`_LAST_TAG`, so a scanner's
    private groups and the pixel data are never walked. Anything unexpected (no
    ``DICM``, no group length, a parse error, a required UID not found before the stop)
    returns ``None`` and the caller falls back to the full ``dcmread`` path, whose
    behaviour and errors are the reference.
    """
    if transfer_syntax == ImplicitVRLittleEndian:
        implicit, little = True, True
    elif transfer_syntax == ExplicitVRBigEndian:
        implicit, little = False, False
    elif transfer_syntax == DeflatedExplicitVRLittleEndian:
        return None
    else:  # Explicit VR Little Endian and every encapsulated (compressed) syntax
        implicit, little = False, True
    if encoded[128:132] != b"DICM":
        return None
    if encoded[_META_START:_META_START + 6] != b"\x02\x00\x00\x00UL":
        return None  # no (0002,0000) UL group length first
    (length,) = struct.unpack_from("<I", encoded, _META_START + 8)
    start = _META_START + 12 + length
    if start > len(encoded):
        return None
    try:
        fp = BytesIO(encoded)
        fp.seek(start)
        ds = read_dataset(fp, is_implicit_VR=implicit, is_little_endian=little,
                          stop_when=_past_last, specific_tags=_SPECIFIC)
    except Exception:
        return None
    if any(tag not in ds for _, tag in _KEY_TAGS[:4]):
        return None  # out-of-order or missing: let dcmread find (or refuse) it
    return ds


@dataclass(frozen=True, slots=True)
class InstanceMeta:
    """What the job store keeps about one received instance: UIDs and counts, never PHI.

    Attributes
    ----------
    study_uid, series_uid, sop_instance_uid, sop_class_uid
        Validated UIDs.
    transfer_syntax_uid
        The transfer syntax the instance was received (and stored) in.
    modality
        The Modality value, or ``""``.
    instance_number
        InstanceNumber, if present and an integer.
    images_in_acquisition
        ImagesInAcquisition, if present.
    number_of_frames
        NumberOfFrames, if present.
    """

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str = ""
    modality: str = ""
    instance_number: int | None = None
    images_in_acquisition: int | None = None
    number_of_frames: int | None = None


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _remember_raw_phi(ds: Dataset) -> None:
    """Register PHI values from the still-undecoded elements.

    pydicom logs invalid values (e.g. an over-long PatientName) while it converts them, so
    the raw bytes are registered with the log scrubber first.
    """
    values: list[str] = []
    for keyword in _PHI:
        try:
            elem = ds.get_item(keyword)
        except Exception:  # noqa: S112 - best effort; remember_phi() follows
            continue
        raw = getattr(elem, "value", None)
        if not isinstance(raw, bytes | bytearray) or not raw:
            continue
        for encoding in ("utf-8", "latin-1"):
            text = bytes(raw).decode(encoding, errors="ignore").strip(" \x00")
            values.append(text)
            values += [p for p in re.split(r"[\^=\\]", text) if p.strip()]
    remember_phi_values(values)


_PHI_SEEN: OrderedDict[tuple[bytes | None, ...], float] = OrderedDict()
_PHI_SEEN_LOCK = threading.Lock()
_PHI_SEEN_CAPACITY = 256
_PHI_SEEN_SECONDS = 300.0
"""Register a patient's PHI again after this long (the scrubber's own set is bounded)."""


def _phi_key(ds: Dataset) -> tuple[bytes | None, ...] | None:
    """The raw bytes of every PHI element (``None`` if one is already decoded)."""
    key: list[bytes | None] = []
    for tag in _PHI_TAGS:
        try:
            elem = ds.get_item(tag)
        except Exception:
            return None
        if elem is None:
            key.append(None)
            continue
        raw = getattr(elem, "value", None)
        if raw is None:
            key.append(b"")
        elif isinstance(raw, bytes | bytearray):
            key.append(bytes(raw))
        else:
            return None
    return tuple(key)


def _remember_once(ds: Dataset) -> None:
    """Register the PHI of ``ds`` with the log scrubber unless these exact bytes were.

    The instances of a study carry the same PHI; registering it costs more than parsing
    the header, so the raw values of the last few hundred patients are kept for
    :data:`_PHI_SEEN_SECONDS` (far fewer than the scrubber's own bounded set holds, so a
    value skipped here is still registered there).
    """
    key = _phi_key(ds)
    now = time.monotonic()
    if key is not None:
        with _PHI_SEEN_LOCK:
            seen = _PHI_SEEN.get(key)
            if seen is not None and now - seen < _PHI_SEEN_SECONDS:
                return
    _remember_raw_phi(ds)  # before any value conversion can log a PHI value
    remember_phi(ds)
    if key is not None:
        with _PHI_SEEN_LOCK:
            _PHI_SEEN[key] = now
            _PHI_SEEN.move_to_end(key)
            if len(_PHI_SEEN) > _PHI_SEEN_CAPACITY:
                _PHI_SEEN.popitem(last=False)


def read_instance_meta(
    encoded: bytes,
    expected_sop_class_uid: str | None = None,
    expected_sop_instance_uid: str | None = None,
    *,
    max_inflated: int = 2_147_483_648,
    transfer_syntax: str | None = None,
) -> InstanceMeta:
    """Parse the identifying tags from an encoded DICOM file (preamble and meta included).

    Parameters
    ----------
    encoded
        The DICOM file bytes, as from ``Event.encoded_dataset()``.
    expected_sop_class_uid, expected_sop_instance_uid
        The Affected SOP Class/Instance UIDs of the C-STORE request; when given, the
        dataset's own values must equal them.
    max_inflated
        The most bytes a deflated data set may inflate to (``listener.max_instance_size``).
    transfer_syntax
        The presentation context's transfer syntax, when known: a data set that is not
        deflated then skips the deflate check's extra file meta parse.

    Returns
    -------
    InstanceMeta
        The validated identifiers and counting tags.

    Raises
    ------
    DicomInputError
        If the bytes cannot be parsed as DICOM, or a deflated data set inflates beyond
        ``max_inflated``.
    InvalidUIDError
        If a required UID is missing or invalid.
    DatasetMismatchError
        If a UID contradicts the command.
    """
    try:
        ds = _read_header(encoded, transfer_syntax) if transfer_syntax else None
        syntax = transfer_syntax or ""
        if ds is None:
            if transfer_syntax is None or transfer_syntax == DeflatedExplicitVRLittleEndian:
                ds = _read_deflated(encoded, max_inflated)
            if ds is None:
                ds = dcmread(BytesIO(encoded), stop_before_pixels=True, specific_tags=_TAGS)
            syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
        _remember_once(ds)  # raw bytes first: before any value conversion can log them
        values = {k: _value(ds, k, tag) for k, tag in _KEY_TAGS}
    except DicomInputError:
        raise
    except Exception as exc:
        raise DicomInputError(f"The dataset cannot be decoded: {type(exc).__name__}.") from None
    # An invalid or missing UID is "cannot understand" (0xC000, docs/conformance.md).
    study = validate_uid(values["StudyInstanceUID"], "StudyInstanceUID")
    series = validate_uid(values["SeriesInstanceUID"], "SeriesInstanceUID")
    sop = validate_uid(values["SOPInstanceUID"], "SOPInstanceUID")
    sop_class = validate_uid(values["SOPClassUID"], "SOPClassUID")
    if expected_sop_class_uid is not None and sop_class != expected_sop_class_uid:
        raise DatasetMismatchError(
            "The dataset's SOPClassUID differs from the C-STORE Affected SOP Class UID."
        )
    if expected_sop_instance_uid is not None and sop != expected_sop_instance_uid:
        raise DatasetMismatchError(
            "The dataset's SOPInstanceUID differs from the C-STORE Affected SOP Instance UID."
        )
    return InstanceMeta(
        study_uid=study,
        series_uid=series,
        sop_instance_uid=sop,
        sop_class_uid=sop_class,
        transfer_syntax_uid=syntax,
        modality=str(values["Modality"] or ""),
        instance_number=_int_or_none(values["InstanceNumber"]),
        images_in_acquisition=_int_or_none(values["ImagesInAcquisition"]),
        number_of_frames=_int_or_none(values["NumberOfFrames"]),
    )


__all__ = ["InstanceMeta", "read_instance_meta"]
