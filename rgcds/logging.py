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

import ipaddress
import itertools
import logging
import re
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, MutableMapping
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


# A value is scrubbed only where it stands as a whole token. A token is a run of word
# characters (letters of any script, digits, "_") and "-"; a "." joins two digits (UIDs,
# version numbers, dotted dates) and two lower-case ASCII letters (dotted identifiers: logger
# names such as "rgcds.phantom.postop", event names such as "phantom.study_written"), but
# nothing else ("study.12345" and "study.PHA01" keep the ID a token of its own). Text is cut into
# tokens once, and each token is looked up in a dictionary: the cost of scrubbing is linear
# in the text, whatever the number of remembered values.
_TOKEN = re.compile(r"(?:[\w-]|(?<=\d)\.(?=\d)|(?<=[a-z])\.(?=[a-z]))+")
# A date may run on into an ISO or DICOM date-time ("1951-07-04T10:15", "19510704T1015").
_DATE_TIME = re.compile(r"(\d[\d./-]*\d)T\d")
# Between the words of one name; adjacent redacted name words become one redaction.
_NAME_GAP = re.compile(r"[\s^,]+")

_NAME, _VALUE, _DATE = 1, 2, 4


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _gap(sep: str) -> str:
    """A separator between two tokens, as compared: white space does not count."""
    return "".join(sep.split())


def _path(text: str) -> tuple[str, ...] | None:
    """The lookup path of a value: its first token, then (separator + token) steps."""
    if _TOKEN.fullmatch(text):  # most IDs: one token
        return (text.lower(),)
    matches = list(_TOKEN.finditer(text))
    if not matches:
        return None
    path = [matches[0].group().lower()]
    for prev, cur in itertools.pairwise(matches):
        path.append(_gap(text[prev.end():cur.start()]) + "\x00" + cur.group().lower())
    return tuple(path)


_DATE_PATTERNS: tuple[str, ...] = (
    r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})",  # DICOM DA
    r"(?P<y>\d{4})(?P<sep>[-./])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})",  # ISO and co.
    r"(?P<d>\d{1,2})(?P<sep>[./-])(?P<m>\d{1,2})(?P=sep)(?P<y>\d{4})",  # DD.MM.YYYY
)
_DATE_RES = tuple(re.compile(p) for p in _DATE_PATTERNS)


def date_forms(value: str) -> list[str]:
    """The spellings of a date (``value`` in any of them) that are scrubbed from logs.

    DICOM ``YYYYMMDD``, ISO ``YYYY-MM-DD``, and the display forms ``YYYY.MM.DD``,
    ``YYYY/MM/DD``, ``DD.MM.YYYY``, ``DD/MM/YYYY``, ``DD-MM-YYYY`` and ``MM/DD/YYYY``.
    Returns an empty list for a value that is not a valid calendar date.
    """
    for pattern in _DATE_RES:
        match = pattern.fullmatch(value.strip())
        if match is None:
            continue
        y, m, d = match["y"], int(match["m"]), int(match["d"])
        if not (1 <= m <= 12 and 1 <= d <= 31):
            return []
        mm, dd = f"{m:02d}", f"{d:02d}"
        return [f"{y}{mm}{dd}", f"{y}-{mm}-{dd}", f"{y}.{mm}.{dd}", f"{y}/{mm}/{dd}",
                f"{dd}.{mm}.{y}", f"{dd}/{mm}/{y}", f"{dd}-{mm}-{y}", f"{mm}/{dd}/{y}"]
    return []


# An entry is what one remembered value puts in the matcher: ("exact", spelling) for a
# one- or two-letter name word (matched in its own spelling only), or (kind, path).
_Entry = tuple[Any, ...]


def _name_entries(value: str) -> list[_Entry]:
    """Entries for a person's name: every word of every component, matched as a word.

    ``value`` is a DICOM PN value (``Family^Given^Middle^Prefix^Suffix``, groups separated
    by ``=``) or a plain "Given Family". A word of one or two letters matches only in its
    own spelling, upper case or capitalised (``Jo``, ``JO``; not ``jo``), so that a middle
    initial "A" does not take every "a" out of the logs. Adjacent redacted words of a name
    (``Phantom^Jane``, ``PHANTOM, JANE Q``, ``Jane Phantom``) become one redaction.
    """
    entries: list[_Entry] = []
    for word in value.replace("=", " ").replace("^", " ").replace(",", " ").split():
        tokens = _tokens(word)
        if len(tokens) == 1 and len(tokens[0]) <= 2:
            t = tokens[0]
            entries += [("exact", s) for s in {t, t.upper(), t.capitalize()}]
            continue
        path = _path(word)
        if path is not None:
            entries.append((_NAME, path))
    return entries


def _value_entries(value: str) -> list[_Entry]:
    """Entries for one PHI value that is not a name.

    A date matches in every form of :func:`date_forms`; any other value (an ID, an
    accession number) matches as a whole token sequence, case-insensitively, any run of
    white space matching any other. Values shorter than three characters are not
    scrubbed: a one- or two-character ID would take every count out of the logs.
    """
    value = value.strip()
    if len(value) < 3:
        return []
    forms = date_forms(value)
    kind = _DATE if forms else _VALUE
    entries: list[_Entry] = []
    for form in forms or [value]:
        path = _path(form)
        if path is not None:
            entries.append((kind, path))
    return entries


class _Node:
    """A node of the token trie: children by step, and the kinds of values ending here."""

    __slots__ = ("children", "ends")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.ends: dict[int, int] = {}  # kind -> number of entries ending here


class _PhiValues:
    """A bounded, thread-safe set of PHI values seen in datasets, to scrub from logs.

    One matcher for the whole set: a trie of lower-cased tokens (with the separators
    between them) and a dictionary of exact spellings, updated in place as values come
    and go. Scrubbing a text cuts it into tokens once and walks the trie from each token,
    at most as deep as the longest remembered value (a few tokens), so its cost is linear
    in the text and does not grow with the number of values. The values are kept as an
    LRU of at most ``capacity`` distinct values: remembering a value again (the next
    instance of the study, its job at processing time) makes it recent; the least
    recently remembered values are forgotten first.
    """

    def __init__(self, capacity: int = 100_000, max_tokens: int = 32) -> None:
        self._capacity = capacity
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self._values: OrderedDict[tuple[str, bool], tuple[_Entry, ...]] = OrderedDict()
        self._refs: dict[_Entry, int] = {}
        self._root = _Node()
        self._exact: set[str] = set()

    def __len__(self) -> int:
        return len(self._values)

    # -- the matcher ------------------------------------------------------------------
    def _insert(self, entry: _Entry) -> None:
        if entry[0] == "exact":
            self._exact.add(entry[1])
            return
        node = self._root
        for step in entry[1]:
            child = node.children.get(step)
            if child is None:
                child = node.children[step] = _Node()
            node = child
        node.ends[entry[0]] = node.ends.get(entry[0], 0) + 1

    def _remove(self, entry: _Entry) -> None:
        if entry[0] == "exact":
            self._exact.discard(entry[1])
            return
        trail: list[tuple[_Node, str]] = []
        node = self._root
        for step in entry[1]:
            child = node.children.get(step)
            if child is None:
                return
            trail.append((node, step))
            node = child
        count = node.ends.get(entry[0], 0) - 1
        if count > 0:
            node.ends[entry[0]] = count
        else:
            node.ends.pop(entry[0], None)
        for parent, step in reversed(trail):
            child = parent.children[step]
            if child.children or child.ends:
                break
            del parent.children[step]

    def _add(self, key: tuple[str, bool], entries: list[_Entry]) -> None:
        # Called with the lock held.
        if key in self._values:
            self._values.move_to_end(key)
            return
        kept = tuple(dict.fromkeys(e for e in entries
                                   if e[0] == "exact" or len(e[1]) <= self._max_tokens))
        self._values[key] = kept
        for entry in kept:
            refs = self._refs.get(entry, 0)
            if refs == 0:
                self._insert(entry)
            self._refs[entry] = refs + 1
        while len(self._values) > self._capacity:
            _, old = self._values.popitem(last=False)
            for entry in old:
                refs = self._refs.pop(entry) - 1
                if refs > 0:
                    self._refs[entry] = refs
                else:
                    self._remove(entry)

    def add(self, values: Iterable[str]) -> None:
        """Add values of unknown kind: a PN value (with ``^``) as a name, else a value."""
        with self._lock:
            for value in values:
                value = value.strip(" \x00")
                is_name = "^" in value
                key = (value, is_name)
                if key in self._values:
                    self._values.move_to_end(key)
                    continue
                self._add(key, _name_entries(value) if is_name else _value_entries(value))

    def add_names(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                name = name.strip(" \x00")
                key = (name, True)
                if key in self._values:
                    self._values.move_to_end(key)
                    continue
                self._add(key, _name_entries(name))

    # -- scrubbing --------------------------------------------------------------------
    def _spans(self, text: str) -> list[tuple[int, int, int]]:
        """(start, end, kind) of every remembered value in ``text``, longest first."""
        root, exact = self._root, self._exact
        tokens = list(_TOKEN.finditer(text))
        if REDACTED in text:
            # Never scrub inside an earlier redaction (a patient named "Phi" must not turn
            # "[PHI redacted]" into "[[PHI redacted] redacted]").
            marks = [(m.start(), m.end()) for m in re.finditer(re.escape(REDACTED), text)]
            tokens = [t for t in tokens if not any(a <= t.start() < b for a, b in marks)]
        spans: list[tuple[int, int, int]] = []
        i, n = 0, len(tokens)
        while i < n:
            first = tokens[i]
            best: tuple[int, int, int] | None = None  # (end, last token index, kind)
            if first.group() in exact:
                best = (first.end(), i, _NAME)
            node: _Node | None = root
            j = i
            head = ""
            while node is not None:
                token = tokens[j]
                word = token.group()
                prefix = _DATE_TIME.match(word) if "T" in word else None
                if prefix is not None and node.children:
                    cut = node.children.get(head + prefix.group(1))
                    if cut is not None and _DATE in cut.ends:
                        end = token.start() + prefix.end(1)
                        if best is None or end > best[0]:
                            best = (end, j, _DATE)
                step = head + word.lower()
                node = node.children.get(step)
                if node is None:
                    break
                if node.ends:
                    kind = _NAME if _NAME in node.ends else max(node.ends)
                    if best is None or token.end() > best[0]:
                        best = (token.end(), j, kind)
                if not node.children or j + 1 >= n:
                    break
                head = _gap(text[token.end():tokens[j + 1].start()]) + "\x00"
                j += 1
            if best is None:
                i += 1
                continue
            spans.append((first.start(), best[0], best[2]))
            i = best[1] + 1
        return spans

    def scrub(self, text: str) -> str:
        if not self._values or not text:
            return text
        # No lock: the trie's dictionaries are only read here (safe under the GIL while
        # another thread adds), so logging never waits for a large dataset's values.
        spans = self._spans(text)
        if not spans:
            return text
        merged: list[list[int]] = []
        for start, end, kind in spans:
            if (merged and kind == _NAME and merged[-1][2] == _NAME
                    and _NAME_GAP.fullmatch(text, merged[-1][1], start)):
                merged[-1][1] = end
            else:
                merged.append([start, end, kind])
        out: list[str] = []
        pos = 0
        for start, end, _ in merged:
            out.append(text[pos:start])
            out.append(REDACTED)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._refs.clear()
            self._root = _Node()
            self._exact.clear()


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
                # A multi-valued element is a pydicom MultiValue (a sequence, not a list).
                multi = isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"
                items = list(value) if multi else [value]
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


# Keys whose values rgcds itself logs and that are not PHI by their structure: AE titles,
# peer addresses and ports, UIDs, job and correlation ids. A value under such a key that
# has the key's form is logged as is, even where it equals a remembered PHI value (a
# patient named EVILAE with the ID 127.0.0.1 must not blind the security log); a value
# that does not have the form (a mangled UID carrying text) is scrubbed like any other.
_UID_FORM = re.compile(r"[0-9.]{1,64}")
_AE_FORM = re.compile(r"[ -\[\]-~]{1,16}")  # AE VR: printable, no backslash, <= 16 chars
_HOST_FORM = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:%\[\]-]{0,252}")
_ID_FORM = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _is_address(value: str) -> bool:
    host, _, port = value.rpartition(":")
    for candidate in (value, host.strip("[]") if port.isdigit() else ""):
        try:
            ipaddress.ip_address(candidate)
            return True
        except ValueError:
            continue
    return bool(_HOST_FORM.fullmatch(value))


def _structural_form(key: str) -> Callable[[str], bool] | None:
    """How a value of a structurally non-PHI key looks, or None for any other key."""
    if key.endswith("uid"):
        return lambda v: bool(_UID_FORM.fullmatch(v))
    if key.endswith(("ae", "aetitle", "aet")):
        return lambda v: bool(_AE_FORM.fullmatch(v))
    if key in {"peer", "host", "address", "addr", "ip", "remote", "client", "bind"}:
        return _is_address
    if key in {"port", "metricsport", "jobid", "correlationid", "flowrunid"}:
        return lambda v: bool(_ID_FORM.fullmatch(v))
    return None


_NON_PHI_FORMS: dict[str, Callable[[str], bool] | None] = {}


def _non_phi(key: str, value: str) -> bool:
    norm = _norm(key)
    if norm not in _NON_PHI_FORMS:
        if len(_NON_PHI_FORMS) > 4096:
            _NON_PHI_FORMS.clear()
        _NON_PHI_FORMS[norm] = _structural_form(norm)
    form = _NON_PHI_FORMS[norm]
    return form is not None and form(value)


class PhiGuard:
    """structlog processor that removes PHI from an event before it is rendered.

    Every string is scrubbed of remembered PHI values, except the value of a key that is
    structurally non-PHI (``calling_ae``, ``peer``, ``study_uid``, ``port``, ``job_id``, ...)
    when the value has that key's form: the daemon's own security log stays readable
    whatever a patient is called.
    """

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {key: self._clean(key, value) for key, value in event_dict.items()}

    def _clean(self, key: str, value: Any, depth: int = 0) -> Any:
        if _norm(key) in _PHI_KEYS_NORM:
            return REDACTED
        if _is_dicom_object(value):
            return f"[{type(value).__name__} not logged]"
        if isinstance(value, str):
            if key and key != "event" and _non_phi(key, value):
                return value
            return _PHI_VALUES.scrub(value)
        if isinstance(value, bool | int | float) or value is None:
            return value
        if depth > 4:
            return "[nested value not logged]"
        if isinstance(value, Mapping):
            return {str(k): self._clean(str(k), v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(key, v, depth + 1) for v in value]
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
# DA: '1917.03.17'"), possibly before rgcds has registered the dataset's PHI. The value may
# itself hold quotes and its neighbours' bytes (an element whose length field was mangled
# swallows the patient's name and ID, found by bench/fuzz.py at 100,000 cases), so all from
# the first quote to the last is redacted, not only up to the next quote.
_QUOTED = re.compile(r"""(?P<q>['"]).*(?P=q)""", re.DOTALL)


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
