"""The one ONNX export the model importers share: export, check, compare with PyTorch.

Import-time only (needs PyTorch, the ``train`` extra); the daemon never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rgcds.inference.errors import ModelCardError

OPSET = 17


class ImportRefusedError(ModelCardError):
    """The folder or the importer's answers do not say enough to write an honest card, or
    the network cannot be exported faithfully (nothing was written)."""


def export_checked(network: Any, channels: int, shape: Sequence[int], path: Path, *,
                   input_name: str, output_name: str, tolerance: float, seed: int = 0,
                   single_output: bool = False) -> float:
    """Export ``network`` to ``path`` with a dynamic batch axis; return max |ORT - PyTorch|.

    The export is checked by ``onnx.checker`` and run once by ONNX Runtime on a seeded
    random input of ``(1, channels, *shape)``; when the outputs differ by more than
    ``tolerance`` (or, with ``single_output``, have another shape) the file is removed and
    :class:`ImportRefusedError` says why.
    """
    import onnx
    import onnxruntime as ort
    import torch

    network.eval()
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            network, (torch.zeros(1, channels, *shape),), str(tmp), input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=OPSET, do_constant_folding=True, dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
    tmp.replace(path)
    x = np.random.default_rng(seed).standard_normal((1, channels, *shape)).astype(np.float32)
    with torch.no_grad():
        expected = network(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([output_name], {input_name: x})[0]
    if single_output and got.shape != expected.shape:
        path.unlink()
        raise ImportRefusedError(
            f"The network's output {expected.shape} is not one tensor on the input grid; "
            "rgcds runs single-output segmentation networks.")
    diff = float(np.max(np.abs(got - expected)))
    if diff > tolerance:
        path.unlink()
        raise ImportRefusedError(
            f"ONNX Runtime's output differs from PyTorch's by {diff:.3g} (more than "
            f"{tolerance:g}) for {path.name}; the export is not faithful, nothing was written."
        )
    return diff
