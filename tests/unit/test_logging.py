"""PHI can not reach a log line, whatever the route."""

from __future__ import annotations

import io
import json
import logging
import warnings

import pytest
import structlog
from pydicom import Dataset

from rgcds.logging import REDACTED, configure_logging, remember_phi, remember_phi_values

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


# --- whole tokens: what must be scrubbed and what must survive ------------------------------

PHANTOM = "PHANTOM^JANE^Q"


@pytest.fixture
def phantom_phi(stream: io.StringIO) -> io.StringIO:
    ds = Dataset()
    ds.PatientName = PHANTOM
    ds.PatientID = "PHA000000001"
    ds.PatientBirthDate = "19170317"
    ds.AccessionNumber = "ACC42"
    ds.OtherPatientNames = "Li^Jo"
    remember_phi(ds)
    return stream


def _logged(stream: io.StringIO, text: str) -> str:
    structlog.get_logger("t").info("m", text=text)
    return str(json.loads(stream.getvalue().splitlines()[-1])["text"])


@pytest.mark.parametrize(
    "text",
    [
        "Phantom", "phantom", "PHANTOM^JANE^Q", "Phantom^Jane", "PHANTOM, JANE", "Phantom,Jane",
        "Jane Phantom", "Jane Q Phantom", "phantom jane", "'Phantom'", "name=Phantom.",
        "(phantom)", "Jane", "PHA000000001", "ACC42", "Li", "LI", "Jo", "Q",
        "19170317", "1917-03-17", "1917.03.17", "17.03.1917", "17/03/1917", "03/17/1917",
        "1917-03-17T10:15:00", "born 1917-03-17.",
    ],
)
def test_phi_tokens_are_scrubbed(phantom_phi: io.StringIO, text: str) -> None:
    out = _logged(phantom_phi, f"before {text} after")
    assert out.startswith("before ") and out.endswith(" after")
    assert REDACTED in out
    for part in ("phantom", "jane", "pha000000001", "acc42", "1917", "jo"):
        assert part not in out.lower()


def test_a_full_name_is_one_redaction(phantom_phi: io.StringIO) -> None:
    assert _logged(phantom_phi, "PHANTOM, JANE Q") == REDACTED
    assert _logged(phantom_phi, "Phantom^Jane^Q") == REDACTED


@pytest.mark.parametrize(
    "text",
    [
        '"model_id": "brats-unet-phantom"', "mgmt-phantom-demo", "phantom_study", "phantoms",
        "PhantomX", "janet", "1.2.840.19170317.5", "219170317", "x-PHA000000001",
        "ACC421", "lipid", "a joke, in lower case: li jo q", "Quality",
    ],
)
def test_words_that_only_contain_phi_survive(phantom_phi: io.StringIO, text: str) -> None:
    assert _logged(phantom_phi, text) == text


def test_short_values_are_not_tokens_of_their_own(stream: io.StringIO) -> None:
    ds = Dataset()
    ds.PatientName = "DOE^A"
    ds.PatientID = "7"  # too short to scrub: every count would go
    remember_phi(ds)
    assert _logged(stream, "7 instances, a study of DOE A") == f"7 instances, a study of {REDACTED}"
    assert _logged(stream, "A") == REDACTED


def test_remembered_raw_values_and_names_of_unknown_kind(stream: io.StringIO) -> None:
    remember_phi_values(["Ostrogoth^Wilhelmina", "MRN-5-5-5", "1980-02-29"])
    out = _logged(stream, "Wilhelmina OSTROGOTH MRN-5-5-5 29.02.1980 ostrogoth-model")
    assert out == f"{REDACTED} {REDACTED} {REDACTED} ostrogoth-model"


# --- Python warnings go through the scrubber -----------------------------------------------


def test_warnings_are_logged_and_scrubbed(
    stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    remember_phi_values(["Warnwald^Ysolde"])
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        configure_logging("INFO", "json", stream)  # installs the hook inside this context
        warnings.warn("Invalid value for VR DA: '1917.03.17'", UserWarning, stacklevel=1)
        warnings.warn("odd name Warnwald here", RuntimeWarning, stacklevel=1)
    captured = capsys.readouterr()
    assert "1917" not in captured.err and "Warnwald" not in captured.err
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[-2]["event"] == f"Invalid value for VR DA: '{REDACTED}'"
    assert lines[-2]["category"] == "UserWarning" and lines[-2]["level"] == "warning"
    assert lines[-1]["event"] == f"odd name {REDACTED} here"


def test_pydicom_invalid_date_never_reaches_a_log_raw(
    stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    source = dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source.PatientBirthDate = "1917.03.17"  # an invalid DA, as a scanner may send it
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        configure_logging("INFO", "json", stream)
        remember_phi(source)
        copy = Dataset()
        copy.PatientBirthDate = source.PatientBirthDate  # what a result writer does: warns
        structlog.get_logger("t").info("born 17.03.1917")
    out = stream.getvalue()
    assert "Invalid value for VR DA" in out  # the warning is a log event...
    assert "1917" not in out + capsys.readouterr().err  # ...and nothing carries the date
    assert out.count(REDACTED) >= 2
