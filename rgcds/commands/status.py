"""``rgcds status [--json] --config PATH``: list studies and their states (UIDs and counts only)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from rgcds.commands import add_config_argument, settings_and_logging
from rgcds.config import Settings
from rgcds.store import StudySummary, job_store_path
from rgcds.store.reserve import open_job_store

NAME = "status"
HELP = "List received studies: UID, state, series and instance counts, times, last error."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON array")


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def summary_dict(s: StudySummary) -> dict[str, Any]:
    """The JSON form of one study line (no PHI: the job store holds none)."""
    return {
        "study_instance_uid": s.study_uid,
        "job_id": s.job_id,
        "state": s.state.value,
        "jobs": s.jobs,
        "series": s.series_count,
        "instances": s.instance_count,
        "first_received": _iso(s.first_received),
        "last_received": _iso(s.last_received),
        "last_error": s.last_error,
    }


def collect(settings: Settings) -> list[dict[str, Any]]:
    """Read the study lines from the job store under ``storage.root`` (empty if none yet)."""
    path = job_store_path(settings.storage.root)
    if not path.exists():
        return []
    with open_job_store(settings.storage.root) as store:  # a full disk: releases the reserve
        return [summary_dict(s) for s in store.study_summaries()]


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    rows = collect(settings)
    if args.json:
        print(json.dumps(rows, indent=None))
        return 0
    if not rows:
        print(f"no studies in {job_store_path(settings.storage.root)}")
        return 0
    header = f"{'STUDY INSTANCE UID':64} {'STATE':10} {'SER':>4} {'INST':>6} " \
             f"{'FIRST RECEIVED':25} {'LAST RECEIVED':25} LAST ERROR"
    print(header)
    for r in rows:
        print(
            f"{r['study_instance_uid']:64} {r['state']:10} {r['series']:>4} {r['instances']:>6} "
            f"{r['first_received'] or '-':25} {r['last_received'] or '-':25} "
            f"{r['last_error'] or ''}"
        )
    return 0
