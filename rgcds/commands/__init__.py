"""Subcommands of the ``rgcds`` command line, one module each."""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rgcds import RESEARCH_USE_ONLY
from rgcds.config import Settings, load_settings
from rgcds.logging import configure_logging


def add_config_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """Add the common ``--config PATH`` option."""
    parser.add_argument(
        "--config", type=Path, required=required, metavar="PATH", help="TOML configuration file"
    )


def _analysis_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date and time, e.g. 2026-01-02T03:04:05Z"
        ) from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).replace(microsecond=0)


def add_analysed_at_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--analysed-at``: a fixed analysis time, so that a rerun is byte-identical."""
    parser.add_argument(
        "--analysed-at", type=_analysis_time, default=None, metavar="ISO",
        help="the analysis time the result objects carry (ISO 8601, UTC if no zone is "
        "given; default: now); fixed, a rerun writes byte-identical objects",
    )


def settings_and_logging(args: argparse.Namespace) -> Settings:
    """Load the settings named by ``--config`` and configure logging from them."""
    settings = load_settings(getattr(args, "config", None))
    configure_logging(
        args.log_level or settings.logging.level, args.log_format or settings.logging.format
    )
    return settings


def publish_outcome(outcome: Any, out: Path, **extra: Any) -> tuple[dict[str, Any], Path]:
    """Copy a run's result objects to ``out/results`` and write ``out/outcome.json``.

    ``outcome`` is a :class:`rgcds.pipeline.StudyOutcome`; ``extra`` adds keys to the record.
    Returns the record and the results folder.
    """
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    for _uid, path in outcome.written:
        shutil.copy2(path, results / path.name)
    record = {
        "status": outcome.status,
        "reason": outcome.reason,
        "objects": [str(results / p.name) for _u, p in outcome.written],
        "stage_seconds": outcome.stage_seconds,
        "summary": outcome.summary,
        "note": RESEARCH_USE_ONLY,
        **extra,
    }
    (out / "outcome.json").write_text(json.dumps(record, indent=2, default=str))
    return record, results


def print_outcome(outcome: Any) -> None:
    """The status line and the PHI-free summary of a run, for a terminal."""
    print(f"status: {outcome.status}" + (f" ({outcome.reason})" if outcome.reason else ""))
    for key, value in outcome.summary.items():
        print(f"{key}: {value}")


__all__ = [
    "add_analysed_at_argument",
    "add_config_argument",
    "print_outcome",
    "publish_outcome",
    "settings_and_logging",
]
