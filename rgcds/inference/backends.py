"""Inference backends behind one interface, and automatic selection between them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import structlog

from rgcds.inference.card import ModelCard
from rgcds.inference.errors import BackendUnavailableError, InferenceInputError
from rgcds.settings.inference import BackendPreference

logger = structlog.get_logger(__name__)


@runtime_checkable
class InferenceBackend(Protocol):
    """Runs one model on a batch: ``(N, C, Z, Y, X)`` float32 in, ``(N, K, Z, Y, X)`` out.

    Attributes
    ----------
    name
        ``onnxruntime`` or ``tensorrt``.
    reason
        Why this backend was chosen (for logs and reports).
    """

    name: str
    reason: str

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the network on one batch and return its raw output (logits or probabilities)."""
        ...


def _default_threads() -> int:
    value = os.environ.get("RGCDS_INFERENCE_THREADS")
    if value and value.isdigit():
        return int(value)
    return max(1, min(4, os.cpu_count() or 1))


class OnnxRuntimeBackend:
    """ONNX Runtime: CPUExecutionProvider, or TensorRT/CUDA execution providers when
    ``onnxruntime-gpu`` is installed and a GPU is present.

    Parameters
    ----------
    model_path
        The ONNX file.
    providers
        Execution providers in order of preference; ``None`` picks the best available.
    threads
        Intra-op threads on CPU; ``None``: ``RGCDS_INFERENCE_THREADS`` or min(4, cores).
    reason
        Why it was chosen.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_path: Path,
        providers: list[str] | None = None,
        threads: int | None = None,
        reason: str = "requested explicitly",
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise BackendUnavailableError(
                f"ONNX Runtime is not importable ({exc}); install the onnxruntime package."
            ) from exc
        available = ort.get_available_providers()
        if providers is None:
            providers = [
                p
                for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
                if p in available
            ] + ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BackendUnavailableError(
                f"ONNX Runtime could not load {model_path}: {exc}. Check that the file is a "
                "valid ONNX model and that its opset is supported."
            ) from exc
        self.providers: list[str] = list(self._session.get_providers())
        self.input_name: str = self._session.get_inputs()[0].name
        self.output_name: str = self._session.get_outputs()[0].name
        self.reason = f"{reason}; execution providers {', '.join(self.providers)}"

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the network on one batch ``(N, C, Z, Y, X)``."""
        if x.ndim != 5:
            raise InferenceInputError(
                f"A batch for the network must have 5 axes (N, C, Z, Y, X), got shape {x.shape}."
            )
        out = self._session.run(
            [self.output_name], {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}
        )
        return np.asarray(out[0], dtype=np.float32)


def tensorrt_import_error() -> str | None:
    """Return why TensorRT cannot be used here, or ``None`` when it and pycuda import."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # ImportError, or OSError when libnvinfer is missing
        return f"TensorRT is not importable: {type(exc).__name__}: {exc}"
    try:
        import pycuda.driver  # noqa: F401
    except Exception as exc:
        return f"pycuda is not importable: {type(exc).__name__}: {exc}"
    return None


def gpu_present() -> bool:
    """Whether a CUDA GPU is visible (checked through pycuda or nvidia-smi's device node)."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        return bool(cuda.Device.count() > 0)
    except Exception:
        return Path("/dev/nvidia0").exists()


def select_backend(
    card: ModelCard,
    preference: BackendPreference = "auto",
    engine_cache: Path | None = None,
    threads: int | None = None,
) -> InferenceBackend:
    """Choose and open the backend for ``card``, logging why.

    ``auto`` picks native TensorRT where TensorRT, pycuda and a GPU are present, else ONNX
    Runtime (which itself uses CUDA/TensorRT execution providers when onnxruntime-gpu is
    installed). ``tensorrt`` fails with a clear error where it cannot run; ``onnxruntime``
    always uses ONNX Runtime.

    Parameters
    ----------
    card
        The model's card (its weights are the ONNX file).
    preference
        ``auto``, ``onnxruntime`` or ``tensorrt``.
    engine_cache
        Folder for TensorRT engines.
    threads
        CPU threads for ONNX Runtime.

    Returns
    -------
    InferenceBackend
        An open backend; its ``reason`` says why it was chosen.

    Raises
    ------
    BackendUnavailableError
        ``tensorrt`` was requested and cannot run here.
    """
    backend: InferenceBackend
    if preference == "onnxruntime":
        backend = OnnxRuntimeBackend(
            card.weights_path, threads=threads, reason="configured backend is onnxruntime"
        )
    elif preference == "tensorrt":
        problem = tensorrt_import_error()
        if problem is not None:
            raise BackendUnavailableError(
                f"The configured backend is tensorrt, but {problem}. Install the 'gpu' extra "
                "(tensorrt, pycuda) on a machine with an NVIDIA GPU, or set "
                "[inference] backend to 'auto' or 'onnxruntime'."
            )
        from rgcds.inference.tensorrt import TensorRTBackend

        backend = TensorRTBackend(card, engine_cache, reason="configured backend is tensorrt")
    elif preference == "auto":
        problem = tensorrt_import_error()
        if problem is None and gpu_present():
            from rgcds.inference.tensorrt import TensorRTBackend

            backend = TensorRTBackend(
                card, engine_cache, reason="auto: TensorRT and a CUDA GPU are present"
            )
        else:
            why = problem if problem is not None else "no CUDA GPU is present"
            backend = OnnxRuntimeBackend(
                card.weights_path, threads=threads, reason=f"auto: {why}"
            )
    else:
        raise BackendUnavailableError(
            f"Unknown inference backend '{preference}'; use auto, onnxruntime or tensorrt."
        )
    logger.info("inference_backend_selected", model_id=card.id, backend=backend.name,
                reason=backend.reason)
    return backend


__all__ = [
    "InferenceBackend",
    "OnnxRuntimeBackend",
    "gpu_present",
    "select_backend",
    "tensorrt_import_error",
]
