"""``rgcds models``: list, verify, build-engine (run through the subcommand module)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from rgcds.commands import models
from rgcds.inference import BackendUnavailableError, tensorrt_import_error
from rgcds.inference.testing import card_data


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--log-format", default=None)
    models.add_arguments(parser)
    return models.run(parser.parse_args(argv))


def _model(root: Path, name: str, validated: bool = True) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(name.encode())
    data = card_data(folder / "model.onnx", model_id=name, validated=validated)
    (folder / "model.yaml").write_text(yaml.safe_dump(data))
    return folder


def test_list_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _model(tmp_path, "one")
    _model(tmp_path, "two", validated=False)
    assert _run(["--models-root", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert "one 0.0.1 [segmentation] (validated, research use only)" in out
    assert "two 0.0.1 [segmentation] (NOT VALIDATED" in out
    assert _run(["--models-root", str(tmp_path), "--json", "verify"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in rows] == [True, True]
    (tmp_path / "two" / "model.onnx").write_bytes(b"other")
    assert _run(["--models-root", str(tmp_path), "verify"]) == 1
    out = capsys.readouterr().out
    assert "FAIL two: The weights" in out and "OK   one" in out


@pytest.mark.skipif(tensorrt_import_error() is None, reason="TensorRT is importable here")
def test_build_engine_without_tensorrt_is_clear(tmp_path: Path) -> None:
    _model(tmp_path, "one")
    with pytest.raises(BackendUnavailableError, match="TensorRT is not importable"):
        _run(["--models-root", str(tmp_path), "build-engine", "one"])
