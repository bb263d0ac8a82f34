"""Every receive limit is enforced before buffering (issue 21)."""

from __future__ import annotations

import socket
import struct
import zlib
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid
from pynetdicom import _config

from rgcds.dicom import store_files
from rgcds.dicom.parse import read_instance_meta
from rgcds.exceptions import DicomInputError, ExportError
from tests.adversarial.conftest import (
    StartDaemon,
    associate_rq,
    connect,
    echo_ok,
    peer,
    read_pdu,
    rss_bytes,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

MR = "1.2.840.10008.5.1.4.1.1.4"
MIB = 1 << 20


def _stream(sock: socket.socket, header: bytes, limit: int) -> int:
    """Send ``header`` then zeros until the peer stops us or ``limit`` bytes; bytes sent."""
    sent = 0
    chunk = b"\x00" * 65536
    sock.settimeout(5)
    try:
        sock.sendall(header)
        while sent < limit:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:  # reset, broken pipe, or a send the listener no longer reads
        pass
    return sent


def test_huge_associate_rq_aborts_before_buffering(start_daemon: StartDaemon) -> None:
    d = start_daemon()
    before = rss_bytes()
    with connect(d) as s:
        sent = _stream(s, b"\x01\x00\xff\xff\xff\xff", 64 * MIB)  # declares 4 GiB
        reply = read_pdu(s, 5.0)
    grown = rss_bytes() - before
    assert sent < 32 * MIB, "the listener kept reading a 4 GiB A-ASSOCIATE-RQ"
    assert reply is None or reply[0] == 0x07  # A-ABORT (or reset once it closed)
    assert grown < 32 * MIB, f"memory grew by {grown / MIB:.0f} MiB"
    assert echo_ok(d)


def test_p_data_above_negotiated_maximum_aborts(start_daemon: StartDaemon) -> None:
    d = start_daemon(max_pdu_size=262144)
    with connect(d) as s:
        s.sendall(associate_rq())
        ac = read_pdu(s)
        assert ac is not None and ac[0] == 0x02
        sent = _stream(s, b"\x04\x00" + struct.pack(">L", 3_000_000), 8 * MIB)
        reply = read_pdu(s, 5.0)
    assert sent < 8 * MIB
    assert reply is None or reply[0] == 0x07
    assert echo_ok(d)


def _mr(patient: str = "Limits^Test") -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MR
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = patient
    ds.PatientID = "LIM-1"
    ds.Modality = "MR"
    ds.InstanceNumber = 1
    return ds


def _file_bytes(ds: Dataset, ts: str, body: bytes) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = generate_uid()
    fp = DicomBytesIO()
    fp.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(fp, meta)
    return fp.getvalue() + body


def _explicit_body(ds: Dataset, pixel_bytes: int) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    from pydicom.filewriter import write_dataset

    write_dataset(fp, ds)
    fp.write(b"\xe0\x7f\x10\x00OB\x00\x00" + struct.pack("<L", pixel_bytes))
    return fp.getvalue() + b"\x00" * pixel_bytes


def deflate_bomb(inflated: int) -> bytes:
    """A Deflated Explicit VR Little Endian instance that inflates to ``inflated`` bytes."""
    ds = _mr()
    body = _explicit_body(ds, 0)[:-8]  # the header without the pixel element
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = comp.compress(body + b"\xe0\x7f\x10\x00OB\x00\x00" + struct.pack("<L", inflated))
    zeros = b"\x00" * MIB
    for _ in range(inflated // MIB):
        out += comp.compress(zeros)
    out += comp.flush()
    return _file_bytes(ds, DeflatedExplicitVRLittleEndian, out)


def test_deflate_bomb_is_bounded_in_parse() -> None:
    bomb = deflate_bomb(256 * MIB)
    assert len(bomb) < 2 * MIB
    before = rss_bytes()
    with pytest.raises(DicomInputError, match="max_instance_size"):
        read_instance_meta(bomb, max_inflated=32 * MIB)
    # Within budget the identifiers are read, keeping only the header in memory.
    meta = read_instance_meta(bomb, max_inflated=1 << 31)
    assert meta.transfer_syntax_uid == DeflatedExplicitVRLittleEndian
    grown = rss_bytes() - before
    assert grown < 64 * MIB, f"inflating grew memory by {grown / MIB:.0f} MiB"


def test_deflate_bomb_over_the_instance_limit_is_refused(
    start_daemon: StartDaemon, tmp_path: Path,
) -> None:
    d = start_daemon(max_instance_size=16 * MIB)
    path = tmp_path / "bomb.dcm"
    path.write_bytes(deflate_bomb(200 * MIB))
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        [result] = store_files(peer(d), [path])
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    assert result.status == 0xC000
    assert echo_ok(d)


def test_instance_above_max_instance_size_aborts(start_daemon: StartDaemon,
                                                 tmp_path: Path) -> None:
    d = start_daemon(max_instance_size=256 * 1024)
    ds = _mr()
    path = tmp_path / "big.dcm"
    path.write_bytes(_file_bytes(ds, ExplicitVRLittleEndian, _explicit_body(ds, 1 * MIB)))
    small = tmp_path / "small.dcm"
    ds2 = _mr()
    small.write_bytes(_file_bytes(ds2, ExplicitVRLittleEndian, _explicit_body(ds2, 1024)))
    try:
        results = store_files(peer(d), [path])
        assert all(not r.ok for r in results)
    except ExportError:
        pass  # aborted: the sender sees the association end
    assert wait_for(lambda: echo_ok(d), 5.0)
    assert [r.status for r in store_files(peer(d), [small])] == [0]
    assert not list((d.settings.storage.root / "incoming").iterdir())
