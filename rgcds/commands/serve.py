"""``rgcds serve --config PATH``: run the daemon (listener, trigger, processing, delivery)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rgcds.commands import add_config_argument, settings_and_logging
from rgcds.config import Settings

if TYPE_CHECKING:
    from rgcds.service import Daemon
    from rgcds.store import JobStore

NAME = "serve"
HELP = "Run the DICOM listener, study trigger, processing and delivery until SIGTERM/SIGINT."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def build_daemon(
    settings: Settings, config_path: Path | None = None, *, port: int | None = None
) -> Daemon:
    """The daemon ``rgcds serve`` runs, with its processing and delivery slots filled.

    Processing runs the ``process-study`` flow for each queued job (in-process, or on a
    Prefect server's workers); delivery sends the outbox to the destinations.
    """
    from rgcds.pipeline.delivery import make_deliverer
    from rgcds.service import Daemon
    from rgcds.service.processing import make_failure_reporter, make_processor

    daemon = Daemon(settings, port=port)

    def jobs() -> JobStore:
        if daemon.jobs is None:
            raise RuntimeError("The daemon's job store is not open yet (start() opens it).")
        return daemon.jobs

    daemon.processor = make_processor(settings, config_path, jobs, daemon.metrics)
    daemon.on_failure = make_failure_reporter(settings, jobs)
    daemon.deliver = make_deliverer(settings, jobs, daemon.metrics)
    return daemon


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    build_daemon(settings, args.config).run_forever()
    return 0
