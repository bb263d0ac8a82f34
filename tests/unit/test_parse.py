"""The listener's bounded header parse agrees with the full ``dcmread`` path (issue 23).

``read_instance_meta(data, transfer_syntax=...)`` (what the listener calls) skips the file
meta by its group length, stops after (0028,0008) and decodes plain identifying values
itself; ``read_instance_meta(data)`` (no transfer syntax) goes through pydicom's
``dcmread``. On every data set here, well formed or not, both must give the same record or
the same error. The data sets are encoded byte by byte, so a value can be anything a
sender might put on the wire.
"""

from __future__ import annotations

import random
import struct

import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from rgcds.dicom.parse import InstanceMeta, _read_header, read_instance_meta

pytestmark = pytest.mark.filterwarnings("ignore:(Invalid value|The PN|The value):UserWarning")

MR = "1.2.840.10008.5.1.4.1.1.4"
SOP = "1.2.826.0.1.3680043.8.498.1001"
SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
            "1.2.840.10008.1.2.4.90"]  # JPEG 2000: the data set is explicit little endian

Element = tuple[int, str, bytes]


def _base() -> list[Element]:
    return [
        (0x00080005, "CS", b"ISO_IR 100"),
        (0x00080016, "UI", MR.encode() + b"\x00"),
        (0x00080018, "UI", SOP.encode()),
        (0x00080050, "SH", b"ACC-77"),
        (0x00080060, "CS", b"MR"),
        (0x00090010, "LO", b"ACME PRIVATE"),
        (0x00091001, "OB", b"\x01\x02" * 40),
        (0x00100010, "PN", b"DOE^JANE"),
        (0x00100020, "LO", b"PID-123 "),
        (0x0020000D, "UI", b"1.2.826.0.1.3680043.8.498.1"),
        (0x0020000E, "UI", b"1.2.826.0.1.3680043.8.498.2\x00"),
        (0x00200012, "IS", b"3 "),
        (0x00200013, "IS", b" 12 "),
        (0x00201002, "IS", b"176 "),
        (0x00280008, "IS", b"1 "),
        (0x00290010, "LO", b"SIEMENS CSA HEADER"),
        (0x00291010, "OB", b"\x00" * 5000),
        (0x7FE00010, "OW", b"\x00\x01" * 64),
    ]


def _element(tag: int, vr: str, value: bytes, *, implicit: bool, little: bool) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB") else b" "
    end = "<" if little else ">"
    head = struct.pack(end + "HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack(end + "I", len(value)) + value
    if vr in ("OB", "OW", "SQ", "UN", "UT"):
        return head + vr.encode() + b"\x00\x00" + struct.pack(end + "I", len(value)) + value
    return head + vr.encode() + struct.pack(end + "H", len(value)) + value


def _sequence(tag: int, items: list[bytes], *, implicit: bool, little: bool) -> bytes:
    """An SQ of undefined length whose items are of undefined length."""
    end = "<" if little else ">"
    head = struct.pack(end + "HH", tag >> 16, tag & 0xFFFF)
    head += struct.pack(end + "I", 0xFFFFFFFF) if implicit else b"SQ\x00\x00" + struct.pack(
        end + "I", 0xFFFFFFFF)
    body = b"".join(struct.pack(end + "HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + item
                    + struct.pack(end + "HHI", 0xFFFE, 0xE00D, 0) for item in items)
    return head + body + struct.pack(end + "HHI", 0xFFFE, 0xE0DD, 0)


def _file(elements: list[Element], syntax: str, *, extra: bytes = b"") -> bytes:
    implicit = syntax == ImplicitVRLittleEndian
    little = syntax != ExplicitVRBigEndian
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR
    meta.MediaStorageSOPInstanceUID = SOP
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.9"
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_file_meta_info(fp, meta, enforce_standard=True)
    body = b"".join(_element(t, vr, v, implicit=implicit, little=little)
                    for t, vr, v in elements if t < 0x00081110)
    body += extra
    body += b"".join(_element(t, vr, v, implicit=implicit, little=little)
                     for t, vr, v in elements if t >= 0x00081110)
    return b"\x00" * 128 + b"DICM" + fp.getvalue() + body


def _outcome(data: bytes, syntax: str | None) -> InstanceMeta | tuple[str, str]:
    try:
        return read_instance_meta(data, MR, SOP, transfer_syntax=syntax)
    except Exception as exc:  # the comparison is of the type and the message
        return type(exc).__name__, str(exc)


def _agree(data: bytes, syntax: str) -> InstanceMeta | tuple[str, str]:
    fast, full = _outcome(data, syntax), _outcome(data, None)
    assert fast == full
    return fast


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_plain_instance_agrees_and_reads_every_identifier(syntax: str) -> None:
    data = _file(_base(), syntax)
    assert _read_header(data, syntax) is not None  # the bounded parse, not the fallback
    meta = _agree(data, syntax)
    assert meta == InstanceMeta(
        study_uid="1.2.826.0.1.3680043.8.498.1", series_uid="1.2.826.0.1.3680043.8.498.2",
        sop_instance_uid=SOP, sop_class_uid=MR, transfer_syntax_uid=syntax, modality="MR",
        instance_number=12, images_in_acquisition=176, number_of_frames=1)


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_sequence_before_the_identifiers_is_skipped(syntax: str) -> None:
    implicit, little = syntax == ImplicitVRLittleEndian, syntax != ExplicitVRBigEndian
    item = _element(0x00081150, "UI", MR.encode(), implicit=implicit, little=little)
    item += _element(0x00081155, "UI", b"1.2.3.4", implicit=implicit, little=little)
    seq = _sequence(0x00081110, [item, item], implicit=implicit, little=little)
    meta = _agree(_file(_base(), syntax, extra=seq), syntax)
    assert isinstance(meta, InstanceMeta) and meta.instance_number == 12


VARIANTS: dict[int, list[bytes]] = {
    0x0020000D: [b"1.2.3 ", b" 1.2.3", b"1.2.03", b"1.2.3\\1.2.4", b"1..2", b"", b"9" * 70,
                 b"1.2.\xe93", b"1.2.3\x00\x00"],
    0x00080016: [MR.encode() + b" ", b"1.2.3", b""],
    0x00080018: [SOP.encode() + b"\x00", b"1.2.3", SOP.encode() + b" "],
    0x00080060: [b"mr", b"MR\\CT", b"", b" PT ", b"M R", b"OT\x00"],
    0x00200013: [b"+12", b"-3", b"1.0", b"abc", b"", b"12\\13", b"99999999999999"],
    0x00201002: [b"0", b"007", b" "],
    0x00280008: [b"2\\3", b"x"],
    0x00100010: [b"O'BRIEN^J\xe9", b"\xff\xfe", b"A" * 300],
}


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_every_odd_value_gives_the_same_record_or_the_same_error(syntax: str) -> None:
    rng = random.Random(23)
    for _ in range(150):
        changed = {tag: rng.choice(values) for tag, values in VARIANTS.items()
                   if rng.random() < 0.4}
        elements = [(t, vr, changed.get(t, v)) for t, vr, v in _base()]
        _agree(_file(elements, syntax), syntax)


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_missing_and_misordered_identifiers_agree(syntax: str) -> None:
    base = _base()
    for drop in (0x0020000D, 0x0020000E, 0x00080018, 0x00080016, 0x00280008):
        _agree(_file([e for e in base if e[0] != drop], syntax), syntax)
    # A study UID after the stop tag: the bounded parse misses it and defers to dcmread.
    study = next(e for e in base if e[0] == 0x0020000D)
    late = [e for e in base if e[0] != 0x0020000D]
    late.insert(late.index(next(e for e in late if e[0] == 0x00290010)) + 1, study)
    meta = _agree(_file(late, syntax), syntax)
    assert isinstance(meta, InstanceMeta) and meta.study_uid == study[2].decode()


def test_a_file_without_the_group_length_takes_the_full_path() -> None:
    data = bytearray(_file(_base(), ExplicitVRLittleEndian))
    data[128:132] = b"DICX"
    _agree(bytes(data), ExplicitVRLittleEndian)
    _agree(_file(_base(), ExplicitVRLittleEndian)[:600], ExplicitVRLittleEndian)
