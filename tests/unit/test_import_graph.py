"""The import graph: settings are leaves, so the listener does not load the numeric core.

Each check runs a fresh interpreter, because this test process has long since imported
everything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

RGCDS = Path(__file__).resolve().parents[2] / "rgcds"
HEAVY = ("SimpleITK", "scipy", "pandas", "onnxruntime", "prefect")


def _loaded(modules: str) -> tuple[list[str], list[str]]:
    """Import ``modules`` in a new interpreter; return (heavy top-level packages, rgcds modules)."""
    code = (
        f"import sys\nimport {modules}\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "own = sorted(m for m in sys.modules if m.split('.')[0] == 'rgcds')\n"
        "print(','.join(heavy))\nprint(','.join(own))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    heavy_line, own_line = done.stdout.splitlines()[-2:]
    return [m for m in heavy_line.split(",") if m], [m for m in own_line.split(",") if m]


@pytest.mark.parametrize(
    "modules", ["rgcds.config, rgcds.dicom.scp", "rgcds.settings", "rgcds.enums"]
)
def test_listener_and_config_load_no_numeric_core(modules: str) -> None:
    heavy, _ = _loaded(modules)
    assert heavy == [], f"import {modules} loads {heavy}; keep settings and the listener leaves"


def test_settings_import_nothing_domain_side() -> None:
    _, own = _loaded("rgcds.settings, rgcds.enums")
    domain = [m for m in own if m.split(".")[1:2] and m.split(".")[1] not in {"settings", "enums"}]
    assert domain == [], f"rgcds.settings pulls in {domain}"


def test_old_locations_still_export_the_section_models() -> None:
    from rgcds import settings
    from rgcds.analysis.pet import PetSettings
    from rgcds.inference.settings import InferenceSettings
    from rgcds.study.classify import ClassificationRule, ClassificationSettings
    from rgcds.study.enums import SeriesRole

    assert PetSettings is settings.PetSettings
    assert InferenceSettings is settings.InferenceSettings
    assert ClassificationSettings is settings.ClassificationSettings
    assert ClassificationRule is settings.ClassificationRule
    from rgcds.enums import SeriesRole as LeafRole

    assert SeriesRole is LeafRole


#: (package, packages it must not import): the arrows that used to run upward.
FORBIDDEN = {
    "imaging": ("rgcds.phantom", "rgcds.analysis"),
    "inference": ("rgcds.analysis",),
    "phantom": ("rgcds.analysis",),
    "settings": ("rgcds.analysis", "rgcds.study", "rgcds.inference", "rgcds.imaging"),
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_imports(package: str) -> None:
    bad = [
        f"{path.relative_to(RGCDS.parent)} imports {name}"
        for path in sorted((RGCDS / package).rglob("*.py"))
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package])
    ]
    assert bad == []
