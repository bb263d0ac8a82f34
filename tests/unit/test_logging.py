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


def test_a_dot_joins_letters_and_digits_but_not_a_letter_and_a_digit(
    phantom_phi: io.StringIO,
) -> None:
    assert _logged(phantom_phi, "Phantom. Next") == f"{REDACTED}. Next"
    assert "pha000000001" not in _logged(phantom_phi, "study.PHA000000001").lower()


def test_a_full_name_is_one_redaction(phantom_phi: io.StringIO) -> None:
    assert _logged(phantom_phi, "PHANTOM, JANE Q") == REDACTED
    assert _logged(phantom_phi, "Phantom^Jane^Q") == REDACTED


@pytest.mark.parametrize(
    "text",
    [
        '"model_id": "brats-unet-phantom"', "mgmt-phantom-demo", "phantom_study", "phantoms",
        "PhantomX", "janet", "1.2.840.19170317.5", "219170317", "x-PHA000000001",
        "ACC421", "lipid", "a joke, in lower case: li jo q", "Quality",
        "rgcds.phantom.postop", "phantom.postop_written",
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


def test_a_redaction_is_never_scrubbed_again(stream: io.StringIO) -> None:
    # A patient named "Phi" (the listener tests have "Status^Phi") or "Redacted".
    remember_phi_values(["Status^Phi", "Redacted^Ann", "1917.03.17"])
    out = _logged(stream, "Invalid value for VR DA: '1917.03.17', patient Phi")
    assert out == f"Invalid value for VR DA: '{REDACTED}', patient {REDACTED}"
    assert _logged(stream, f"already {REDACTED}") == f"already {REDACTED}"


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


def test_a_quoted_value_with_quotes_and_swallowed_neighbours_is_redacted_whole(
    stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # What bench/fuzz.py found at 100,000 cases: a mangled length made a value swallow the
    # next elements' bytes, quotes included, and the tail after the first inner quote leaked.
    value = "AB'\x16!\x00PN\x16\x00Qzwerty^Plonk\x10\x00LO\x0a\x00PID-9q8w7e'CS"
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        configure_logging("INFO", "json", stream)
        warnings.warn(f"Invalid value for VR LO: '{value}'", UserWarning, stacklevel=1)
        logging.getLogger("pydicom").warning("Invalid value for VR LO: '%s'", value)
    out = stream.getvalue() + capsys.readouterr().err
    for part in ("Qzwerty", "Plonk", "9q8w7e"):
        assert part not in out
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    # (the VR itself may be scrubbed too when an earlier test remembered it as a value)
    assert lines[-2]["event"].startswith("Invalid value for VR ")
    assert lines[-2]["event"].endswith(f": '{REDACTED}'")


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


# --- bounded cost, non-PHI fields, third-party routes (issue 21) ---------------------------


def _scrub_calls(n_values: int, line: str) -> tuple[int, str]:
    """Operations to scrub ``line`` with ``n_values`` remembered: trie steps and lookups."""
    from rgcds import logging as rlog

    values = rlog._PhiValues(capacity=200_000)
    values.add(f"OPID{i:06d}" for i in range(n_values * 3 // 5))
    values.add([f"{1900 + i % 100}{1 + i % 12:02d}{1 + i % 28:02d}"
                for i in range(n_values // 5)])
    values.add_names(f"Family{i}^Given{i}" for i in range(n_values // 5))
    counted = {"n": 0}

    class Counting(dict):  # type: ignore[type-arg]
        def get(self, key, default=None):  # type: ignore[no-untyped-def]
            counted["n"] += 1
            return super().get(key, default)

    def wrap(node: rlog._Node) -> None:
        node.children = Counting(node.children)
        for child in node.children.values():
            wrap(child)

    wrap(values._root)
    out = values.scrub(line)
    return counted["n"], out


def test_scrubbing_cost_does_not_grow_with_the_number_of_values() -> None:
    line = " ".join(["association from 127.0.0.1 study 1.2.826.0.1.3680043 OPID000001",
                     "Family1 Given1 1901-02-02 x"] * 20)
    small, out_small = _scrub_calls(10, line)
    large, out_large = _scrub_calls(50_000, line)
    assert out_small == out_large and "OPID000001" not in out_large
    assert "Family1" not in out_large and "1901-02-02" not in out_large
    # Dictionary lookups per line: identical, not 5,000 times as many.
    assert 0 < small and large <= small * 1.05, (small, large)


def test_scrubbing_time_ratio_at_50000_values() -> None:
    import time

    from rgcds import logging as rlog

    line = "C-ECHO from EVILAE at 127.0.0.1:11112 " * 50

    def per_line(n: int) -> float:
        values = rlog._PhiValues()
        values.add(f"ID{i:07d}" for i in range(n))
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(20):
                values.scrub(line)
            best = min(best, time.perf_counter() - t0)
        return best

    baseline = per_line(10)
    assert per_line(50_000) < baseline * 3  # a ratio, not a wall-clock bound


def test_remembering_is_bounded_and_cheap_on_repeat() -> None:
    from rgcds import logging as rlog

    values = rlog._PhiValues(capacity=1_000)
    values.add(f"VALUE{i:05d}" for i in range(5_000))
    assert len(values) == 1_000
    assert values.scrub("VALUE00000 VALUE04999") == f"VALUE00000 {REDACTED}"
    values.add(["VALUE04000"])  # seen again: made recent, nothing rebuilt
    values.add(f"NEW{i:05d}" for i in range(999))
    assert values.scrub("VALUE04000 VALUE04001") == f"{REDACTED} VALUE04001"
    # Forgotten values leave no nodes behind.
    values.clear()
    assert not values._root.children


def test_an_instance_with_50000_other_patient_ids(stream: io.StringIO) -> None:
    ds = Dataset()
    ds.PatientName = "Huge^Otherids"
    ds.PatientID = "HUGE-1"
    ds.OtherPatientIDs = [f"OPX{i:06d}" for i in range(50_000)]
    remember_phi(ds)
    remember_phi(ds)  # the next instance of the study
    out = _logged(stream, "ids OPX000000 OPX049999 HUGE-1 Huge")
    assert out == f"ids {REDACTED} {REDACTED} {REDACTED} {REDACTED}"


def test_non_phi_fields_survive_a_patient_named_like_them(stream: io.StringIO) -> None:
    ds = Dataset()
    ds.PatientName = "EVILAE"
    ds.PatientID = "127.0.0.1"
    ds.OtherPatientIDs = ["826", "11112", "RGCDS"]
    remember_phi(ds)
    log = structlog.get_logger("rgcds.dicom.scp")
    log.info("association requested", calling_ae="EVILAE", called_ae="RGCDS",
             peer="127.0.0.1", port=11112, study_uid="1.2.826.0.1.3680043.2",
             job_id="11112", text="EVILAE from 127.0.0.1")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["calling_ae"] == "EVILAE" and line["called_ae"] == "RGCDS"
    assert line["peer"] == "127.0.0.1" and line["port"] == 11112
    assert line["study_uid"] == "1.2.826.0.1.3680043.2" and line["job_id"] == "11112"
    assert line["text"] == f"{REDACTED} from {REDACTED}"  # free text is scrubbed
    # A UID key whose value is not a UID (a mangled element) is scrubbed as usual.
    log.info("odd", sop_instance_uid="EVILAE 1.2")
    assert REDACTED in json.loads(stream.getvalue().splitlines()[-1])["sop_instance_uid"]


def test_loggers_with_their_own_handlers_are_scrubbed(stream: io.StringIO) -> None:
    remember_phi_values(["Handlerton^Prudence", "MRN-HANDLER-9"])
    own = io.StringIO()
    logger = logging.getLogger("prefect.flow_runs.phi_test")
    handler = logging.StreamHandler(own)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("flow for %s (%s)", "Prudence Handlerton", "MRN-HANDLER-9")
        try:
            raise ValueError("bad MRN-HANDLER-9")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert "Handlerton" not in own.getvalue() and "MRN-HANDLER" not in own.getvalue()
    assert f"flow for {REDACTED} ({REDACTED})" in own.getvalue()
    assert "ValueError" in own.getvalue()


def test_prefect_loggers_are_scrubbed(stream: io.StringIO) -> None:
    from prefect.logging import get_logger

    remember_phi_values(["PREFECTSECRET-77"])
    own = io.StringIO()
    logger = get_logger("flow_runs")
    handler = logging.StreamHandler(own)
    logger.addHandler(handler)
    try:
        logger.warning("processing PREFECTSECRET-77")
    finally:
        logger.removeHandler(handler)
    assert own.getvalue().strip() == f"processing {REDACTED}"


def test_thread_tracebacks_go_through_the_guard(stream: io.StringIO) -> None:
    import threading

    remember_phi_values(["THREADSECRET-42"])

    def boom() -> None:
        raise RuntimeError("patient THREADSECRET-42")

    thread = threading.Thread(target=boom, name="DUL-test")
    thread.start()
    thread.join()
    out = stream.getvalue()
    assert "THREADSECRET" not in out
    line = json.loads(out.splitlines()[-1])
    assert line["event"] == "uncaught exception in a thread" and line["thread"] == "DUL-test"
    assert "RuntimeError" in line["exception"]
