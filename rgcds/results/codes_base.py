"""Coding primitives of :mod:`rgcds.results.codes`: the private ``99RGCDS`` scheme, concept
constructors per scheme and stable private code values for free text.
"""

from __future__ import annotations

import hashlib
import re

from highdicom.sr import CodedConcept

PRIVATE_SCHEME = "99RGCDS"
"""Coding scheme designator of rgcds' private concepts."""

PRIVATE_SCHEME_NAME = "rgcds private concepts"


def private(value: str, meaning: str) -> CodedConcept:
    """A concept of the private ``99RGCDS`` scheme."""
    return CodedConcept(value=value, scheme_designator=PRIVATE_SCHEME, meaning=meaning)


def _sct(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value=value, scheme_designator="SCT", meaning=meaning)


def _dcm(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value=value, scheme_designator="DCM", meaning=meaning)


def ucum(value: str, meaning: str) -> CodedConcept:
    """A UCUM unit."""
    return CodedConcept(value=value, scheme_designator="UCUM", meaning=meaning)


def _slug(prefix: str, text: str) -> str:
    """A short, stable code value for free text (at most 16 characters, SH)."""
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8].upper()
    head = re.sub(r"[^A-Z0-9]", "", text.upper())[: 15 - len(prefix) - 8]
    return f"{prefix}-{head}{digest}"[:16]
