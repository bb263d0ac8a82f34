"""docs/architecture.md lets a reader find the module of any log line: every event is listed.

The events are read from the source (``logger.info("event", ...)`` and its levels, on the
names the modules log with); each must appear in the document's appendix with the module
that writes it. A new log line without its row fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
LOGGER_NAMES = {"logger", "log", "_log", "_logger"}


def _events() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "rgcds").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS):
                continue
            base = node.func.value
            name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
            if name in LOGGER_NAMES and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.setdefault(node.args[0].value, set()).add(
                    str(path.relative_to(ROOT)))
    return found


def test_every_log_event_has_its_module_in_the_architecture_doc() -> None:
    rows: dict[str, str] = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        if line.startswith("| `") and "` | " in line:
            event, _, modules = line[3:].partition("` | ")
            rows[event.replace("\\|", "|")] = modules
    events = _events()
    assert len(events) > 100  # the scan finds the daemon's events at all
    missing = sorted(e for e in events if e not in rows)
    assert not missing, f"log events missing from docs/architecture.md: {missing}"
    wrong = sorted(e for e, mods in events.items()
                   if any(m not in rows[e] for m in mods))
    assert not wrong, f"events whose module is not named in docs/architecture.md: {wrong}"
