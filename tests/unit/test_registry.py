"""Model registry: card schema errors, checksum mismatches, validated flag."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rgcds.exceptions import ModelError
from rgcds.inference import (
    ChecksumMismatchError,
    ModelCardError,
    ModelNotFoundError,
    ModelRegistry,
    load_card,
)
from rgcds.inference.card import parse_card
from rgcds.inference.registry import DEFAULT_MODELS_ROOT
from rgcds.inference.testing import card_data


def _folder(root: Path, name: str = "tiny", **card: object) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    weights = folder / "model.onnx"
    weights.write_bytes(b"not really onnx, enough for checksums " + name.encode())
    data = card_data(weights, model_id=name, **card)  # type: ignore[arg-type]
    (folder / "model.yaml").write_text(yaml.safe_dump(data))
    return folder


def _edit(folder: Path, change: dict[str, object]) -> None:
    path = folder / "model.yaml"
    data = yaml.safe_load(path.read_text())
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    path.write_text(yaml.safe_dump(data))


def test_valid_card_loads_with_checksum(tmp_path: Path) -> None:
    card = load_card(_folder(tmp_path))
    assert card.id == "tiny"
    assert card.validated is True
    assert card.weights_path == (tmp_path / "tiny" / "model.onnx").resolve()
    assert set(card.label_values) == {1, 2, 3}
    assert card.label_values[1].category.code == "49755003"  # default category


def test_unknown_key_is_named_in_a_sentence(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _edit(folder, {"inputs.spacing": [1, 1, 1]})
    with pytest.raises(ModelCardError) as info:
        load_card(folder)
    message = str(info.value)
    assert "'inputs.spacing' is not a known key" in message
    assert "does not follow the schema" in message
    assert message.endswith(".")


def test_missing_key_is_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _edit(folder, {"research_use_only": None})
    with pytest.raises(ModelCardError, match="'research_use_only' is required but missing"):
        load_card(folder)


def test_bad_values_are_explained(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _edit(folder, {"task": "regression", "weights.sha256": "abc"})
    with pytest.raises(ModelCardError) as info:
        load_card(folder)
    assert "'task' is invalid" in str(info.value)
    assert "'weights.sha256' is invalid" in str(info.value)


def test_softmax_classes_must_cover_channels(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _edit(folder, {"outputs.classes": [{"index": 0, "label": 0, "name": "bg"},
                                       {"index": 2, "label": 1, "name": "x"}]})
    with pytest.raises(ModelCardError, match="number the output channels"):
        load_card(folder)


def test_labels_need_segment_definitions(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _edit(folder, {"outputs.classes": [
        {"index": 0, "label": 0, "name": "bg"}, {"index": 1, "label": 7, "name": "x"}]})
    with pytest.raises(ModelCardError, match=r"label value\(s\) \[7\]"):
        load_card(folder)


def test_sigmoid_regions_need_regions(tmp_path: Path) -> None:
    folder = _folder(tmp_path, mode="sigmoid_regions")
    assert load_card(folder).outputs.n_channels == 3
    _edit(folder, {"outputs.regions": []})
    with pytest.raises(ModelCardError, match="must list the region channels"):
        load_card(folder)


def test_not_a_mapping_and_not_yaml(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "model.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ModelCardError, match="must be a YAML mapping"):
        load_card(folder)
    (folder / "model.yaml").write_text("id: [unclosed\n")
    with pytest.raises(ModelCardError, match="cannot be read as YAML"):
        load_card(folder)
    with pytest.raises(ModelCardError, match="must not set 'path'"):
        parse_card({"path": "/x"}, folder / "model.yaml")


def test_missing_card_and_missing_weights(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelCardError, match=r"has no model\.yaml"):
        load_card(tmp_path / "empty")
    folder = _folder(tmp_path)
    (folder / "model.onnx").unlink()
    with pytest.raises(ModelCardError, match="which does not exist"):
        load_card(folder)


def test_checksum_mismatch_names_both_hashes(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    expected = yaml.safe_load((folder / "model.yaml").read_text())["weights"]["sha256"]
    (folder / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError) as info:
        load_card(folder)
    message = str(info.value)
    assert expected in message
    assert "corrupt or was replaced" in message
    assert isinstance(info.value, ModelError) and isinstance(info.value, ValueError)
    # schema-only reading still works
    assert load_card(folder, check_checksum=False).id == "tiny"


def test_registry_list_get_verify(tmp_path: Path) -> None:
    _folder(tmp_path, "alpha")
    _folder(tmp_path, "beta", validated=False)
    broken = _folder(tmp_path, "gamma")
    (broken / "model.onnx").write_bytes(b"changed")
    bad = _folder(tmp_path, "delta")
    _edit(bad, {"colour": "blue"})
    (tmp_path / "not-a-model").mkdir()

    registry = ModelRegistry(tmp_path)
    assert [c.id for c in registry.list()] == ["alpha", "beta", "gamma"]
    assert registry.get("alpha").validated
    assert registry.get("beta").validated is False
    with pytest.raises(ChecksumMismatchError):
        registry.get("gamma")
    with pytest.raises(ModelCardError):
        registry.get("delta")
    with pytest.raises(ModelNotFoundError, match="No model with id 'nope'"):
        registry.get("nope")

    results = {r.folder.name: r for r in registry.verify()}
    assert set(results) == {"alpha", "beta", "delta", "gamma"}
    assert results["alpha"].ok and results["alpha"].validated
    assert results["beta"].ok and not results["beta"].validated
    assert "NO validation metrics" in results["beta"].message
    assert not results["gamma"].ok and "sha256" in results["gamma"].message
    assert not results["delta"].ok and "'colour' is not a known key" in results["delta"].message


def test_missing_root_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        ModelRegistry(tmp_path / "nowhere").list()


def test_default_root_is_the_repository_models_folder() -> None:
    assert DEFAULT_MODELS_ROOT.name == "models"
    assert ModelRegistry().root == DEFAULT_MODELS_ROOT
