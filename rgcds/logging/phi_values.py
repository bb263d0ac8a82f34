"""The PHI value matcher: the remembered values, their tokens, and the scrubbing of text.

See :mod:`rgcds.logging` for how values are matched; this module holds the one
process-wide set of remembered values (``_PHI_VALUES``).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

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
