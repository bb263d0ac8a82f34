# SimpleITK (SWIG) ships no type hints: its calls are untyped and return Any.
"""Learned brain extraction: deepbet 1.0.2 (Fisch et al. 2024) run with ONNX Runtime.

deepbet finds the brain of a T1-weighted image in two steps, each a 3D LinkNet whose
softmax channel 1 is "brain":

1. *Locate*: the whole volume, resized to 128^3 (nearest), gives a coarse mask; its largest
   connected component gives a bounding box, widened by 10 % of its size on each side.
2. *Segment*: the box, cut from the full-resolution volume and resized to 256^3 (nearest),
   gives the mask, which is resized back into the box, thresholded at 0.5, reduced to its
   largest connected component and filled.

Both steps see intensities scaled by the 0.5 % and 99.5 % quantiles of the 128^3 volume,
clipped to [0, 1], standardised (mean 0, sd 1) and mapped to mean 0.449, sd 0.226. The
networks were trained on arrays in nibabel's closest canonical orientation, indexed
``[x, y, z]`` with x towards the patient's right, y anterior, z superior. In ITK's naming,
where a code names the direction each axis points *to* (the identity direction is
``LPS``), that is ``RAS``: the image is reoriented with ``DICOMOrient(image, "RAS")`` (axes
permuted and flipped, never resampled) and its ``(z, y, x)`` pixel array transposed to
``(x, y, z)``. The mask goes back the same way onto the input's own grid.

The ONNX files come from ``pipelines/export_deepbet.py`` and live in the models folder
(``models/deepbet-1.0.2`` of the repository, or ``[inference] models_root``), with
``checksums.json``, whose sha256 values are checked when the networks are first loaded.
This is a reimplementation of deepbet's inference with numpy, scipy and SimpleITK; index
arithmetic (nearest-exact resizing, box rounding) follows PyTorch's so that masks match
deepbet's own.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TypeVar

import numpy as np
import SimpleITK as sitk
import structlog
from numpy.typing import NDArray
from scipy import ndimage

from rgcds.imaging.resample import Orientation
from rgcds.inference.backends import OnnxRuntimeBackend
from rgcds.inference.card import sha256_file
from rgcds.inference.errors import (
    ChecksumMismatchError,
    InferenceInputError,
    ModelCardError,
    ModelNotFoundError,
)
from rgcds.inference.registry import DEFAULT_MODELS_ROOT

logger = structlog.get_logger(__name__)

MODEL_FOLDER = "deepbet-1.0.2"
"""The deepbet folder under the models root."""

LOCATOR_FILE = "bbox_model.onnx"
SEGMENTER_FILE = "model.onnx"
CHECKSUMS_FILE = "checksums.json"

LOCATOR_SHAPE = (128, 128, 128)
"""deepbet's whole-volume grid for locating the brain."""

CROP_SHAPE = 256
"""deepbet's grid for the brain's bounding box (what the segmenter was trained on)."""

SPATIAL_DIVISOR = 32
"""The LinkNet halves its grid five times: every network input size is a multiple of 32."""

NETWORK_ORIENTATION = Orientation.RAS
"""ITK code of nibabel's canonical RAS+ array axes (x to the right, y anterior, z superior)."""

_QUANTILES = (0.005, 0.995)
_MEAN, _SD = 0.449, 0.226
_BOX_PROFILE = 0.02  # a slab is in the box where more than 2 % of it is brain
_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # 26-connected components, as cc3d counts

Shape3 = tuple[int, int, int]
_T = TypeVar("_T", bound=np.generic)
Box = tuple[slice, slice, slice]


class DeepbetBrainExtractor:
    """Brain mask from deepbet's two networks (a :class:`~rgcds.imaging.brain.BrainExtractor`).

    Parameters
    ----------
    models_root
        The folder of model folders (``[inference] models_root``); the networks are in its
        ``deepbet-1.0.2`` folder. ``None``: the repository's ``models/``.
    model_dir
        The deepbet folder itself; overrides ``models_root``.
    crop_shape
        Grid the bounding box is resized to for the segmenter: an int for a cube, or three
        sizes in ``(x, y, z)`` RAS order, each a multiple of 32. 256 is what deepbet was
        trained on; smaller grids are faster and coarser.
    threads
        ONNX Runtime intra-op threads (CPU execution provider).
    threshold
        Probability above which a voxel is brain.
    margin
        The bounding box grows by this fraction of its size on each side.
    verify
        Check the ONNX files against ``checksums.json`` when they are first loaded.

    Attributes
    ----------
    last_box
        The bounding box of the last call, as slices of the RAS ``(x, y, z)`` array.
    """

    def __init__(
        self,
        models_root: Path | None = None,
        *,
        model_dir: Path | None = None,
        crop_shape: int | tuple[int, int, int] = CROP_SHAPE,
        threads: int = 2,
        threshold: float = 0.5,
        margin: float = 0.1,
        verify: bool = True,
    ) -> None:
        root = Path(models_root) if models_root is not None else DEFAULT_MODELS_ROOT
        self.model_dir = Path(model_dir) if model_dir is not None else root / MODEL_FOLDER
        shape = (crop_shape,) * 3 if isinstance(crop_shape, int) else tuple(crop_shape)
        if len(shape) != 3 or any(s < SPATIAL_DIVISOR or s % SPATIAL_DIVISOR for s in shape):
            raise ValueError(
                f"crop_shape must be one size or three, each a positive multiple of "
                f"{SPATIAL_DIVISOR} (the network halves its grid five times), got {crop_shape!r}."
            )
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}.")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}.")
        if margin < 0.0:
            raise ValueError(f"margin must not be negative, got {margin}.")
        self.crop_shape: Shape3 = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.threads = threads
        self.threshold = threshold
        self.margin = margin
        self.verify = verify
        self.last_box: Box | None = None
        self._lock = threading.Lock()
        self._networks: tuple[OnnxRuntimeBackend, OnnxRuntimeBackend] | None = None

    # -- networks -----------------------------------------------------------------------

    def _load(self) -> tuple[OnnxRuntimeBackend, OnnxRuntimeBackend]:
        """The locator and segmenter sessions, created (and checked) on first use."""
        with self._lock:
            if self._networks is None:
                paths = [self.model_dir / LOCATOR_FILE, self.model_dir / SEGMENTER_FILE]
                missing = [p.name for p in paths if not p.is_file()]
                if missing:
                    raise ModelNotFoundError(
                        f"The deepbet folder {self.model_dir} lacks {', '.join(missing)}; "
                        "export them with pipelines/export_deepbet.py or set [inference] "
                        "models_root to the folder that holds deepbet-1.0.2."
                    )
                if self.verify:
                    _verify_checksums(self.model_dir, [p.name for p in paths])
                locator, segmenter = (
                    OnnxRuntimeBackend(
                        p, providers=["CPUExecutionProvider"], threads=self.threads,
                        reason="deepbet brain extraction",
                    )
                    for p in paths
                )
                self._networks = (locator, segmenter)
                logger.debug("deepbet loaded", folder=str(self.model_dir), threads=self.threads)
            return self._networks

    # -- extraction -----------------------------------------------------------------------

    def __call__(self, image: sitk.Image) -> sitk.Image:
        """Return the brain mask (uint8, 1 = brain) on the grid of ``image``."""
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise InferenceInputError(
                "deepbet takes a 3D scalar image; got a "
                f"{image.GetDimension()}D image with {image.GetNumberOfComponentsPerPixel()} "
                "component(s) per voxel."
            )
        ras, volume = network_array(image)
        mask = self.extract(volume)
        out = mask_on_grid(mask, ras, image)
        logger.debug(
            "brain extracted", method="deepbet",
            crop_shape=list(self.crop_shape), voxels=int(mask.sum()),
        )
        return out

    def extract(self, volume: NDArray[np.float32]) -> NDArray[np.bool_]:
        """Brain mask of a RAS ``(x, y, z)`` array (nibabel's canonical layout).

        Raises
        ------
        InferenceInputError
            When the image has no contrast or the locator finds no brain.
        """
        locator, segmenter = self._load()
        volume = np.asarray(volume, dtype=np.float32)
        shape: Shape3 = (volume.shape[0], volume.shape[1], volume.shape[2])
        small = resize_nearest_exact(volume, LOCATOR_SHAPE)
        low, high = (float(q) for q in np.quantile(small, _QUANTILES))
        if not high > low:
            raise InferenceInputError(
                "deepbet cannot scale this image: its 0.5 % and 99.5 % intensity quantiles "
                f"are equal ({low:g}); is it blank?"
            )
        coarse = _channel(locator, normalise(small, low, high)) > 0.5
        coarse = largest_component(coarse)
        if not coarse.any():
            raise InferenceInputError(
                "deepbet's locator found no brain in this image; is it a T1-weighted head scan?"
            )
        box = bounding_box(coarse, shape, self.margin)
        self.last_box = box
        crop = volume[box]
        crop_shape: Shape3 = (crop.shape[0], crop.shape[1], crop.shape[2])
        probability = _channel(segmenter, normalise(resize_nearest_exact(crop, self.crop_shape),
                                                    low, high))
        inside = resize_nearest_exact(probability > self.threshold, crop_shape)
        mask = np.zeros(shape, dtype=bool)
        mask[box] = ndimage.binary_fill_holes(largest_component(inside))
        return mask


# -- steps ----------------------------------------------------------------------------------


def network_array(image: sitk.Image) -> tuple[sitk.Image, NDArray[np.float32]]:
    """``image`` reoriented to RAS, and its pixels as the networks see them.

    Returns the reoriented float32 image and its array indexed ``(x, y, z)`` with x to the
    right, y anterior, z superior, NaN set to 0 and infinities to the largest floats: the
    array ``nibabel.as_closest_canonical(img).get_fdata()`` gives deepbet for the same image.
    """
    ras = sitk.DICOMOrient(sitk.Cast(image, sitk.sitkFloat32), NETWORK_ORIENTATION.value)
    return ras, np.nan_to_num(sitk.GetArrayFromImage(ras).transpose(2, 1, 0))


def mask_on_grid(mask: NDArray[np.bool_], ras: sitk.Image, image: sitk.Image) -> sitk.Image:
    """A mask of the RAS array of :func:`network_array`, as uint8 on the grid of ``image``."""
    out: sitk.Image = sitk.GetImageFromArray(
        np.ascontiguousarray(mask.transpose(2, 1, 0), np.uint8)
    )
    out.CopyInformation(ras)
    native = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
    out = sitk.DICOMOrient(out, native)
    if out.GetSize() != image.GetSize():  # pragma: no cover - DICOMOrient only permutes
        raise RuntimeError(
            f"Reorienting the mask back to {native} gave size {out.GetSize()}, "
            f"not the image's {image.GetSize()}."
        )
    out.CopyInformation(image)
    return out


def _channel(network: OnnxRuntimeBackend, x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Softmax channel 1 (brain) of ``network`` on one ``(x, y, z)`` volume."""
    brain: NDArray[np.float32] = network.run(x[None, None])[0, 1]
    return brain


def nearest_exact_indices(n_in: int, n_out: int) -> NDArray[np.intp]:
    """Source index of each of ``n_out`` samples of an axis of ``n_in`` (nearest-exact).

    Sample ``i`` takes ``floor((i + 0.5) * n_in / n_out)``, the pixel whose centre is nearest
    to its own, with the scale in float32 as PyTorch's ``interpolate(mode="nearest-exact")``
    computes it.
    """
    scale = float(np.float32(n_in) / np.float32(n_out))
    positions = ((np.arange(n_out, dtype=np.float64) + 0.5) * scale).astype(np.float32)
    return np.minimum(np.floor(positions).astype(np.intp), n_in - 1)


def resize_nearest_exact(x: NDArray[_T], shape: Shape3) -> NDArray[_T]:
    """``x`` resized to ``shape`` by nearest-exact sampling on each axis."""
    index = [nearest_exact_indices(n, m) for n, m in zip(x.shape, shape, strict=True)]
    return x[np.ix_(*index)]


def normalise(x: NDArray[np.float32], low: float, high: float) -> NDArray[np.float32]:
    """deepbet's input scaling: clip to the quantiles, standardise, map to 0.449 +- 0.226.

    Raises
    ------
    InferenceInputError
        When the clipped volume is constant.
    """
    y = np.clip((x - np.float32(low)) / np.float32(high - low), 0.0, 1.0)
    sd = float(y.std(ddof=1, dtype=np.float64))  # PyTorch's std is the unbiased one
    if not sd > 0.0:
        raise InferenceInputError("deepbet cannot scale this image: it is constant in the box.")
    mean = float(y.mean(dtype=np.float64))
    scaled: NDArray[np.float32] = (y - np.float32(mean)) * np.float32(_SD / sd) + np.float32(_MEAN)
    return scaled.astype(np.float32)


def largest_component(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """The largest 26-connected component of ``mask`` (all False when it is empty)."""
    labels, n = ndimage.label(mask, structure=_CONNECTIVITY)
    if n <= 1:
        return np.asarray(mask, dtype=bool)
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return np.asarray(labels == int(np.argmax(counts)))


def bounding_box(coarse: NDArray[np.bool_], shape: Shape3, margin: float) -> Box:
    """Bounding box of a coarse mask, scaled to ``shape`` and widened by ``margin`` per side.

    Along each axis the box spans the slabs in which more than 2 % of the voxels are brain;
    centre and size are scaled to ``shape``, the size grows by ``2 * margin``, both are
    rounded (half to even), and the ends are clipped to the volume. float32 throughout, as
    deepbet computes it.
    """
    slices = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        profile = coarse.mean(axis=others)
        hits = np.flatnonzero(profile > _BOX_PROFILE)
        if hits.size == 0:
            raise InferenceInputError(
                "deepbet's locator found too little brain to place a bounding box."
            )
        first, stop = int(hits[0]), int(hits[-1]) + 1
        scale = np.float32(shape[axis]) / np.float32(coarse.shape[axis])
        centre = np.round(scale * np.float32((stop + first) / 2))
        size = np.round(scale * np.float32(stop - first) * np.float32(1 + 2 * margin))
        start, end = int(centre - size / 2), int(centre + size / 2)
        slices.append(slice(max(0, start), min(shape[axis], end)))
    return slices[0], slices[1], slices[2]


def _verify_checksums(folder: Path, names: list[str]) -> None:
    """Compare the ONNX files' sha256 with ``checksums.json`` (written by the exporter).

    Raises
    ------
    ModelCardError
        When ``checksums.json`` is missing, unreadable or lacks a file.
    ChecksumMismatchError
        When a file's sha256 differs.
    """
    source = folder / CHECKSUMS_FILE
    try:
        files = json.loads(source.read_text(encoding="utf-8"))["files"]
        expected = {name: str(files[name]["sha256"]) for name in names}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelCardError(
            f"The deepbet checksums {source} cannot be read or lack an entry "
            f"({type(exc).__name__}: {exc}); export the networks again with "
            "pipelines/export_deepbet.py."
        ) from exc
    for name, sha in expected.items():
        actual = sha256_file(folder / name)
        if actual != sha:
            raise ChecksumMismatchError(
                f"The deepbet network {folder / name} has sha256 {actual}, but {source} "
                f"declares {sha}; the file is corrupt or was replaced. Restore it, or export "
                "it again with pipelines/export_deepbet.py."
            )


__all__ = [
    "CROP_SHAPE",
    "LOCATOR_SHAPE",
    "MODEL_FOLDER",
    "NETWORK_ORIENTATION",
    "DeepbetBrainExtractor",
    "bounding_box",
    "largest_component",
    "mask_on_grid",
    "nearest_exact_indices",
    "network_array",
    "normalise",
    "resize_nearest_exact",
]
