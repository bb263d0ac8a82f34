"""Settings: the TOML contract, env overrides, and errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgcds.config import CallingAE, load_settings
from rgcds.exceptions import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "rgcds.toml.example"

CONTRACT = """
[listener]
ae_title = "RGCDS"
host = "0.0.0.0"
port = 11112
allowed_calling_aets = ["SCANNER1", "PACS"]
[storage]
root = "/var/lib/rgcds"
[trigger]
stable_seconds = 10
[[destinations]]
name = "pacs"
ae_title = "PACS"
host = "10.0.0.5"
port = 104
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rgcds.toml"
    path.write_text(text)
    return path


def test_contract_keys_load(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, CONTRACT))
    assert s.listener.ae_title == "RGCDS"
    assert s.listener.port == 11112
    assert s.listener.allowed_calling_aets == ["SCANNER1", "PACS"]
    assert s.storage.root == Path("/var/lib/rgcds")
    assert s.trigger.stable_seconds == 10
    assert [(d.name, d.ae_title, d.host, d.port) for d in s.destinations] == [
        ("pacs", "PACS", "10.0.0.5", 104)
    ]


def test_example_file_is_valid() -> None:
    s = load_settings(EXAMPLE)
    assert s.listener.ae_title == "RGCDS"


def test_defaults_without_file() -> None:
    s = load_settings(None)
    assert s.listener.port == 11112
    assert s.destinations == []


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGCDS_LISTENER__PORT", "4242")
    monkeypatch.setenv("RGCDS_TRIGGER__STABLE_SECONDS", "3")
    s = load_settings(write(tmp_path, CONTRACT))
    assert s.listener.port == 4242
    assert s.trigger.stable_seconds == 3
    assert s.listener.ae_title == "RGCDS"  # the rest of the section still comes from the file


def test_pinned_calling_ae(tmp_path: Path) -> None:
    text = CONTRACT.replace(
        '["SCANNER1", "PACS"]', '["SCANNER1", {ae_title = "PACS", host = "10.0.0.5"}]'
    )
    s = load_settings(write(tmp_path, text))
    assert s.listener.allowed_calling_aets[1] == CallingAE(ae_title="PACS", host="10.0.0.5")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[listener]\nportt = 1\n", "unknown key 'listener.portt'"),
        ("[nonsense]\na = 1\n", "unknown key 'nonsense'"),
        ("[listener]\nport = 70000\n", "'listener.port'"),
        ("[listener]\nae_title = \"THIS_AE_TITLE_IS_TOO_LONG\"\n", "'listener.ae_title'"),
        ("[trigger]\nstable_seconds = -1\n", "'trigger.stable_seconds'"),
        ("[storage]\nduplicate_policy = \"maybe\"\n", "'storage.duplicate_policy'"),
        (
            "[[destinations]]\nname = \"x\"\nae_title = \"A\"\nhost = \"h\"\n",
            "'destinations.0.port'",
        ),
    ],
)
def test_bad_values_name_key_and_file(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_bad_env_value_names_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGCDS_LISTENER__PORT", "not-a-port")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, CONTRACT))
    assert "RGCDS_LISTENER__PORT" in str(info.value)
    assert "'listener.port'" in str(info.value)


def test_missing_and_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[listener\n"))


def test_duplicate_destination_names(tmp_path: Path) -> None:
    text = CONTRACT + '[[destinations]]\nname = "pacs"\nae_title = "B"\nhost = "h"\nport = 1\n'
    with pytest.raises(ConfigError, match="unique"):
        load_settings(write(tmp_path, text))
