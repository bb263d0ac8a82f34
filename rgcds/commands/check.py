"""``rgcds check --config PATH``: validate the configuration (and, later, peers)."""

from __future__ import annotations

import argparse
import json

from rgcds.commands import add_config_argument, settings_and_logging

NAME = "check"
HELP = "Validate the configuration; exit 1 with the reason when anything is wrong."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--offline", action="store_true", help="do not contact destinations (no C-ECHO)"
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    results = [("config", True, f"{args.config} is valid")]
    ok = all(r[1] for r in results)
    if args.json:
        print(json.dumps([{"check": n, "ok": o, "detail": d} for n, o, d in results]))
    else:
        for name, passed, detail in results:
            print(f"{'OK  ' if passed else 'FAIL'} {name}: {detail}")
        print(f"listener {settings.listener.ae_title}@{settings.listener.host}:"
              f"{settings.listener.port}, {len(settings.destinations)} destination(s)")
    return 0 if ok else 1
