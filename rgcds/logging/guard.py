"""The PHI guard: remembering a dataset's PHI, and the processors every event passes."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from rgcds.logging.phi_values import (
    _PHI_KEYS_NORM,
    _PHI_VALUES,
    PHI_KEYWORDS,
    REDACTED,
    _norm,
)


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
