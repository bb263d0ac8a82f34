"""UID validation and path safety: nothing from the network may leave the spool."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgcds.dicom.uids import is_valid_uid, uid_path, validate_uid
from rgcds.exceptions import InvalidUIDError

GOOD = [
    "1.2",
    "1.2.840.10008.5.1.4.1.1.4",
    "2.25.329800735698586629295641978511506172918",
    "1.3.6.1.4.1.5962.1.2.4.20040826185059.54",
    "0.0",
    "1." + "2" * 62,  # exactly 64 characters
]

BAD = [
    "",
    "1",
    "..",
    "../../etc/passwd",
    "1.2/../../x",
    "1.2/3",
    "1.2\\3",
    "/1.2.3",
    "1.2.3.",
    ".1.2.3",
    "1..2",
    "1.02.3",
    "1.2.3\x00",
    "1.2.3 ",
    " 1.2.3",
    "1.2.a",
    "C:\\1.2",
    "1.2.3\n4",
    "1." + "2" * 63,  # 65 characters
    "\u0661.\u0662",  # non-ASCII (Arabic-Indic) digits
]


@pytest.mark.parametrize("uid", GOOD)
def test_valid_uids_pass(uid: str) -> None:
    assert is_valid_uid(uid)
    assert validate_uid(uid) == uid


@pytest.mark.parametrize("uid", BAD)
def test_invalid_uids_fail(uid: str) -> None:
    assert not is_valid_uid(uid)
    with pytest.raises(InvalidUIDError, match="not a valid DICOM UID"):
        validate_uid(uid, "StudyInstanceUID")


@pytest.mark.parametrize("value", [None, 1.2, b"1.2.3", ["1.2"]])
def test_non_strings_are_invalid(value: object) -> None:
    assert not is_valid_uid(value)
    with pytest.raises(ValueError):  # InvalidUIDError is also a ValueError
        validate_uid(value)


def test_uid_path_nests_under_root(tmp_path: Path) -> None:
    p = uid_path(tmp_path, "1.2.3", "1.2.3.4", "1.2.3.4.5", suffix=".dcm")
    assert p == tmp_path / "1.2.3" / "1.2.3.4" / "1.2.3.4.5.dcm"
    assert p.resolve().is_relative_to(tmp_path.resolve())


@pytest.mark.parametrize(
    "uids",
    [("..",), ("1.2.3", "../../.."), ("1.2.3", "/etc"), ("1.2", "1.2/../../../x"), ()],
)
def test_uid_path_refuses_traversal(tmp_path: Path, uids: tuple[str, ...]) -> None:
    with pytest.raises(InvalidUIDError):
        uid_path(tmp_path, *uids)
