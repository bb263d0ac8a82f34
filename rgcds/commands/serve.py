"""``rgcds serve --config PATH``: run the daemon (listener, trigger, processing, delivery)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rgcds.commands import add_config_argument, settings_and_logging
from rgcds.config import Settings

if TYPE_CHECKING:
    from rgcds.service import Daemon

NAME = "serve"
HELP = "Run the DICOM listener, study trigger, processing and delivery until SIGTERM/SIGINT."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def build_daemon(settings: Settings) -> Daemon:
    """The daemon ``rgcds serve`` runs, with its processing and delivery slots filled.

    ``Daemon.processor`` (``process(job) -> None``) and ``Daemon.deliver``
    (``deliver() -> None``) stay empty until the pipeline and the exporter are plugged in
    here; queued studies then wait in the job store.
    """
    from rgcds.service import Daemon

    return Daemon(settings)


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    build_daemon(settings).run_forever()
    return 0
