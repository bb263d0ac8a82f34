"""Daemon life cycle: listener, study trigger, processing workers, delivery, operations."""

from __future__ import annotations

from rgcds.service.daemon import (
    TRIGGER_STALL_SECONDS,
    Daemon,
    Deliverer,
    Processor,
    StudyQueuedHook,
)
from rgcds.service.metrics import Metrics
from rgcds.service.notify import SystemdNotifier
from rgcds.service.trigger import (
    GRACE_SECONDS,
    StudyTrigger,
    series_is_complete,
    study_is_complete,
)

__all__ = [
    "GRACE_SECONDS",
    "TRIGGER_STALL_SECONDS",
    "Daemon",
    "Deliverer",
    "Metrics",
    "Processor",
    "StudyQueuedHook",
    "StudyTrigger",
    "SystemdNotifier",
    "series_is_complete",
    "study_is_complete",
]
