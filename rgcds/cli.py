"""The ``rgcds`` command: one entry point, one module per subcommand in ``rgcds.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rgcds import RESEARCH_USE_ONLY, __version__
from rgcds.exceptions import RgcdsError
from rgcds.prefect_env import keep_prefect_offline

# Each module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
COMMAND_MODULES: tuple[str, ...] = (
    "rgcds.commands.check",
    "rgcds.commands.phantom",
    "rgcds.commands.demo",
    "rgcds.commands.serve",
    "rgcds.commands.status",
    "rgcds.commands.retry",
    "rgcds.commands.models",
    "rgcds.commands.process",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="rgcds",
        description="Radiogenomics clinical decision support for glioblastoma. "
        + RESEARCH_USE_ONLY,
    )
    parser.add_argument("--version", action="version", version=f"rgcds {__version__}")
    parser.add_argument(
        "--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--log-format", default=None, choices=["auto", "json", "console"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rgcds`` command line; returns the process exit status."""
    keep_prefect_offline()  # before any command imports Prefect; its subprocesses inherit it
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code: int = args._run(args)
    except RgcdsError as exc:
        print(f"rgcds {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
