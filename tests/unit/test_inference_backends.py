"""ONNX Runtime backend, sliding window, TTA, label mapping (softmax and sigmoid regions)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx  # noqa: F401 - a test requirement (builds the tiny test models): fail, not skip
import pytest

from rgcds.inference import (
    InferenceBackend,
    InferenceInputError,
    InferenceSettings,
    OnnxRuntimeBackend,
    load_card,
    normalise,
    predict_probabilities,
    segment,
    select_backend,
    sliding_window_inference,
)
from rgcds.inference.card import Normalisation
from rgcds.inference.segment import activate
from rgcds.inference.sliding_window import (
    gaussian_importance,
    mirror_axes_sets,
    window_starts,
)
from rgcds.inference.testing import conv_model, write_model_folder


@pytest.fixture(scope="module")
def conv3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with a random 3x3x3 conv (4 -> 4 classes), patch 16."""
    return write_model_folder(tmp_path_factory.mktemp("models") / "tiny", patch=16)


@pytest.fixture(scope="module")
def pointwise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1x1x1 conv model: its output at a voxel depends on that voxel only."""
    folder = tmp_path_factory.mktemp("models") / "point"
    rng = np.random.default_rng(1)
    weights = conv_model(folder / "model.onnx", rng.normal(0, 1, (4, 4, 1, 1, 1)))
    return write_model_folder(folder, weights=weights, model_id="point", patch=16)


def _volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (4, *shape)).astype(np.float32)


def _direct(backend: OnnxRuntimeBackend, x: np.ndarray) -> np.ndarray:
    from scipy.special import softmax

    return np.asarray(softmax(backend.run(x[None])[0], axis=0))


def test_onnxruntime_backend_runs_tiny_model(conv3: Path) -> None:
    card = load_card(conv3)
    backend = select_backend(card, "onnxruntime", threads=1)
    assert isinstance(backend, InferenceBackend)
    assert backend.name == "onnxruntime"
    assert "CPUExecutionProvider" in backend.reason
    out = backend.run(_volume((8, 12, 10))[None])
    assert out.shape == (1, 4, 8, 12, 10) and out.dtype == np.float32
    with pytest.raises(InferenceInputError, match="5 axes"):
        backend.run(_volume((8, 8, 8)))


def test_auto_selection_falls_back_to_onnxruntime_with_reason(conv3: Path) -> None:
    from rgcds.inference import tensorrt_import_error

    if tensorrt_import_error() is None:
        pytest.skip("TensorRT is importable here; auto may pick it")
    backend = select_backend(load_card(conv3), "auto", threads=1)
    assert backend.name == "onnxruntime"
    assert backend.reason.startswith("auto: ")


def test_sliding_window_equals_direct_when_volume_fits_one_patch(conv3: Path) -> None:
    card = load_card(conv3)
    backend = OnnxRuntimeBackend(card.weights_path, threads=1)
    x = _volume((16, 16, 16))
    expected = _direct(backend, x)
    got = sliding_window_inference(
        x, lambda b: activate(backend.run(b), card), (16, 16, 16), 4, overlap=0.5)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_sliding_window_blends_to_direct_for_a_pointwise_model(pointwise: Path) -> None:
    card = load_card(pointwise)
    backend = OnnxRuntimeBackend(card.weights_path, threads=1)
    x = _volume((30, 21, 40), seed=3)
    expected = _direct(backend, x)
    for overlap, batch in ((0.5, 1), (0.25, 3), (0.0, 2)):
        got = sliding_window_inference(
            x, lambda b: activate(backend.run(b), card), (16, 16, 16), 4,
            overlap=overlap, batch_size=batch)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_volume_smaller_than_patch_is_padded_and_cropped(pointwise: Path, conv3: Path) -> None:
    card = load_card(pointwise)
    backend = OnnxRuntimeBackend(card.weights_path, threads=1)
    x = _volume((5, 9, 16), seed=4)
    seen: list[tuple[int, ...]] = []

    def predictor(b: np.ndarray) -> np.ndarray:
        seen.append(b.shape)
        return activate(backend.run(b), card)

    got = sliding_window_inference(x, predictor, (16, 16, 16), 4)
    assert got.shape == (4, 5, 9, 16)
    assert seen == [(1, 4, 16, 16, 16)]
    np.testing.assert_allclose(got, _direct(backend, x), atol=1e-5)
    # with a 3x3x3 model: right shape, a valid probability map
    card3 = load_card(conv3)
    labels = segment(x, card3, OnnxRuntimeBackend(card3.weights_path, threads=1))
    assert labels.shape == (5, 9, 16) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2, 3}


def test_tta_averages_mirrored_predictions(conv3: Path, pointwise: Path) -> None:
    card = load_card(conv3)
    backend = OnnxRuntimeBackend(card.weights_path, threads=1)
    x = _volume((16, 16, 16), seed=5)
    expected = np.zeros((4, 16, 16, 16), dtype=np.float64)
    for axes in mirror_axes_sets((0, 1, 2)):
        flipped = np.ascontiguousarray(np.flip(x, [a + 1 for a in axes]))
        expected += np.flip(_direct(backend, flipped), [a + 1 for a in axes])
    expected /= 8
    got = sliding_window_inference(
        x, lambda b: activate(backend.run(b), card), (16, 16, 16), 4, tta=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # a mirror-equivariant (pointwise) model is unchanged by TTA
    pcard = load_card(pointwise)
    pback = OnnxRuntimeBackend(pcard.weights_path, threads=1)
    y = _volume((20, 18, 17), seed=6)
    plain = predict_probabilities(y, pcard, pback)
    tta = predict_probabilities(y, pcard, pback, tta=True)
    np.testing.assert_allclose(tta, plain, atol=1e-5)


def test_window_helpers() -> None:
    assert window_starts(10, 16, 0.5) == [0]
    assert window_starts(32, 16, 0.5) == [0, 8, 16]
    starts = window_starts(40, 16, 0.5)
    assert starts[0] == 0 and starts[-1] == 24
    assert all(b - a <= 8 for a, b in itertools.pairwise(starts))
    w = gaussian_importance((16, 16, 16))
    assert w.max() == pytest.approx(1.0) and w.min() > 0
    assert w[8, 8, 8] > w[0, 0, 0]
    assert len(mirror_axes_sets((0, 1, 2))) == 8
    with pytest.raises(InferenceInputError, match="overlap"):
        sliding_window_inference(np.zeros((1, 4, 4, 4)), lambda b: b, (4, 4, 4), 1, overlap=0.95)
    with pytest.raises(InferenceInputError, match=r"\(C, Z, Y, X\)"):
        sliding_window_inference(np.zeros((4, 4, 4)), lambda b: b, (4, 4, 4), 1)


def test_segment_softmax_label_mapping(tmp_path: Path) -> None:
    # Identity 1x1x1 conv: the class with the largest input channel wins.
    weights = conv_model(tmp_path / "id" / "model.onnx", 10 * np.eye(4).reshape(4, 4, 1, 1, 1))
    folder = write_model_folder(tmp_path / "id", weights=weights, model_id="id", patch=8)
    card = load_card(folder)
    card = card.model_copy(update={"inputs": card.inputs.model_copy(
        update={"normalisation": Normalisation(method="none")})})
    onehot = np.zeros((4, 6, 7, 9), dtype=np.float32)
    truth = np.random.default_rng(7).integers(0, 4, (6, 7, 9))
    for k in range(4):
        onehot[k][truth == k] = 1.0
    labels = segment(onehot, card, OnnxRuntimeBackend(card.weights_path, threads=1))
    np.testing.assert_array_equal(labels, truth)
    with pytest.raises(InferenceInputError, match="takes 4 channels"):
        segment(onehot[:3], card, OnnxRuntimeBackend(card.weights_path, threads=1))


def test_external_sigmoid_region_model_by_card_only(tmp_path: Path) -> None:
    """An nnU-Net/MONAI-style model with WT/TC/ET sigmoid outputs, run by writing its card."""
    # Three input channels carry the region masks; the model returns logits 10*m - 5.
    weights = conv_model(tmp_path / "ext" / "model.onnx",
                         10 * np.eye(3).reshape(3, 3, 1, 1, 1), bias=np.full(3, -5.0))
    folder = write_model_folder(tmp_path / "ext", weights=weights, model_id="ext", patch=8,
                                mode="sigmoid_regions", channels=3)
    card = load_card(folder)
    card = card.model_copy(update={"inputs": card.inputs.model_copy(
        update={"normalisation": Normalisation(method="none")})})
    truth = np.random.default_rng(8).integers(0, 4, (9, 8, 10)).astype(np.uint8)
    regions = np.stack([np.isin(truth, (1, 2, 3)), np.isin(truth, (1, 3)), truth == 3])
    labels = segment(regions.astype(np.float32), card,
                     OnnxRuntimeBackend(card.weights_path, threads=1))
    np.testing.assert_array_equal(labels, truth)


def test_normalise_zscore_in_mask() -> None:
    rng = np.random.default_rng(9)
    x = rng.normal(100, 20, (2, 10, 10, 10)).astype(np.float32)
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[2:8, 2:8, 2:8] = True
    out = normalise(x, Normalisation(), mask)
    assert abs(float(out[0][mask].mean())) < 1e-4
    assert float(out[1][mask].std()) == pytest.approx(1.0, abs=1e-4)
    zeroed = normalise(x, Normalisation(outside="zero"), mask)
    assert not zeroed[:, ~mask].any()
    with pytest.raises(InferenceInputError, match="brain mask has shape"):
        normalise(x, Normalisation(), mask[:5])
    with pytest.raises(InferenceInputError, match="mask is empty"):
        normalise(np.zeros_like(x), Normalisation(mask="nonzero"))


def test_inference_settings_defaults_and_forbid() -> None:
    settings = InferenceSettings()
    assert settings.backend == "auto" and settings.overlap == 0.5 and settings.tta is False
    assert InferenceSettings(backend="tensorrt", models_root=Path("/m")).models_root == Path("/m")
    with pytest.raises(ValueError, match="extra"):
        InferenceSettings(backend="auto", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        InferenceSettings(overlap=0.95)
