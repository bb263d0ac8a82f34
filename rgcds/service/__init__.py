"""Daemon life cycle: the listener, the study trigger and the processing hook."""

from __future__ import annotations

from rgcds.service.daemon import Daemon, StudyQueuedHook
from rgcds.service.trigger import (
    GRACE_SECONDS,
    StudyTrigger,
    series_is_complete,
    study_is_complete,
)

__all__ = [
    "GRACE_SECONDS",
    "Daemon",
    "StudyQueuedHook",
    "StudyTrigger",
    "series_is_complete",
    "study_is_complete",
]
