"""The records the daemon and the ``process-study`` flow exchange: the run's parameters and its
result, typed on both sides of the seam (a leaf: it imports nothing of the flow)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FlowParameters:
    """The ``process-study`` flow run's parameters for one job: paths and ids only, never PHI.

    The daemon builds them (:func:`rgcds.service.processing.flow_parameters`); in embedded
    mode it calls the flow with :meth:`as_kwargs` and its own settings object, in server mode
    it submits :meth:`as_kwargs` (JSON) to the deployment, whose worker reads the settings
    from ``config_path``.

    Attributes
    ----------
    inputs
        The study's series folders (on storage the worker can read).
    work_dir
        The run's work directory.
    config_path
        The TOML configuration, or ``None`` (defaults and ``RGCDS_*`` variables).
    job_id
        The job store's job; 0 for an offline run (nothing queued).
    correlation_id
        Carried on every log line of the run.
    partner_inputs
        Series folders of the paired study of the same patient.
    notes
        Sentences for the report (how the study was paired, or why it was not).
    """

    inputs: tuple[str, ...]
    work_dir: str
    config_path: str | None = None
    job_id: int = 0
    correlation_id: str = ""
    partner_inputs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def as_kwargs(self) -> dict[str, object]:
        """The flow's keyword arguments (JSON types: lists, strings, numbers)."""
        return {
            "inputs": list(self.inputs),
            "work_dir": self.work_dir,
            "config_path": self.config_path,
            "job_id": self.job_id,
            "correlation_id": self.correlation_id,
            "partner_inputs": list(self.partner_inputs),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class FlowResult:
    """What a ``process-study`` flow run returns (PHI-free): ``status``, ``reason`` and
    ``stage_seconds`` as in the run's :class:`rgcds.pipeline.StudyOutcome`, and counts.

    Attributes
    ----------
    objects
        How many result objects were written.
    queued
        How many outbox items were queued (objects times destinations); 0 offline.
    """

    status: str
    reason: str | None
    objects: int
    queued: int
    stage_seconds: dict[str, float] = field(default_factory=dict)


__all__ = ["FlowParameters", "FlowResult"]
