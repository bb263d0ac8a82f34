"""A seeded mutation fuzzer over A-ASSOCIATE-RQ, P-DATA-TF and data set bytes (issue 21).

Each case opens one loopback connection to a running listener and sends mutated bytes:

``assoc``
    a mutated A-ASSOCIATE-RQ;
``pdata``
    a valid A-ASSOCIATE-RQ, then a mutated P-DATA-TF (a C-ECHO-RQ's);
``dataset``
    a valid association and C-STORE-RQ command, then the data set (with PHI markers) mutated
    and wrapped in a well-formed P-DATA-TF.

After every case the listener must answer a C-ECHO (raw PDUs, :func:`raw_echo`); the caller
checks memory and output. Used by ``tests/adversarial/test_fuzz.py`` (a few hundred cases)
and ``bench/fuzz.py`` (any number).
"""

from __future__ import annotations

import random
import socket
import struct
from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import A_ASSOCIATE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context

from tests.adversarial.conftest import echo_pdata, raw_echo

MR = "1.2.840.10008.5.1.4.1.1.4"
VERIFICATION = "1.2.840.10008.1.1"
PHI_MARKERS = ("ZZFUZZNAME", "ZZFUZZGIVEN", "ZZFUZZ4242", "ZZACC9191")
KINDS = ("assoc", "pdata", "dataset")
INTERESTING = [0x00, 0x01, 0x7F, 0x80, 0xFF]
INTERESTING_32 = [0, 1, 2, 6, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 262144, 262145, 65536]


def fuzz_rq(calling: str, called: str) -> bytes:
    prim = A_ASSOCIATE()
    prim.application_context_name = "1.2.840.10008.3.1.1.1"
    prim.calling_ae_title = calling
    prim.called_ae_title = called
    contexts = []
    for i, (uid, ts) in enumerate([(VERIFICATION, ImplicitVRLittleEndian),
                                   (MR, ExplicitVRLittleEndian)]):
        cx = build_context(uid, [ts])
        cx.context_id = 2 * i + 1
        contexts.append(cx)
    prim.presentation_context_definition_list = contexts
    ml = MaximumLengthNotification()
    ml.maximum_length_received = 16382
    ic = ImplementationClassUIDNotification()
    ic.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.3.0"
    prim.user_information = [ml, ic]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(prim)
    return bytes(pdu.encode())


def phi_dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MR
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = f"{PHI_MARKERS[0]}^{PHI_MARKERS[1]}"
    ds.PatientID = PHI_MARKERS[2]
    ds.AccessionNumber = PHI_MARKERS[3]
    ds.PatientBirthDate = "1917.03.17"  # invalid DA: pydicom warns with the value
    ds.Modality = "MR"
    ds.InstanceNumber = 1
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\x00\x01\x02\x03"
    return ds


def encode_dataset(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return bytes(fp.getvalue())


def store_pdatas(ds: Dataset, dataset_bytes: bytes, context_id: int = 3) -> list[bytes]:
    """The P-DATA-TF PDUs of a C-STORE-RQ (command first) carrying ``dataset_bytes``."""
    prim = C_STORE()
    prim.MessageID = 7
    prim.AffectedSOPClassUID = MR
    prim.AffectedSOPInstanceUID = ds.SOPInstanceUID
    prim.Priority = 0
    prim.DataSet = BytesIO(dataset_bytes)
    msg = C_STORE_RQ()
    msg.primitive_to_message(prim)
    out = []
    for p in msg.encode_msg(context_id, 16382):
        pdu = P_DATA_TF()
        pdu.from_primitive(p)
        out.append(bytes(pdu.encode()))
    return out


def mutate(data: bytes, rng: random.Random, *, keep_header: int = 0) -> bytes:
    """One to four random mutations of ``data`` (the first ``keep_header`` bytes kept)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if len(buf) <= keep_header:
            buf += bytes(rng.randrange(256) for _ in range(8))
        pos = rng.randrange(keep_header, len(buf))
        op = rng.randrange(8)
        if op == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos] = rng.choice(INTERESTING)
        elif op == 2 and pos + 4 <= len(buf):
            buf[pos:pos + 4] = struct.pack(">L", rng.choice(INTERESTING_32))
        elif op == 3 and pos + 4 <= len(buf):
            buf[pos:pos + 4] = struct.pack("<L", rng.choice(INTERESTING_32))
        elif op == 4:
            del buf[pos:pos + rng.randint(1, 32)]
        elif op == 5:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif op == 6:
            del buf[pos:]
        else:
            n = rng.randint(1, 64)
            buf[pos:pos] = buf[pos:pos + n] * rng.randint(1, 8)
    return bytes(buf)


def _pdata(context_id: int, control: int, payload: bytes) -> bytes:
    item = struct.pack(">LBB", len(payload) + 2, context_id, control) + payload
    return struct.pack(">BBL", 0x04, 0, len(item)) + item


def _drain(sock: socket.socket, timeout: float) -> None:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


@dataclass
class Fuzzer:
    """Runs cases against ``port``; counts what the listener did."""

    port: int
    calling: str
    called: str
    seed: int = 0
    read_timeout: float = 0.15
    cases: int = 0
    echo_failures: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.rq = fuzz_rq(self.calling, self.called)
        self.echo = echo_pdata()
        self.ds = phi_dataset()
        self.ds_bytes = encode_dataset(self.ds)

    def _open(self, rq: bytes) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5.0)
        s.sendall(rq)
        return s

    def _associated(self) -> socket.socket | None:
        s = self._open(self.rq)
        s.settimeout(5.0)
        try:
            head = s.recv(1)
            if head != b"\x02":
                s.close()
                return None
            s.settimeout(0.05)
            try:
                while s.recv(65536):
                    pass
            except TimeoutError:
                pass
        except OSError:
            s.close()
            return None
        return s

    def run_case(self, kind: str) -> None:
        rng = self.rng
        s: socket.socket | None
        try:
            if kind == "assoc":
                s = self._open(mutate(self.rq, rng))
            elif kind == "pdata":
                s = self._associated()
                if s is not None:
                    s.sendall(mutate(self.echo, rng))
            else:
                s = self._associated()
                if s is not None:
                    command, *_ = store_pdatas(self.ds, self.ds_bytes)
                    s.sendall(command)
                    s.sendall(_pdata(3, 0x02, mutate(self.ds_bytes, rng, keep_header=0)))
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                _drain(s, self.read_timeout)
                s.close()
        except OSError:
            pass  # the listener closed on us: fine, as long as it still answers
        self.cases += 1

    def check_echo(self) -> bool:
        try:
            ok = raw_echo(self.port, timeout=5.0)
        except OSError as exc:
            self.echo_failures.append((self.cases, type(exc).__name__))
            return False
        if not ok:
            self.echo_failures.append((self.cases, "no success status"))
        return ok

    def run(self, n: int) -> None:
        for i in range(n):
            self.run_case(KINDS[i % len(KINDS)])
            self.check_echo()


__all__ = ["KINDS", "PHI_MARKERS", "Fuzzer", "mutate"]
