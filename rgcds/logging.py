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
  from every string in the event, including messages and formatted tracebacks;
* Python warnings (pydicom's ``Invalid value for VR DA: '...'``) are logged through the
  same processors instead of going raw to stderr (:func:`configure_logging` installs the
  hook); the values a warning quotes, and those quoted in pydicom's own log lines, are
  redacted, since they may be read before rgcds has registered the dataset.

Values are scrubbed as whole tokens, case-insensitively:

* a person's name in any DICOM PN form: ``Family^Given^Middle``, with spaces or commas
  (``Family, Given``), in "Given Middle Family" order, and each component (and each word
  of a component) on its own as a word. A component of one or two letters is matched only
  in its own spelling, upper case or capitalised (``Jo``, ``JO``; not ``jo``), so that a
  middle initial "A" does not take every "a" out of the logs;
* IDs and accession numbers (three characters or more) as a whole token;
* dates in DICOM (``YYYYMMDD``), ISO (``YYYY-MM-DD``) and display forms (``YYYY.MM.DD``,
  ``YYYY/MM/DD``, ``DD.MM.YYYY``, ``DD/MM/YYYY``, ``DD-MM-YYYY``, ``MM/DD/YYYY``), whichever
  form the dataset held, also where an ISO time follows (``1951-07-04T10:15``).

A token boundary is any character other than a letter (of any script), a digit, ``_`` or
``-``; a ``.`` between two digits also joins (UIDs, versions, dotted dates). So a value
bounded by a letter, a digit, ``-`` or ``_`` is part of another token and survives:
``phantom`` inside the model id ``brats-unet-phantom``, ``mgmt-phantom-demo`` or
``phantom_study``, or a patient ID ``12345`` inside the UID ``1.2.840.12345.1``; while
``Phantom`` alone, ``Phantom^Jane``, ``PHANTOM, JANE``, ``'Phantom'`` or ``Phantom.`` at
the end of a sentence are scrubbed.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import warnings
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


# A value is scrubbed only where it stands as a whole token. These characters join the
# characters around them into one token: word characters (letters of any script, digits,
# "_") and "-"; a "." joins two digits (UIDs, version numbers, dotted dates).
_JOINERS = r"[\w-]"


def _bounded(body: str, first: str, last: str, *, date: bool = False) -> str:
    """``body`` (a regular expression for a value whose text starts with ``first`` and
    ends with ``last``) matched only as a whole token, never inside a longer one."""
    left = right = ""
    if first.isalnum() or first in "_-":
        left = rf"(?<!{_JOINERS})"
        if first.isdigit():
            left += r"(?<!\d\.)"
    if last.isalnum() or last in "_-":
        # A date may run on into an ISO date-time ("1951-07-04T10:15").
        right = rf"(?!(?!T\d){_JOINERS})" if date else rf"(?!{_JOINERS})"
        if last.isdigit():
            right += r"(?!\.\d)"
    return left + body + right


def _literal(text: str) -> str:
    """``text`` as a regular expression, any run of white space matching any other."""
    return r"\s+".join(re.escape(part) for part in text.split())


def _name_part(text: str) -> str:
    """A name component as a regular expression: case-insensitive, or in its own
    spelling (as is, upper case, capitalised) if it has one or two characters."""
    if len(text) <= 2:
        spellings = sorted({text, text.upper(), text.capitalize()})
        return "(?-i:" + "|".join(re.escape(s) for s in spellings) + ")"
    return _literal(text)


def _word_fragment(word: str) -> str:
    """One word of a name, matched as a whole word."""
    return _bounded(_name_part(word), word[0], word[-1])


_DATE_PATTERNS: tuple[str, ...] = (
    r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})",  # DICOM DA
    r"(?P<y>\d{4})(?P<sep>[-./])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})",  # ISO and co.
    r"(?P<d>\d{1,2})(?P<sep>[./-])(?P<m>\d{1,2})(?P=sep)(?P<y>\d{4})",  # DD.MM.YYYY
)


def date_forms(value: str) -> list[str]:
    """The spellings of a date (``value`` in any of them) that are scrubbed from logs.

    DICOM ``YYYYMMDD``, ISO ``YYYY-MM-DD``, and the display forms ``YYYY.MM.DD``,
    ``YYYY/MM/DD``, ``DD.MM.YYYY``, ``DD/MM/YYYY``, ``DD-MM-YYYY`` and ``MM/DD/YYYY``.
    Returns an empty list for a value that is not a valid calendar date.
    """
    for pattern in _DATE_PATTERNS:
        match = re.fullmatch(pattern, value.strip())
        if match is None:
            continue
        y, m, d = match["y"], int(match["m"]), int(match["d"])
        if not (1 <= m <= 12 and 1 <= d <= 31):
            return []
        mm, dd = f"{m:02d}", f"{d:02d}"
        return [f"{y}{mm}{dd}", f"{y}-{mm}-{dd}", f"{y}.{mm}.{dd}", f"{y}/{mm}/{dd}",
                f"{dd}.{mm}.{y}", f"{dd}/{mm}/{y}", f"{dd}-{mm}-{y}", f"{mm}/{dd}/{y}"]
    return []


def name_fragments(value: str) -> list[tuple[str, int]]:
    """Regular expressions (with a priority, the longer the earlier) for a person's name.

    ``value`` is a DICOM PN value (``Family^Given^Middle^Prefix^Suffix``, groups separated
    by ``=``) or a plain "Given Family". The whole name matches in its caret form and with
    spaces or commas between the components, in DICOM order and "Given Middle Family"
    order; each component, and each word of a component, matches on its own as a word.
    """
    fragments: list[tuple[str, int]] = []
    for group in value.split("="):
        components = [c.strip() for c in group.split("^") if c.strip()]
        if len(components) == 1 and "^" not in group:
            components = components[0].replace(",", " ").split()
        if not components:
            continue
        words = [w for c in components for w in c.replace(",", " ").split()]
        orders = [components]
        if len(components) >= 2:
            orders += [components[1:3] + components[:1], components[1:2] + components[:1]]
        for order in orders:
            if len(order) < 2:
                continue
            body = r"[\s^,]+".join(_name_part(c) for c in order)
            fragments.append((_bounded(body, order[0][0], order[-1][-1]),
                              sum(len(c) for c in order) + len(order)))
        for component in components:
            if len(component.split()) > 1:
                fragments.append((_bounded(_literal(component), component[0], component[-1]),
                                  len(component)))
        fragments += [(_word_fragment(w), len(w)) for w in words]
    return fragments


def value_fragments(value: str) -> list[tuple[str, int]]:
    """Regular expressions (with priorities) for one PHI value that is not a name.

    A date matches in every form of :func:`date_forms`; any other value (an ID, an
    accession number) matches as a whole token. Values shorter than three characters
    are not scrubbed: a one- or two-character ID would take every count out of the logs.
    """
    value = value.strip()
    if len(value) < 3:
        return []
    forms = date_forms(value)
    if forms:
        return [(_bounded(re.escape(f), f[0], f[-1], date=True), len(f)) for f in forms]
    return [(_bounded(_literal(value), value[0], value[-1]), len(value))]


class _PhiValues:
    """A bounded, thread-safe set of PHI patterns seen in datasets, to scrub from logs."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._fragments: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add_fragments(self, fragments: Iterable[tuple[str, int]]) -> None:
        changed = False
        with self._lock:
            for fragment, priority in fragments:
                if fragment in self._fragments:
                    self._fragments.move_to_end(fragment)
                    continue
                self._fragments[fragment] = priority
                changed = True
                if len(self._fragments) > self._capacity:
                    self._fragments.popitem(last=False)
            if changed:
                ordered = sorted(self._fragments.items(), key=lambda kv: -kv[1])
                self._pattern = re.compile("|".join(f for f, _ in ordered), re.I)

    def add(self, values: Iterable[str]) -> None:
        """Add values of unknown kind: a PN value (with ``^``) as a name, else a value."""
        fragments: list[tuple[str, int]] = []
        for value in values:
            value = value.strip(" \x00")
            if "^" in value:
                fragments += name_fragments(value)
            else:
                fragments += value_fragments(value)
        self.add_fragments(fragments)

    def add_names(self, names: Iterable[str]) -> None:
        fragments: list[tuple[str, int]] = []
        for name in names:
            fragments += name_fragments(name)
        self.add_fragments(fragments)

    def scrub(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None:
            return text
        return pattern.sub(REDACTED, text)

    def clear(self) -> None:
        with self._lock:
            self._fragments.clear()
            self._pattern = None


_PHI_VALUES = _PhiValues()
_SHOW_WARNING = warnings.showwarning


def _raw_text(dataset: Any, keyword: str) -> str | None:
    """The undecoded text of an element (before pydicom can warn about its value)."""
    try:
        elem = dataset.get_item(keyword)
    except Exception:
        return None
    raw = getattr(elem, "value", None)
    if isinstance(raw, bytes | bytearray) and raw:
        return bytes(raw).decode("utf-8", errors="replace").strip(" \x00")
    return None


def remember_phi(dataset: Any) -> None:
    """Record the PHI values of ``dataset`` so that no later log line can contain them.

    Call this wherever rgcds reads a dataset from outside (the listener, the study index).
    It reads only the PHI attributes and never fails. The raw bytes of each attribute are
    registered before its value is decoded, so a warning pydicom gives while decoding an
    invalid value (``Invalid value for VR DA: '1917.03.17'``) is scrubbed as well.
    """
    names: list[str] = []
    values: list[str] = []
    try:
        for keyword in PHI_KEYWORDS:
            is_name = keyword.endswith("Name") or keyword.endswith("Names")
            raw = _raw_text(dataset, keyword) if hasattr(dataset, "get_item") else None
            if raw:
                parts = raw.split("\\")
                if is_name:
                    _PHI_VALUES.add_names(parts)
                else:
                    _PHI_VALUES.add(parts)
            value = dataset.get(keyword) if hasattr(dataset, "get") else None
            if value is None or value == "":
                continue
            if keyword.endswith("Sequence"):
                for item in value:
                    for sub in ("PatientID", "IssuerOfPatientID"):
                        if sub in item:
                            values.append(str(item[sub].value))
            else:
                items = value if isinstance(value, list | tuple) else [value]
                (names if is_name else values).extend(str(v) for v in items)
    except Exception:  # noqa: S110 - never let log safety break the caller
        pass
    _PHI_VALUES.add_names(names)
    _PHI_VALUES.add(values)


def remember_phi_values(values: Iterable[str]) -> None:
    """Record PHI strings (e.g. read from a job store) to scrub from all later log lines.

    A value with ``^`` is taken for a person's name (DICOM PN); any other value for an ID,
    an accession number or a date (see :class:`PhiGuard` for how each is matched).
    """
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


# pydicom quotes the offending value in its warnings and log lines ("Invalid value for VR
# DA: '1917.03.17'"), possibly before rgcds has registered the dataset's PHI.
_QUOTED = re.compile(r"""(?P<q>['"]).*?(?P=q)""")


def _redact_quoted(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    # pydicom's own log lines repeat its warnings; the quoted value may be PHI.
    name = str(event_dict.get("logger", ""))
    if (name == "pydicom" or name.startswith("pydicom.")) and isinstance(
        event_dict.get("event"), str
    ):
        event_dict["event"] = _QUOTED.sub(f"'{REDACTED}'", event_dict["event"])
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
        _redact_quoted,
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
    warnings.showwarning = _log_warning




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
