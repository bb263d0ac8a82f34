"""Sliding-window inference with Gaussian-weighted overlap and mirror test-time augmentation."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from rgcds.inference.errors import InferenceInputError

Predictor = Callable[[np.ndarray], np.ndarray]
"""Maps a batch ``(N, C, Z, Y, X)`` to per-voxel scores ``(N, K, Z, Y, X)``."""


@lru_cache(maxsize=8)
def gaussian_importance(patch_size: tuple[int, int, int], sigma_scale: float = 0.125) -> np.ndarray:
    """Weights that favour a patch's centre over its border (sigma = ``sigma_scale`` x size).

    Parameters
    ----------
    patch_size
        ``(Z, Y, X)``.
    sigma_scale
        Sigma as a fraction of the patch size per axis (nnU-Net uses 1/8).

    Returns
    -------
    numpy.ndarray
        float32, maximum 1, strictly positive everywhere (read-only).
    """
    weights = np.ones(patch_size, dtype=np.float64)
    for axis, size in enumerate(patch_size):
        centre = (size - 1) / 2.0
        sigma = max(size * sigma_scale, 1e-6)
        profile = np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2)
        shape = [1, 1, 1]
        shape[axis] = size
        weights = weights * profile.reshape(shape)
    weights /= weights.max()
    weights = np.maximum(weights, 1e-3).astype(np.float32)
    weights.setflags(write=False)
    return weights


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Start indices of windows of length ``patch`` that cover ``size`` with ``overlap``.

    Windows are spread evenly from 0 to ``size - patch`` with a step of at most
    ``patch * (1 - overlap)``.
    """
    if size <= patch:
        return [0]
    step = max(1, int(patch * (1.0 - overlap)))
    n = int(np.ceil((size - patch) / step)) + 1
    return sorted({round(float(v)) for v in np.linspace(0, size - patch, n)})


def mirror_axes_sets(axes: Sequence[int] = (0, 1, 2)) -> list[tuple[int, ...]]:
    """Every subset of the spatial ``axes`` (the empty set first): 8 for three axes."""
    sets: list[tuple[int, ...]] = []
    for r in range(len(axes) + 1):
        sets.extend(itertools.combinations(tuple(axes), r))
    return sets


def sliding_window_inference(
    volume: np.ndarray,
    predictor: Predictor,
    patch_size: tuple[int, int, int],
    n_outputs: int,
    overlap: float = 0.5,
    batch_size: int = 1,
    tta: bool = False,
    mirror_axes: Sequence[int] = (0, 1, 2),
    pad_value: float | np.ndarray | None = None,
) -> np.ndarray:
    """Predict a whole volume patch by patch and blend the patches with Gaussian weights.

    Volumes smaller than the patch are padded (and the result cropped back), so every call
    to ``predictor`` sees exactly ``patch_size``.

    Parameters
    ----------
    volume
        ``(C, Z, Y, X)`` float32.
    predictor
        Batch ``(N, C, *patch_size)`` to scores ``(N, n_outputs, *patch_size)``; scores are
        averaged, so pass probabilities rather than logits.
    patch_size
        Window size ``(Z, Y, X)``.
    n_outputs
        Output channels ``K``.
    overlap
        Fraction of the patch by which neighbouring windows overlap, in ``[0, 0.9]``.
    batch_size
        Windows per ``predictor`` call.
    tta
        Also predict each mirrored version of every window (over ``mirror_axes``) and
        average: ``2 ** len(mirror_axes)`` times the work.
    mirror_axes
        Spatial axes (0 = Z, 1 = Y, 2 = X) to mirror for ``tta``.
    pad_value
        Value (scalar or one per channel) for padding; the channel minimum when ``None``.

    Returns
    -------
    numpy.ndarray
        ``(K, Z, Y, X)`` float32 weighted average of the scores.

    Raises
    ------
    InferenceInputError
        ``volume`` is not 4-D or ``overlap`` is out of range.
    """
    if volume.ndim != 4:
        raise InferenceInputError(
            f"Sliding-window inference takes a (C, Z, Y, X) volume, got shape {volume.shape}."
        )
    if not 0.0 <= overlap <= 0.9:
        raise InferenceInputError(f"The window overlap must be within 0 and 0.9, got {overlap}.")
    if batch_size < 1:
        raise InferenceInputError(f"The batch size must be at least 1, got {batch_size}.")
    patch = tuple(int(p) for p in patch_size)
    channels = volume.shape[0]
    spatial = volume.shape[1:]
    padded_shape = tuple(max(s, p) for s, p in zip(spatial, patch, strict=True))
    if pad_value is None:
        pad = volume.reshape(channels, -1).min(axis=1) if volume.size else np.zeros(channels)
    else:
        pad = np.broadcast_to(np.asarray(pad_value, dtype=np.float32), (channels,))
    if padded_shape != spatial:
        before = [(ps - s) // 2 for ps, s in zip(padded_shape, spatial, strict=True)]
        work = np.empty((channels, *padded_shape), dtype=np.float32)
        work[...] = np.asarray(pad, dtype=np.float32)[:, None, None, None]
        inner = tuple(slice(b, b + s) for b, s in zip(before, spatial, strict=True))
        work[(slice(None), *inner)] = volume
    else:
        before = [0, 0, 0]
        inner = tuple(slice(0, s) for s in spatial)
        work = np.asarray(volume, dtype=np.float32)

    weights = gaussian_importance((patch[0], patch[1], patch[2]))
    scores = np.zeros((n_outputs, *padded_shape), dtype=np.float32)
    norm = np.zeros(padded_shape, dtype=np.float32)
    starts = list(
        itertools.product(
            *(window_starts(s, p, overlap) for s, p in zip(padded_shape, patch, strict=True))
        )
    )
    flips = mirror_axes_sets(mirror_axes) if tta else [()]
    for first in range(0, len(starts), batch_size):
        chunk = starts[first : first + batch_size]
        slices = [
            tuple(slice(o, o + p) for o, p in zip(start, patch, strict=True)) for start in chunk
        ]
        batch = np.stack([work[(slice(None), *sl)] for sl in slices])
        summed = np.zeros((len(chunk), n_outputs, *patch), dtype=np.float32)
        for axes in flips:
            flip = tuple(a + 2 for a in axes)
            inp = np.flip(batch, flip) if flip else batch
            out = np.asarray(predictor(np.ascontiguousarray(inp)), dtype=np.float32)
            if out.shape != (len(chunk), n_outputs, *patch):
                raise InferenceInputError(
                    f"The network returned shape {out.shape} for a batch of shape {inp.shape}; "
                    f"expected {(len(chunk), n_outputs, *patch)}. Check the card's outputs and "
                    "patch size."
                )
            summed += np.flip(out, flip) if flip else out
        summed /= len(flips)
        for sl, pred in zip(slices, summed, strict=True):
            scores[(slice(None), *sl)] += pred * weights
            norm[sl] += weights
    scores /= norm
    return np.ascontiguousarray(scores[(slice(None), *inner)])


__all__ = [
    "Predictor",
    "gaussian_importance",
    "mirror_axes_sets",
    "sliding_window_inference",
    "window_starts",
]
