"""Access control and identity details from issue 21: AE title padding, delivery AE, modes."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from rgcds.config import DestinationSettings, ListenerSettings, Settings
from rgcds.dicom import store_files
from rgcds.results.export import deliver_due, enqueue
from tests.adversarial.conftest import (
    AET,
    StartDaemon,
    associate_rq,
    connect,
    make_settings,
    peer,
    read_pdu,
)
from tests.integration.test_listener import mr_file
from tests.outbox import StoreOutbox

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("calling", "accepted"), [
    (b"SCANNER1", True),
    (b"  SCANNER1", True),  # leading spaces are insignificant (PS3.5)
    (b"SCANNER1\n", False),
    (b"\tSCANNER1", False),
    (b"SCANNER1\x00", False),
    (b"scanner1", False),
])
def test_calling_ae_compared_exactly_after_space_padding(
    start_daemon: StartDaemon, calling: bytes, accepted: bool,
) -> None:
    d = start_daemon()
    with connect(d) as s:
        s.sendall(associate_rq(calling))
        reply = read_pdu(s)
    assert reply is not None
    if accepted:
        assert reply[0] == 0x02  # A-ASSOCIATE-AC
    elif reply[0] == 0x03:  # A-ASSOCIATE-RJ: permanent, service user, calling AE
        assert reply[1][1:4] == b"\x01\x01\x03"
    else:  # a NUL is not even an AE title character: pynetdicom cannot decode the RQ
        assert reply[0] == 0x07 and calling.endswith(b"\x00")


def test_config_ae_titles_keep_control_characters_out() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        ListenerSettings(allowed_calling_aets=["SCANNER1\n"])
    with pytest.raises(ValueError, match="printable ASCII"):
        ListenerSettings(allowed_calling_aets=["\tSCANNER1"])
    assert ListenerSettings(allowed_calling_aets=[" SCANNER1 "]).allowed_calling_aets == [
        "SCANNER1"]


def test_deliveries_call_as_the_listener_ae_title(
    start_daemon: StartDaemon, tmp_path: Path,
) -> None:
    # The PACS knows rgcds as listener.ae_title (the documented configuration).
    pacs = start_daemon(make_settings(tmp_path / "pacs", allowed_calling_aets=["MYSITE"]))
    settings = Settings(
        listener=ListenerSettings(ae_title="MYSITE"),
        destinations=[
            DestinationSettings(name="pacs", ae_title=AET, host="127.0.0.1", port=pacs.port),
            DestinationSettings(name="other", ae_title=AET, host="127.0.0.1", port=pacs.port,
                                calling_ae_title="ELSEWHERE"),
        ],
    )
    assert [d.calling_ae_title for d in settings.destinations] == ["MYSITE", "ELSEWHERE"]
    outbox = StoreOutbox(tmp_path / "jobs.sqlite3")
    path = mr_file(tmp_path / "res", generate_uid(), generate_uid(), 1)
    enqueue(outbox, [(path.stem, path)], settings.destinations[:1], job_id=outbox.job_id)
    summary = deliver_due(outbox, settings.destinations)
    assert summary.sent == 1
    con = sqlite3.connect(pacs.db_path)
    assert con.execute("SELECT COUNT(*) FROM instances").fetchone() == (1,)
    con.close()


def test_received_files_are_0640_whatever_the_umask(
    start_daemon: StartDaemon, tmp_path: Path,
) -> None:
    old = os.umask(0o000)
    try:
        d = start_daemon()
        path = mr_file(tmp_path / "in", generate_uid(), generate_uid(), 1)
        assert [r.status for r in store_files(peer(d), [path])] == [0]
    finally:
        os.umask(old)
    root = d.settings.storage.root
    files = [p for p in (root / "spool").rglob("*") if p.is_file()]
    assert files
    for p in [*files, root / "jobs.sqlite3"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o640, p
    for p in [q for q in (root / "spool").rglob("*") if q.is_dir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o750, p
