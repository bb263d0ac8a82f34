"""Tiny ONNX models and cards for tests and examples (needs the ``onnx`` package).

Nothing here is used at run time; the ``onnx`` package is imported only when a model is built.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rgcds.inference.card import CARD_FILENAME


def conv_model(
    path: Path,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    opset: int = 17,
    input_name: str = "image",
    output_name: str = "logits",
) -> Path:
    """Write a one-layer 3D convolution ONNX model with dynamic batch and spatial axes.

    Parameters
    ----------
    path
        Where to write the ``.onnx`` file.
    weight
        ``(K, C, kz, ky, kx)`` kernel; odd kernel sizes are padded to keep the shape.
    bias
        ``(K,)``; zeros when ``None``.
    opset
        ONNX opset.

    Returns
    -------
    Path
        ``path``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.asarray(weight, dtype=np.float32)
    k, c = weight.shape[:2]
    bias = np.zeros(k, dtype=np.float32) if bias is None else np.asarray(bias, np.float32)
    pads = [s // 2 for s in weight.shape[2:]] * 2
    node = helper.make_node(
        "Conv", [input_name, "W", "B"], [output_name], kernel_shape=list(weight.shape[2:]),
        pads=pads,
    )
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["n", c, "z", "y", "x"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["n", k, "z", "y", "x"])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def random_conv_model(path: Path, channels: int = 4, outputs: int = 4, kernel: int = 3,
                      seed: int = 0) -> Path:
    """A :func:`conv_model` with random weights."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.3, (outputs, channels, kernel, kernel, kernel))
    return conv_model(path, weight, rng.normal(0, 0.1, outputs))


BRATS_SEGMENTS: list[dict[str, Any]] = [
    {"label": 1, "name": "Necrotic core",
     "type": {"code": "6574001", "scheme": "SCT", "meaning": "Necrosis"}},
    {"label": 2, "name": "Oedema",
     "type": {"code": "79654002", "scheme": "SCT", "meaning": "Edema"}},
    {"label": 3, "name": "Enhancing tumour",
     "type": {"code": "C113842", "scheme": "NCIt", "meaning": "Enhancing Lesion"}},
]


def card_data(weights: Path, model_id: str = "tiny", patch: int = 16,
              mode: str = "softmax", validated: bool = True, channels: int = 4) -> dict[str, Any]:
    """A valid card mapping for ``weights`` (softmax BraTS labels or sigmoid WT/TC/ET)."""
    outputs: dict[str, Any] = {"mode": mode, "logits": True, "segments": BRATS_SEGMENTS}
    if mode == "softmax":
        outputs["classes"] = [
            {"index": 0, "label": 0, "name": "background"},
            {"index": 1, "label": 1, "name": "necrotic core"},
            {"index": 2, "label": 2, "name": "oedema"},
            {"index": 3, "label": 3, "name": "enhancing tumour"},
        ]
    else:
        outputs["regions"] = [
            {"index": 0, "name": "WT", "label": 2},
            {"index": 1, "name": "TC", "label": 1},
            {"index": 2, "name": "ET", "label": 3},
        ]
    data: dict[str, Any] = {
        "id": model_id,
        "version": "0.0.1",
        "name": "tiny test model",
        "task": "segmentation",
        "research_use_only": True,
        "intended_use": "Software tests only.",
        "training_data": "None: random weights.",
        "weights": {"file": weights.name,
                    "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()},
        "inputs": {
            "channels": ["T1", "T1c", "T2", "FLAIR"][:channels],
            "spacing_mm": [2.0, 2.0, 2.0],
            "patch_size": [patch, patch, patch],
        },
        "outputs": outputs,
    }
    if validated:
        data["validation"] = {"dataset": "none", "n_cases": 1, "metrics": {"dice_wt_mean": 0.0}}
    return data


def write_model_folder(folder: Path, weights: Path | None = None, **card: Any) -> Path:
    """Write a model folder with a random 4->4 conv model (or ``weights``) and its card."""
    folder.mkdir(parents=True, exist_ok=True)
    if weights is None:
        weights = random_conv_model(folder / "model.onnx")
    (folder / CARD_FILENAME).write_text(yaml.safe_dump(card_data(weights, **card)))
    return folder


__all__ = ["BRATS_SEGMENTS", "card_data", "conv_model", "random_conv_model", "write_model_folder"]
