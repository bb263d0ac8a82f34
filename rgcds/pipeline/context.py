"""The records a study's processing starts from and ends with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rgcds.config import Settings


@dataclass(frozen=True)
class StudyContext:
    """What one processing run of a study needs.

    Attributes
    ----------
    inputs
        DICOM files or folders of the study.
    work_dir
        The run's work directory (intermediate results, written objects).
    settings
        The daemon's settings.
    job_id
        The job store's job id, when run by the daemon (0 offline).
    correlation_id
        Carried on every log line of the run.
    partner_inputs
        The series folders of a paired study of the same patient (the MR study of a PET/CT
        study, or the reverse), analysed together with ``inputs``.
    notes
        Sentences for the report from before the run (how the study was paired).
    analysed_at
        The analysis time every result object carries (content, series and instance
        creation dates and times); ``None``: the time of the run. Fixed, it makes an offline
        run reproducible byte for byte (``rgcds demo/process --analysed-at``).
    """

    inputs: tuple[Path, ...]
    work_dir: Path
    settings: Settings
    job_id: int = 0
    correlation_id: str = ""
    partner_inputs: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()
    analysed_at: datetime | None = None

    def path(self, name: str) -> Path:
        """A file in the work directory (its folder created)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir / name


@dataclass(frozen=True)
class StudyOutcome:
    """What a run produced.

    Attributes
    ----------
    status
        ``complete`` or ``not analysed``.
    reason
        Why the study was not analysed, else ``None``.
    written
        ``(SOP Instance UID, path)`` of every result object, SEG first.
    stage_seconds
        Wall time per stage.
    summary
        A PHI-free summary (volumes, predictions) for logs and the command line.
    failed_stage
        The step that failed unexpectedly (a "not analysed" study after an error), else
        ``None``.
    error_type
        The exception's type name of that failure, else ``None``.
    """

    status: str
    reason: str | None
    written: tuple[tuple[str, Path], ...]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)
    failed_stage: str | None = None
    error_type: str | None = None


__all__ = ["StudyContext", "StudyOutcome"]
