"""TensorRT backend: runs where TensorRT, pycuda and a GPU are present; clear errors elsewhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rgcds.inference import BackendUnavailableError, load_card, select_backend
from rgcds.inference.backends import gpu_present, tensorrt_import_error
from rgcds.inference.tensorrt import EngineKey, default_profile

_PROBLEM = tensorrt_import_error()
needs_tensorrt = pytest.mark.skipif(
    _PROBLEM is not None or not gpu_present(),
    reason=_PROBLEM or "no CUDA GPU is present",
)


def _card(tmp_path: Path) -> Path:
    from rgcds.inference.testing import write_model_folder

    return write_model_folder(tmp_path / "tiny", patch=16)


def test_engine_key_names_every_dependency() -> None:
    key = EngineKey("ab" * 32, "10.3.0", "9.0", "fp16")
    assert key.filename == f"{'ab' * 16}_trt10.3.0_sm90_fp16.engine"
    assert EngineKey("ab" * 32, "10.3.0", "8.6", "fp16").filename != key.filename


def test_default_profile_spans_half_patch_to_patch(tmp_path: Path) -> None:
    card = load_card(_card(tmp_path))
    profile = default_profile(card, max_batch=2)
    assert profile.opt == (1, 4, 16, 16, 16)
    assert profile.min == (1, 4, 8, 8, 8)
    assert profile.max == (2, 4, 16, 16, 16)


@pytest.mark.skipif(_PROBLEM is None, reason="TensorRT is importable here")
def test_requesting_tensorrt_without_it_is_a_clear_error(tmp_path: Path) -> None:
    card = load_card(_card(tmp_path))
    with pytest.raises(BackendUnavailableError) as info:
        select_backend(card, "tensorrt")
    message = str(info.value)
    assert "TensorRT is not importable" in message or "pycuda is not importable" in message
    assert "onnxruntime" in message


@pytest.mark.gpu
@needs_tensorrt
def test_tensorrt_matches_onnxruntime(tmp_path: Path) -> None:
    from rgcds.inference import OnnxRuntimeBackend
    from rgcds.inference.tensorrt import TensorRTBackend, build_engine

    card = load_card(_card(tmp_path))
    cache = tmp_path / "engines"
    engine = build_engine(card, cache)
    assert build_engine(card, cache) == engine  # cached, not rebuilt
    trt_backend = TensorRTBackend(card, cache)
    ort_backend = OnnxRuntimeBackend(card.weights_path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(0, 1, (1, 4, 16, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(trt_backend.run(x), ort_backend.run(x), atol=5e-2)
