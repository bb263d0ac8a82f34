"""One study, end to end: the stages the Prefect flow wraps, and a plain runner.

Stages are plain functions (:mod:`rgcds.pipeline.stages`); :func:`run_study` calls them in
order through a *stage runner*: directly for ``rgcds process`` and tests, as Prefect tasks
in :mod:`rgcds.pipeline.flow`. Intermediate results go to the study's work directory so
a re-run resumes after the last expensive stage that finished.
"""

from __future__ import annotations

from rgcds.pipeline.context import StudyContext, StudyOutcome
from rgcds.pipeline.runner import StageRunner, direct_runner, run_study

__all__ = ["StageRunner", "StudyContext", "StudyOutcome", "direct_runner", "run_study"]
