"""PHI can not reach a log line, whatever the route."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from pydicom import Dataset

from rgcds.logging import REDACTED, configure_logging, remember_phi

NAME = "QUETZALCOATL^ZEPHYRINE"
MRN = "MRN-77-31337"


@pytest.fixture
def stream() -> io.StringIO:
    buf = io.StringIO()
    configure_logging("DEBUG", "json", buf)
    return buf


def dataset() -> Dataset:
    ds = Dataset()
    ds.PatientName = NAME
    ds.PatientID = MRN
    ds.PatientBirthDate = "19510704"
    ds.AccessionNumber = "ACC998877"
    ds.OtherPatientIDs = ["OTHER-ID-5566"]
    ds.StudyInstanceUID = "1.2.3.4"
    return ds


def test_datasets_and_elements_never_rendered(stream: io.StringIO) -> None:
    ds = dataset()
    log = structlog.get_logger("t")
    log.info("received", ds=ds, element=ds["PatientName"], name=ds.PatientName)
    out = stream.getvalue()
    assert "QUETZALCOATL" not in out
    assert "[Dataset not logged]" in out


def test_phi_keys_redacted(stream: io.StringIO) -> None:
    log = structlog.get_logger("t")
    log.info("x", patient_name="A B", PatientID="12345", accession_number="A1", birth_date="1950")
    line = json.loads(stream.getvalue().splitlines()[-1])
    for key in ("patient_name", "PatientID", "accession_number", "birth_date"):
        assert line[key] == REDACTED


def test_remembered_values_scrubbed_everywhere(stream: io.StringIO) -> None:
    remember_phi(dataset())
    log = structlog.get_logger("t")
    log.info(f"message with {MRN}", detail=f"name {NAME} and quetzalcoatl zephyrine",
             nested={"list": [f"ACC998877 {MRN}"]})
    logging.getLogger("pynetdicom.events").info("stdlib %s %s", NAME, "19510704")
    try:
        raise ValueError(f"failed for OTHER-ID-5566 {NAME}")
    except ValueError:
        log.exception("boom")
    out = stream.getvalue()
    for secret in ("QUETZALCOATL", "ZEPHYRINE", MRN, "19510704", "ACC998877", "OTHER-ID-5566"):
        assert secret.lower() not in out.lower()
    assert out.count(REDACTED) >= 6


def test_console_format_also_guarded() -> None:
    buf = io.StringIO()
    configure_logging("INFO", "console", buf)
    remember_phi(dataset())
    structlog.get_logger("t").warning(f"hello {NAME}", ds=dataset())
    assert "QUETZALCOATL" not in buf.getvalue()


def test_auto_format_is_json_off_terminal() -> None:
    buf = io.StringIO()
    configure_logging("INFO", "auto", buf)
    structlog.get_logger("t").info("plain", count=3)
    assert json.loads(buf.getvalue().splitlines()[-1])["count"] == 3
