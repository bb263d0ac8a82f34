"""nnU-Net's rules as rgcds reproduces them, and what the nnU-Net card and importer refuse.

Agreement with nnUNetPredictor itself is tested in ``tests/peers/test_nnunet_agreement.py``;
here are the rules whose values nnU-Net's own code documents, and the refusals that need no
PyTorch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rgcds.inference.card import parse_card
from rgcds.inference.errors import InferenceInputError, ModelCardError
from rgcds.inference.import_nnunet import (
    ImportRefusedError,
    ImportRequest,
    _guess_channels,
    _guess_tissue,
    import_nnunet,
    parse_label_map,
)
from rgcds.inference.nnunet import (
    compute_new_shape,
    crop_to_nonzero,
    nnunet_gaussian,
    separate_z,
    sliding_steps,
)

SHA = "0" * 64


def test_sliding_window_steps_follow_nnunet() -> None:
    # nnU-Net's own example: image 110, patch 64, step 0.5 -> starts 0, 23, 46.
    assert sliding_steps(110, 64, 0.5) == [0, 23, 46]
    assert sliding_steps(64, 64, 0.5) == [0]
    assert sliding_steps(65, 64, 0.5) == [0, 1]


def test_separate_z_rule() -> None:
    assert separate_z(None, (5.0, 1.0, 1.0), (1.0, 1.0, 1.0), 3.0) == (True, 0)
    assert separate_z(None, (1.0, 1.0, 1.0), (1.0, 1.0, 4.0), 3.0) == (True, 2)
    assert separate_z(None, (1.0, 1.0, 1.0), (1.5, 1.5, 1.5), 3.0) == (False, None)
    assert separate_z(None, (3.0, 1.0, 1.0), (1.0, 1.0, 1.0), 3.0) == (False, None)  # not > 3
    assert separate_z(False, (5.0, 1.0, 1.0), (1.0, 1.0, 1.0), 3.0) == (False, None)
    # Two low-resolution axes: nnU-Net resamples all together.
    assert separate_z(None, (0.24, 1.25, 1.25), (1.0, 1.0, 1.0), 3.0) == (False, None)


def test_new_shape_and_gaussian() -> None:
    assert compute_new_shape((12, 84, 76), (5.0, 1.0, 1.0), (1.5, 1.5, 1.5)) == (40, 56, 51)
    g = nnunet_gaussian((8, 10, 8))
    assert g.dtype == np.float16 and float(g.max()) == 10.0 and float(g[4, 5, 4]) == 10.0
    assert (g > 0).all() and not g.flags.writeable


def test_an_all_zero_volume_is_refused_with_a_reason() -> None:
    with pytest.raises(InferenceInputError, match="zero everywhere"):
        crop_to_nonzero(np.zeros((2, 4, 4, 4), dtype=np.float32))


def _nnunet_card(**changes: Any) -> dict[str, Any]:
    weights = {"file": "fold_0.onnx", "format": "onnx", "sha256": SHA}
    card: dict[str, Any] = {
        "id": "site-model", "version": "1", "name": "n", "task": "segmentation",
        "research_use_only": True, "intended_use": "research", "training_data": "t",
        "weights": weights,
        "inputs": {"channels": ["T1", "T1c"], "spacing_mm": [1, 1, 1], "patch_size": [8, 8, 8],
                   "normalisation": {"method": "none"}},
        "outputs": {"mode": "softmax", "classes": [{"index": 0, "label": 0, "name": "bg"},
                                                   {"index": 1, "label": 3, "name": "et"}],
                    "segments": [{"label": 3, "name": "ET",
                                  "type": {"code": "C113842", "scheme": "NCIt",
                                           "meaning": "Enhancing Lesion"}}]},
        "nnunet": {
            "dataset_name": "D", "trainer": "nnUNetTrainer", "plans_identifier": "nnUNetPlans",
            "configuration": "3d_fullres", "channel_names": ["t1", "t1ce"],
            "labels": {"background": 0, "et": 1},
            "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
            "spacing": [1, 1, 1], "patch_size": [8, 8, 8],
            "normalization_schemes": ["ZScoreNormalization", "ZScoreNormalization"],
            "use_mask_for_norm": [True, True],
            "resampling_data": {"order": 3}, "resampling_probabilities": {"order": 1},
            "mirror_axes": [0, 1, 2],
            "folds": [{"fold": 0, "weights": weights, "source_sha256": SHA}],
        },
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            card[section][field] = value
        else:
            card[section] = value
    return card


def test_nnunet_card_is_checked() -> None:
    parse_card(_nnunet_card(), Path("model.yaml"))
    with pytest.raises(ModelCardError, match=r"inputs\.channels maps 1"):
        parse_card(_nnunet_card(inputs__channels=["T1"]), Path("model.yaml"))
    with pytest.raises(ModelCardError, match="one entry per channel"):
        parse_card(_nnunet_card(nnunet__use_mask_for_norm=[True]), Path("model.yaml"))
    with pytest.raises(ModelCardError, match=r"normalization_schemes\.0' is invalid"):
        parse_card(_nnunet_card(nnunet__normalization_schemes=["RGBTo01Normalization"] * 2),
                   Path("model.yaml"))
    with pytest.raises(ModelCardError, match="permutation"):
        parse_card(_nnunet_card(nnunet__transpose_forward=[0, 0, 2]), Path("model.yaml"))
    with pytest.raises(ModelCardError, match=r"first of nnunet\.folds"):
        other = {"file": "other.onnx", "format": "onnx", "sha256": SHA}
        parse_card(_nnunet_card(weights=other), Path("model.yaml"))


def test_channel_and_tissue_names_are_read_or_refused() -> None:
    assert _guess_channels(["T1", "T1ce", "T2", "FLAIR"]) == ("T1", "T1c", "T2", "FLAIR")
    assert _guess_channels(["t1n", "t1c", "t2w", "t2f_flair"]) == ("T1", "T1c", "T2", "FLAIR")
    assert _guess_channels(["CT"]) is None
    assert _guess_tissue("edema") == "oedema"
    assert _guess_tissue("enhancing tumor") == "enhancing"
    assert _guess_tissue("non-enhancing tumor core") == "necrosis"
    assert _guess_tissue("lesion") is None
    assert parse_label_map("1=oedema, 2=necrosis,3=enhancing") == {
        1: "oedema", 2: "necrosis", 3: "enhancing"}
    with pytest.raises(ImportRefusedError, match="VALUE=TISSUE"):
        parse_label_map("1=tumour")


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T1", "1": "weird"}, "labels": {"background": 0, "et": 1}}))
    (folder / "plans.json").write_text("{}")
    (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
    return folder


@pytest.mark.parametrize(("changes", "message"), [
    ({"license": None}, "--license is required"),
    ({"training_data": ""}, "--training-data is required"),
    ({}, "Give --channels"),
    ({"channels": ("T1", "PD")}, "--channels must name 2"),
    ({"channels": ("T1", "T1c"), "folds": ("3",)}, "no fold_3"),
])
def test_the_importer_refuses_what_the_folder_cannot_say(tmp_path: Path,
                                                         changes: dict[str, Any],
                                                         message: str) -> None:
    base: dict[str, Any] = {"source": _folder(tmp_path), "out": tmp_path / "out",
                            "model_id": "m", "folds": None, "license": "l",
                            "training_data": "t"}
    base.update(changes)
    with pytest.raises(ImportRefusedError, match=message):
        import_nnunet(ImportRequest(**base))
    assert not (tmp_path / "out").exists()


def test_without_pytorch_the_import_says_what_to_install(tmp_path: Path) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("PyTorch is installed here")
    request = ImportRequest(source=_folder(tmp_path), out=tmp_path / "out", model_id="m",
                            folds=None, license="l", training_data="t", channels=("T1", "T1c"))
    with pytest.raises(ImportRefusedError, match="needs PyTorch and nnunetv2"):
        import_nnunet(request)
