"""``rgcds serve --config PATH``: run the DICOM listener and the study trigger until stopped."""

from __future__ import annotations

import argparse

from rgcds.commands import add_config_argument, settings_and_logging

NAME = "serve"
HELP = "Run the DICOM listener and study trigger until SIGTERM/SIGINT (graceful stop)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    from rgcds.service import Daemon

    Daemon(settings).run_forever()
    return 0
