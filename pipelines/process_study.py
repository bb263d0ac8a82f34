"""Prefect deployment entrypoint of the flow ``process-study`` (:mod:`rgcds.pipeline.flow`).

The flow lives in the package; this file is what a deployment names, so that a Prefect
server's workers load it from a checkout::

    prefect deploy pipelines/process_study.py:process_study -n rgcds -p rgcds
"""

from __future__ import annotations

from rgcds.pipeline.flow import GPU_TAG as GPU_TAG
from rgcds.pipeline.flow import TRANSIENT_STAGES as TRANSIENT_STAGES
from rgcds.pipeline.flow import PrefectStageRunner as PrefectStageRunner
from rgcds.pipeline.flow import process_study as process_study

__all__ = ["GPU_TAG", "TRANSIENT_STAGES", "PrefectStageRunner", "process_study"]
