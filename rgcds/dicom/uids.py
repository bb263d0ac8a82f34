"""DICOM UID validation and safe spool paths.

A UID that arrives over the network is untrusted input. Before any UID is used as a file
or directory name it passes :func:`validate_uid`: only digits and dots, no empty, leading-zero
or trailing components, at most 64 characters (PS3.5 §9.1). That excludes every path
separator, ``..``, NUL byte and drive letter, so :func:`uid_path` cannot leave its root.
"""

from __future__ import annotations

import re
from pathlib import Path

from rgcds.exceptions import InvalidUIDError

UID_MAX_LENGTH = 64
"""The longest valid UID (PS3.5 §9.1)."""

UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
"""A valid UID: at least two dot-separated numeric components without leading zeros."""


def is_valid_uid(value: object) -> bool:
    """Return whether ``value`` is a valid DICOM UID string.

    Parameters
    ----------
    value
        Anything; only a ``str`` can be valid. Trailing NUL padding is not stripped.

    Returns
    -------
    bool
        ``True`` for a UID of at most 64 characters matching :data:`UID_PATTERN`.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= UID_MAX_LENGTH
        and UID_PATTERN.fullmatch(value) is not None
    )


def validate_uid(value: object, what: str = "UID") -> str:
    """Return ``value`` unchanged if it is a valid UID, else raise.

    Parameters
    ----------
    value
        The candidate UID (a value read from a dataset or a command).
    what
        What the UID is, for the error message (e.g. ``"StudyInstanceUID"``).

    Returns
    -------
    str
        The UID.

    Raises
    ------
    InvalidUIDError
        If ``value`` is not a string of digits and dots, is longer than 64 characters, or
        has an empty or leading-zero component.
    """
    if not is_valid_uid(value):
        # Quote the value only when it is made of UID characters: a mangled element may
        # have swallowed its neighbours' bytes (a patient's name, an ID), never logged.
        text = str(value) if isinstance(value, str) else ""
        if text and len(text) <= 80 and all(c in "0123456789./" for c in text):
            shown = repr(text)
        elif value is None:
            shown = "(missing)"
        else:
            shown = f"(a {type(value).__name__} value of {len(str(value))} characters)"
        raise InvalidUIDError(
            f"The {what} {shown} is not a valid DICOM UID (digits and dots, at most "
            f"{UID_MAX_LENGTH} characters); the instance cannot be stored."
        )
    return str(value)


def uid_path(root: Path, *uids: str, suffix: str = "") -> Path:
    """Join validated UIDs under ``root`` and check that the result stays inside it.

    Parameters
    ----------
    root
        The directory the path must stay inside.
    *uids
        One or more UIDs, used as nested path components.
    suffix
        Appended to the last component (e.g. ``".dcm"``).

    Returns
    -------
    Path
        ``root / uid1 / uid2 / ... uidN + suffix``.

    Raises
    ------
    InvalidUIDError
        If a UID is invalid or the joined path would leave ``root``.
    """
    if not uids:
        raise InvalidUIDError("At least one UID is needed to build a spool path.")
    parts = [validate_uid(u) for u in uids]
    parts[-1] = parts[-1] + suffix
    # The check is lexical: a validated UID has no separator and is never "." or "..",
    # so no component can climb out of ``root``. (Resolving both paths cost two walks of
    # the file system per received instance; a symbolic link inside the daemon's own
    # 0700 spool is its operator's, not a sender's.)
    if any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts):
        raise InvalidUIDError(f"The UIDs {parts!r} would leave the spool; refusing to use them.")
    return root.joinpath(*parts)


__all__ = ["UID_MAX_LENGTH", "UID_PATTERN", "is_valid_uid", "uid_path", "validate_uid"]
