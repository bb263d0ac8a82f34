"""rgcds turns Prefect's phone-home defaults off itself, over the environment's wishes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rgcds.prefect_env import OFFLINE_ENVIRONMENT, keep_prefect_offline


def test_offline_environment_overrides_the_operators() -> None:
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "true", "DO_NOT_TRACK": "0", "OTHER": "x"}
    keep_prefect_offline(env)
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["DO_NOT_TRACK"] == "1"
    assert env["OTHER"] == "x"
    assert set(OFFLINE_ENVIRONMENT) <= set(env)


def test_the_cli_sets_it_before_any_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rgcds.cli import main

    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")
    monkeypatch.delenv("DO_NOT_TRACK", raising=False)
    assert main([]) == 2  # no command: help
    for key, value in OFFLINE_ENVIRONMENT.items():
        assert os.environ[key] == value


def test_prefect_reads_the_switches_off() -> None:
    """In a fresh process (Prefect reads settings at import): the settings are off."""
    code = (
        "from rgcds.prefect_env import keep_prefect_offline; keep_prefect_offline()\n"
        "from prefect.settings import get_current_settings\n"
        "from prefect._internal.analytics import is_telemetry_enabled\n"
        "s = get_current_settings()\n"
        "print(s.server.analytics_enabled, s.cloud.enable_orchestration_telemetry,\n"
        "      s.telemetry.enable_resource_metrics, is_telemetry_enabled())\n"
    )
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "true"}
    env.pop("DO_NOT_TRACK", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
        check=True,
    )
    assert out.stdout.split() == ["False", "False", "False", "False"], out.stderr
