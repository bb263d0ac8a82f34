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
  from every string in the event, including messages and formatted tracebacks.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[PHI redacted]"

PHI_KEYWORDS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "AccessionNumber",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "IssuerOfPatientID",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "InstitutionAddress",
    "MedicalRecordLocator",
)

# Normalised key spellings: "patient_name", "PatientName", "patient-name" -> "patientname".
_PHI_KEYS = frozenset(k.lower() for k in PHI_KEYWORDS) | {
    "birthdate",
    "birth_date",
    "dob",
    "accession",
    "mrn",
}


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


_PHI_KEYS_NORM = frozenset(_norm(k) for k in _PHI_KEYS)


class _PhiValues:
    """A bounded, thread-safe set of PHI strings seen in datasets, to scrub from logs."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        changed = False
        with self._lock:
            for value in values:
                value = value.strip()
                if len(value) < 3:  # too short to scrub without destroying every log line
                    continue
                if value in self._values:
                    self._values.move_to_end(value)
                    continue
                self._values[value] = None
                changed = True
                if len(self._values) > self._capacity:
                    self._values.popitem(last=False)
            if changed:
                alternatives = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in alternatives), re.I)

    def scrub(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None:
            return text
        return pattern.sub(REDACTED, text)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None


_PHI_VALUES = _PhiValues()


def _person_name_parts(value: Any) -> list[str]:
    text = str(value)
    parts = [text, text.replace("^", " ").strip()]
    parts += [p for p in re.split(r"[\^=]", text) if p]
    return parts


def remember_phi(dataset: Any) -> None:
    """Record the PHI values of ``dataset`` so that no later log line can contain them.

    Call this wherever rgcds reads a dataset from outside (the listener, the study index).
    It reads only the PHI attributes and never fails.
    """
    values: list[str] = []
    try:
        for keyword in PHI_KEYWORDS:
            value = dataset.get(keyword) if hasattr(dataset, "get") else None
            if value is None or value == "":
                continue
            if keyword.endswith("Sequence"):
                for item in value:
                    for sub in ("PatientID", "IssuerOfPatientID"):
                        if sub in item:
                            values.append(str(item[sub].value))
            elif keyword.endswith("Name") or keyword.endswith("Names"):
                items = value if isinstance(value, list | tuple) else [value]
                for item in items:
                    values += _person_name_parts(item)
            else:
                items = value if isinstance(value, list | tuple) else [value]
                values += [str(v) for v in items]
    except Exception:  # noqa: S110 - never let log safety break the caller
        pass
    _PHI_VALUES.add(values)


def remember_phi_values(values: Iterable[str]) -> None:
    """Record PHI strings (e.g. read from a job store) to scrub from all later log lines."""
    _PHI_VALUES.add(values)


def _is_dicom_object(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("pydicom") and type(value).__name__ in {
        "Dataset",
        "FileDataset",
        "DataElement",
        "RawDataElement",
        "Sequence",
        "PersonName",
        "FileMetaDataset",
        "MultiValue",
    }


class PhiGuard:
    """structlog processor that removes PHI from an event before it is rendered."""

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {key: self._clean(key, value) for key, value in event_dict.items()}

    def _clean(self, key: str, value: Any, depth: int = 0) -> Any:
        if _norm(key) in _PHI_KEYS_NORM:
            return REDACTED
        if _is_dicom_object(value):
            return f"[{type(value).__name__} not logged]"
        if isinstance(value, str):
            return _PHI_VALUES.scrub(value)
        if isinstance(value, bool | int | float) or value is None:
            return value
        if depth > 4:
            return "[nested value not logged]"
        if isinstance(value, Mapping):
            return {str(k): self._clean(str(k), v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean("", v, depth + 1) for v in value]
        if isinstance(value, BaseException):
            return _PHI_VALUES.scrub(f"{type(value).__name__}: {value}")
        return _PHI_VALUES.scrub(str(value))


def _scrub_rendered(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    # Runs after exceptions are formatted, so tracebacks are scrubbed as well.
    for key in ("exception", "stack", "event"):
        if isinstance(event_dict.get(key), str):
            event_dict[key] = _PHI_VALUES.scrub(event_dict[key])
    return event_dict


def _drop_positional(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    # Stdlib records may carry %-style args (pynetdicom does); render then scrub them.
    record = event_dict.get("_record")
    if record is not None and "positional_args" in event_dict:
        event_dict.pop("positional_args", None)
    return event_dict


def shared_processors() -> list[Processor]:
    """The processors every log event passes through, in order."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.PositionalArgumentsFormatter(),
        _drop_positional,
        PhiGuard(),
        structlog.processors.format_exc_info,
        _scrub_rendered,
    ]


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
