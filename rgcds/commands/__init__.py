"""Subcommands of the ``rgcds`` command line, one module each."""

from __future__ import annotations

import argparse
from pathlib import Path

from rgcds.config import Settings, load_settings
from rgcds.logging import configure_logging


def add_config_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """Add the common ``--config PATH`` option."""
    parser.add_argument(
        "--config", type=Path, required=required, metavar="PATH", help="TOML configuration file"
    )


def settings_and_logging(args: argparse.Namespace) -> Settings:
    """Load the settings named by ``--config`` and configure logging from them."""
    settings = load_settings(getattr(args, "config", None))
    configure_logging(
        args.log_level or settings.logging.level, args.log_format or settings.logging.format
    )
    return settings


__all__ = ["add_config_argument", "settings_and_logging"]
