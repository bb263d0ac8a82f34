"""PHI-safe structured logging.

Library modules do ``logger = structlog.get_logger(__name__)``; only the CLI calls
:func:`configure_logging`. Output is JSON lines when stdout is not a terminal and readable
console output when it is. Standard-library loggers (pynetdicom, prefect) are routed
through the same processors.

The :class:`PhiGuard` processor makes it impossible to log protected health information:

* a value that is a pydicom ``Dataset``, ``DataElement``, ``Sequence`` or ``PersonName`` is
  replaced by a placeholder, whatever its key;
* a key that names a PHI attribute (PatientName, PatientID, PatientBirthDate,
  AccessionNumber, OtherPatientIDs, ... in any spelling) has its value replaced;
* every PHI value that rgcds has read from a dataset (:func:`remember_phi`) is scrubbed
  from every string in the event, including messages and formatted tracebacks, except
  the values of keys that are structurally non-PHI (``calling_ae``, ``peer``, ``*_uid``,
  ``port``, ``job_id``, ...) when they have that key's form: a patient named ``EVILAE``
  with the ID ``127.0.0.1`` does not blind the security log;
* Python warnings (pydicom's ``Invalid value for VR DA: '...'``) are logged through the
  same processors instead of going raw to stderr (:func:`configure_logging` installs the
  hook); the values a warning quotes, and those quoted in pydicom's own log lines, are
  redacted, since they may be read before rgcds has registered the dataset;
* every standard-library log record is scrubbed as it is created (a log record factory),
  so loggers with handlers of their own (Prefect's console and API handlers, which do
  not propagate) write nothing raw either; uncaught exceptions in threads (pynetdicom's
  DUL and association threads), in the main thread and unraisable ones are log events.

Values are scrubbed as whole tokens, case-insensitively:

* a person's name: every word of every component, as a word; adjacent redacted words
  (``Family^Given``, ``Family, Given``, "Given Middle Family") become one redaction. A
  word of one or two letters is matched only in its own spelling, upper case or
  capitalised (``Jo``, ``JO``; not ``jo``), so that a middle initial "A" does not take
  every "a" out of the logs;
* IDs and accession numbers (three characters or more) as a whole token sequence;
* dates in DICOM (``YYYYMMDD``), ISO (``YYYY-MM-DD``) and display forms (``YYYY.MM.DD``,
  ``YYYY/MM/DD``, ``DD.MM.YYYY``, ``DD/MM/YYYY``, ``DD-MM-YYYY``, ``MM/DD/YYYY``), whichever
  form the dataset held, also where an ISO time follows (``1951-07-04T10:15``).

A token is a run of letters (of any script), digits, ``_`` and ``-``; a ``.`` between two
digits also joins (UIDs, versions, dotted dates), and so does a ``.`` between two
lower-case ASCII letters (dotted identifiers such as the logger name
``rgcds.phantom.postop``); no other ``.`` joins (``study.12345`` and ``study.PHA01`` keep
the ID a token of its own). So a value that is part of a longer token survives:
``phantom`` inside the model id ``brats-unet-phantom``,
``mgmt-phantom-demo`` or ``phantom_study``, or a patient ID ``826`` inside the UID
``1.2.826.0.1``; while ``Phantom`` alone, ``Phantom^Jane``, ``PHANTOM, JANE``, ``'Phantom'``
or ``Phantom.`` at the end of a sentence are scrubbed.

Cost: one matcher for all remembered values (a trie of tokens, updated in place), so
scrubbing a line is linear in its length whatever the number of values (50,000
OtherPatientIDs cost a log line about what 10 values do), and remembering a value seen
before is one dictionary lookup. The set is an LRU of at most 100,000 distinct values;
the least recently remembered are forgotten first.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

# The guard and the matcher live in their own modules; their names stay importable here.
from rgcds.logging.guard import (
    _QUOTED,
    PhiGuard,
    remember_phi,
    remember_phi_values,
    shared_processors,
)
from rgcds.logging.phi_values import (
    _PHI_VALUES,
    PHI_KEYWORDS,
    REDACTED,
)
from rgcds.logging.phi_values import _Node as _Node
from rgcds.logging.phi_values import _PhiValues as _PhiValues
from rgcds.logging.phi_values import date_forms as date_forms

_SHOW_WARNING = warnings.showwarning


def configure_logging(
    level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's logging for the whole process.

    Parameters
    ----------
    level
        Minimum level: DEBUG, INFO, WARNING or ERROR.
    fmt
        ``json``, ``console``, or ``auto`` (console on a terminal, JSON lines otherwise).
    stream
        Where to write; ``sys.stderr`` by default, so that command output on stdout stays
        machine-readable.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # pynetdicom dumps whole datasets at DEBUG; keep it at INFO or quieter.
    logging.getLogger("pynetdicom").setLevel(max(logging.INFO, logging.getLevelName(level)))
    # highdicom narrates every module it copies at INFO; keep its warnings only.
    logging.getLogger("highdicom").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("radiomics").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    warnings.showwarning = _log_warning
    _guard_every_record()
    threading.excepthook = _log_thread_exception
    sys.excepthook = _log_uncaught
    sys.unraisablehook = _log_unraisable


_RECORD_FACTORY = logging.getLogRecordFactory()


def _guarded_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every standard-library log record, scrubbed as it is created.

    Third-party loggers may not propagate to the root handler: Prefect gives its loggers
    their own console handler (and an API handler that stores flow-run logs in Prefect's
    database) with ``propagate = False``, set up when Prefect is imported, after
    :func:`configure_logging`. Scrubbing the record itself (its message, arguments and
    formatted traceback) covers every handler, whoever installed it and whenever.
    """
    record = _RECORD_FACTORY(*args, **kwargs)
    if isinstance(record.msg, dict):  # structlog's own events: PhiGuard has run
        return record
    try:
        message = record.getMessage()
        scrubbed = _PHI_VALUES.scrub(message)
        if record.name == "pydicom" or record.name.startswith("pydicom."):
            scrubbed = _QUOTED.sub(f"'{REDACTED}'", scrubbed)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = _PHI_VALUES.scrub(
                logging.Formatter().formatException(record.exc_info))
    except Exception:  # noqa: S110 - a record that cannot be formatted stays as it was
        pass
    return record


def _guard_every_record() -> None:
    factory = logging.getLogRecordFactory()
    if factory is not _guarded_record:
        global _RECORD_FACTORY
        _RECORD_FACTORY = factory
        logging.setLogRecordFactory(_guarded_record)


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """``threading.excepthook``: an uncaught exception in a thread (pynetdicom's DUL and
    association threads, the indexer) is a log event with a scrubbed traceback, not raw
    text on stderr."""
    if args.exc_type is SystemExit:
        return
    structlog.get_logger("rgcds.threads").error(
        "uncaught exception in a thread",
        thread=getattr(args.thread, "name", None),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def _log_uncaught(
    exc_type: type[BaseException], exc_value: BaseException, exc_tb: Any
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc_value, exc_tb)
        return
    structlog.get_logger("rgcds").critical(
        "uncaught exception", exc_info=(exc_type, exc_value, exc_tb))


def _log_unraisable(unraisable: Any) -> None:
    exc = unraisable.exc_value
    structlog.get_logger("rgcds").error(
        "unraisable exception", where=_PHI_VALUES.scrub(str(unraisable.err_msg or "")),
        exc_info=(unraisable.exc_type, exc, unraisable.exc_traceback) if exc else None,
    )




def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` replacement: a warning is a log event, PHI-scrubbed."""
    if file is not None:  # an explicit destination (warnings.showwarning(..., file=f))
        _SHOW_WARNING(message, category, filename, lineno, file, line)
        return
    text = _QUOTED.sub(f"'{REDACTED}'", str(message))
    structlog.get_logger("py.warnings").warning(
        text, category=category.__name__, source=f"{filename}:{lineno}"
    )


def bind_study(correlation_id: str, study_uid: str | None = None) -> None:
    """Bind a study's correlation id (and UID) to every log line of this context."""
    values: MutableMapping[str, str] = {"correlation_id": correlation_id}
    if study_uid:
        values["study_uid"] = study_uid
    structlog.contextvars.bind_contextvars(**values)


__all__ = [
    "PHI_KEYWORDS",
    "REDACTED",
    "PhiGuard",
    "bind_study",
    "configure_logging",
    "remember_phi",
    "remember_phi_values",
    "shared_processors",
]
