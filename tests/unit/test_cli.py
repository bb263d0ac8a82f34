"""The ``rgcds`` entry point: version, config check, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rgcds import __version__
from rgcds.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "rgcds.toml.example"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_check_valid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rgcds.inference.testing import write_model_folder

    models = tmp_path / "models"
    write_model_folder(models / "tiny")
    monkeypatch.setenv("RGCDS_STORAGE__ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("RGCDS_INFERENCE__MODELS_ROOT", str(models))
    assert main(["check", "--config", str(EXAMPLE), "--offline"]) == 0
    out = capsys.readouterr().out
    assert "config" in out and "storage" in out


def test_check_invalid_config_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[listener]\nport = 'eleven'\n")
    assert main(["check", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "listener.port" in err and str(bad) in err


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rgcds.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("rgcds ")
