"""Native TensorRT backend: an FP16 engine built from the ONNX weights, cached on disk.

Written against TensorRT 10's Python API (``trt.Builder``, ``trt.OnnxParser``,
``IBuilderConfig.set_flag(trt.BuilderFlag.FP16)``, ``add_optimization_profile``,
``build_serialized_network``, ``Runtime.deserialize_cuda_engine``, and on the execution
context ``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3``), with device
buffers and a stream from pycuda. TensorRT and pycuda are imported lazily, so importing this
module never fails where they are absent; opening the backend then raises
:class:`~rgcds.inference.errors.BackendUnavailableError`.

Engines are cached under a key of the model's sha256, the TensorRT version, the GPU's
compute capability and the precision, and built once per key under an ``fcntl`` file lock,
so several workers on one machine never build the same engine twice.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from rgcds.inference.card import ModelCard
from rgcds.inference.errors import BackendUnavailableError, InferenceInputError

logger = structlog.get_logger(__name__)

DEFAULT_ENGINE_CACHE = Path.home() / ".cache" / "rgcds" / "engines"

_WORKSPACE_BYTES = 2 << 30


def _import_tensorrt() -> tuple[Any, Any]:
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or OSError when libnvinfer is missing
        raise BackendUnavailableError(
            f"TensorRT is not importable: {type(exc).__name__}: {exc}. Install the 'gpu' extra "
            "(tensorrt>=10, pycuda) on a machine with an NVIDIA GPU, or use the onnxruntime "
            "backend."
        ) from exc
    try:
        import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
        import pycuda.driver as cuda
    except Exception as exc:
        raise BackendUnavailableError(
            f"pycuda is not importable or finds no CUDA device: {type(exc).__name__}: {exc}. "
            "Install pycuda and the NVIDIA driver, or use the onnxruntime backend."
        ) from exc
    return trt, cuda


@dataclass(frozen=True)
class EngineKey:
    """What an engine depends on; its :attr:`filename` is the cache key.

    Attributes
    ----------
    model_sha256
        sha256 of the ONNX weights.
    tensorrt_version
        ``tensorrt.__version__``.
    compute_capability
        The GPU's compute capability, e.g. ``"9.0"``.
    precision
        ``fp16`` or ``fp32``.
    """

    model_sha256: str
    tensorrt_version: str
    compute_capability: str
    precision: str

    @property
    def filename(self) -> str:
        """The engine's file name in the cache folder."""
        return (
            f"{self.model_sha256[:32]}_trt{self.tensorrt_version}"
            f"_sm{self.compute_capability.replace('.', '')}_{self.precision}.engine"
        )


@dataclass(frozen=True)
class ShapeProfile:
    """The dynamic-shape optimisation profile: min, opt and max input shapes (NCZYX)."""

    min: tuple[int, int, int, int, int]
    opt: tuple[int, int, int, int, int]
    max: tuple[int, int, int, int, int]


def default_profile(card: ModelCard, max_batch: int = 4) -> ShapeProfile:
    """Profile for a card: patch size at batch 1..``max_batch``, down to half the patch."""
    c = len(card.inputs.channels)
    p = card.inputs.patch_size
    d = card.inputs.divisible_by
    low = tuple(max(d, (s // 2) // d * d) for s in p)
    if card.nnunet is not None or card.monai is not None:  # exported at one patch size
        low = tuple(p)
    return ShapeProfile(
        min=(1, c, low[0], low[1], low[2]),
        opt=(1, c, p[0], p[1], p[2]),
        max=(max_batch, c, p[0], p[1], p[2]),
    )


def engine_key(card: ModelCard, precision: str = "fp16") -> EngineKey:
    """The cache key of ``card``'s engine on this machine's TensorRT and GPU."""
    trt, cuda = _import_tensorrt()
    major, minor = cuda.Device(0).compute_capability()
    return EngineKey(card.weights.sha256, str(trt.__version__), f"{major}.{minor}", precision)


def build_engine(
    card: ModelCard,
    cache_dir: Path | None = None,
    precision: str = "fp16",
    profile: ShapeProfile | None = None,
    force: bool = False,
) -> Path:
    """Build (once) and cache the TensorRT engine of ``card``; return its path.

    The build runs under an exclusive ``fcntl`` lock on ``<engine>.lock``; a second process
    waits on the lock and then finds the engine built.

    Parameters
    ----------
    card
        The model's card; its weights are parsed with TensorRT's ONNX parser.
    cache_dir
        Engine cache folder; :data:`DEFAULT_ENGINE_CACHE` when ``None``.
    precision
        ``fp16`` (default; sets ``BuilderFlag.FP16``) or ``fp32``.
    profile
        Optimisation profile; :func:`default_profile` when ``None``.
    force
        Rebuild even when a cached engine exists.

    Raises
    ------
    BackendUnavailableError
        TensorRT or pycuda is missing, or the build fails.
    """
    trt, _ = _import_tensorrt()
    key = engine_key(card, precision)
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_ENGINE_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / key.filename
    lock_path = target.with_suffix(".lock")
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if target.is_file() and not force:
                logger.info("tensorrt_engine_cached", model_id=card.id, engine=str(target))
                return target
            profile = profile or default_profile(card)
            trt_logger = trt.Logger(trt.Logger.WARNING)
            builder = trt.Builder(trt_logger)
            network = builder.create_network(0)  # explicit batch is the only mode in TRT 10
            parser = trt.OnnxParser(network, trt_logger)
            if not parser.parse_from_file(str(card.weights_path)):
                errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
                raise BackendUnavailableError(
                    f"TensorRT could not parse {card.weights_path}: {errors}."
                )
            config = builder.create_builder_config()
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
            if precision == "fp16":
                config.set_flag(trt.BuilderFlag.FP16)
            opt_profile = builder.create_optimization_profile()
            name = network.get_input(0).name
            opt_profile.set_shape(name, profile.min, profile.opt, profile.max)
            config.add_optimization_profile(opt_profile)
            logger.info("tensorrt_engine_build", model_id=card.id, precision=precision,
                        engine=str(target))
            serialized = builder.build_serialized_network(network, config)
            if serialized is None:
                raise BackendUnavailableError(
                    f"TensorRT failed to build an engine for model '{card.id}'; see its log."
                )
            partial = target.with_suffix(f".partial{os.getpid()}")
            partial.write_bytes(bytes(serialized))
            partial.replace(target)
            return target
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class TensorRTBackend:
    """Runs a cached TensorRT engine with pycuda buffers on one CUDA stream.

    Parameters
    ----------
    card
        The model's card.
    engine_cache
        Engine cache folder.
    precision
        ``fp16`` or ``fp32``.
    reason
        Why it was chosen.
    """

    name = "tensorrt"

    def __init__(
        self,
        card: ModelCard,
        engine_cache: Path | None = None,
        precision: str = "fp16",
        reason: str = "requested explicitly",
    ) -> None:
        trt, cuda = _import_tensorrt()
        self._trt = trt
        self._cuda = cuda
        path = build_engine(card, engine_cache, precision)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise BackendUnavailableError(
                f"TensorRT could not load the engine {path}; delete it to rebuild."
            )
        self._context = self._engine.create_execution_context()
        self._stream = cuda.Stream()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names
                  if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names
                   if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._input = inputs[0]
        self._output = outputs[0]
        self.engine_path = path
        self.reason = f"{reason}; engine {path.name}"

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the engine on one batch ``(N, C, Z, Y, X)``."""
        if x.ndim != 5:
            raise InferenceInputError(
                f"A batch for the network must have 5 axes (N, C, Z, Y, X), got shape {x.shape}."
            )
        cuda = self._cuda
        host_in = np.ascontiguousarray(x, dtype=np.float32)
        self._context.set_input_shape(self._input, tuple(host_in.shape))
        out_shape = tuple(self._context.get_tensor_shape(self._output))
        host_out = cuda.pagelocked_empty(out_shape, dtype=np.float32)
        dev_in = cuda.mem_alloc(host_in.nbytes)
        dev_out = cuda.mem_alloc(host_out.nbytes)
        try:
            cuda.memcpy_htod_async(dev_in, host_in, self._stream)
            self._context.set_tensor_address(self._input, int(dev_in))
            self._context.set_tensor_address(self._output, int(dev_out))
            if not self._context.execute_async_v3(stream_handle=self._stream.handle):
                raise BackendUnavailableError("TensorRT failed to execute the engine.")
            cuda.memcpy_dtoh_async(host_out, dev_out, self._stream)
            self._stream.synchronize()
        finally:
            dev_in.free()
            dev_out.free()
        return np.array(host_out, dtype=np.float32)


__all__ = [
    "DEFAULT_ENGINE_CACHE",
    "EngineKey",
    "ShapeProfile",
    "TensorRTBackend",
    "build_engine",
    "default_profile",
    "engine_key",
]
