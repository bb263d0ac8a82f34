"""nnU-Net v2 inference without PyTorch: what ``nnUNetPredictor`` does, step for step.

An imported nnU-Net v2 model (``rgcds models import-nnunet``) has a card whose ``nnunet``
section holds what its ``plans.json``, ``dataset.json`` and checkpoints said. This module
runs such a model on a ``(C, Z, Y, X)`` array with the steps and numerics of nnunetv2 2.x
(``DefaultPreprocessor.run_case_npy``, ``nnUNetPredictor.predict_sliding_window_return_logits``
and ``convert_predicted_logits_to_segmentation_with_correct_shape``):

1. the plans' ``transpose_forward``;
2. crop to the box of voxels where any channel is non-zero (holes filled);
3. per-channel normalisation by the plans' scheme (``ZScoreNormalization`` within the
   non-zero mask or over the box, ``CTNormalization`` with the dataset's percentiles,
   ``NoNormalization``, ``RescaleTo01Normalization``), before resampling as nnU-Net does;
4. resampling to the plans' spacing as ``skimage.transform.resize`` does it (``mode='edge'``,
   no anti-aliasing, clipped to the input's range; order 3 for images), with nnU-Net's
   separate-z rule: when the spacing is anisotropic (max/min > 3) each slice is resampled in
   plane and the low-resolution axis with order 0;
5. zero-padding to the patch size, the sliding window with nnU-Net's steps and its Gaussian
   (sigma 1/8 of the patch, peak 10) in float16, mirroring over the trained axes, and the
   mean of the folds' logits;
6. logits resampled back to the cropped shape (order 1), argmax (softmax models) or
   sigmoid > 0.5 painted in ``regions_class_order`` (region-based models), the box put back
   into the full array and ``transpose_backward``.

``tests/peers/test_nnunet_agreement.py`` compares the result with ``nnUNetPredictor`` on the
same arrays and weights. The array handed in is the study's channels in the card's order,
with the spacing of its axes; rgcds does not reorient it (nnU-Net does not either).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import structlog
from scipy import ndimage

from rgcds.inference.errors import InferenceInputError
from rgcds.inference.sliding_window import mirror_axes_sets

if TYPE_CHECKING:
    from rgcds.inference.backends import InferenceBackend
    from rgcds.inference.card import ModelCard, NnunetResampling, NnunetSpec
    from rgcds.inference.settings import BackendPreference

logger = structlog.get_logger(__name__)

#: Voxels per network call (tiles x patch): the mirrored versions of a tile share a call up
#: to this (a 64^3 patch: all 8; a BraTS patch of 128 x 160 x 112: one at a time).
MAX_BATCH_VOXELS = 2_200_000


def _resize(image: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    """``skimage.transform.resize(image, shape, order, mode='edge', anti_aliasing=False)``."""
    image = np.asarray(image, dtype=np.float64)
    zoom = [1.0 / (i / o) for i, o in zip(image.shape, shape, strict=True)]
    out: np.ndarray = ndimage.zoom(image, zoom, order=order, mode="nearest", cval=0.0,
                                   grid_mode=True)
    np.clip(out, image.min(), image.max(), out=out)
    return out


def compute_new_shape(shape: Sequence[int], spacing: Sequence[float],
                      target: Sequence[float]) -> tuple[int, ...]:
    """nnU-Net's ``compute_new_shape``: ``round(old_shape * old_spacing / new_spacing)``."""
    return tuple(round(s / t * n) for s, t, n in zip(spacing, target, shape, strict=True))


def _lowres_axis(spacing: Sequence[float]) -> list[int]:
    values = np.asarray(spacing, dtype=float)
    return [int(a) for a in np.where(max(values) / values == 1)[0]]


def separate_z(force: bool | None, current: Sequence[float], new: Sequence[float],
               threshold: float) -> tuple[bool, int | None]:
    """nnU-Net's ``determine_do_sep_z_and_axis``: resample the low-resolution axis apart?"""
    axes: list[int] | None
    if force is not None:
        do = bool(force)
        axes = _lowres_axis(current) if force else None
    elif max(current) / min(current) > threshold:
        do, axes = True, _lowres_axis(current)
    elif max(new) / min(new) > threshold:
        do, axes = True, _lowres_axis(new)
    else:
        do, axes = False, None
    if axes is None or len(axes) != 1:
        return False, None
    return do, axes[0]


def resample(data: np.ndarray, new_shape: Sequence[int], current: Sequence[float],
             new: Sequence[float], how: NnunetResampling, threshold: float) -> np.ndarray:
    """nnU-Net's ``resample_data_or_seg_to_shape`` for images or logits (``is_seg=False``).

    The result has the input's dtype (float16 logits stay float16, as in nnU-Net).
    """
    shape = tuple(int(s) for s in data.shape[1:])
    target = tuple(int(s) for s in new_shape)
    if shape == target:
        return data
    do_sep, axis = separate_z(how.force_separate_z, current, new, threshold)
    out = np.zeros((data.shape[0], *target), dtype=data.dtype)
    work = data.astype(np.float64, copy=False)
    for c in range(data.shape[0]):
        if not do_sep or axis is None:
            out[c] = _resize(work[c], target, how.order)
            continue
        plane_shape = [t for i, t in enumerate(target) if i != axis]
        step = list(target)
        step[axis] = shape[axis]
        here = np.zeros(step)
        for k in range(shape[axis]):
            index: list[slice | int] = [slice(None)] * 3
            index[axis] = k
            here[tuple(index)] = _resize(work[c][tuple(index)], plane_shape, how.order)
        if shape[axis] == target[axis]:
            out[c] = here
            continue
        # The low-resolution axis, with map_coordinates as nnU-Net writes it (align_corners off).
        grids = np.mgrid[: target[0], : target[1], : target[2]].astype(np.float64)
        for d in range(3):
            grids[d] = here.shape[d] / target[d] * (grids[d] + 0.5) - 0.5
        out[c] = ndimage.map_coordinates(here, grids, order=how.order_z, mode="nearest")
    return out


def crop_to_nonzero(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[slice, ...]]:
    """The box of voxels where any channel is non-zero (holes filled), and that mask in it."""
    mask = ndimage.binary_fill_holes(np.any(data != 0, axis=0))
    if not mask.any():
        raise InferenceInputError(
            "Every channel is zero everywhere, so there is nothing for the nnU-Net model to "
            "segment; check that the images were converted and skull-stripped correctly."
        )
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    slicer = tuple(box)
    return data[(slice(None), *slicer)], mask[slicer], slicer


def normalise(data: np.ndarray, mask: np.ndarray, spec: NnunetSpec) -> np.ndarray:
    """Each channel by its plans scheme, as nnU-Net's normalisation classes do (float32)."""
    out = data.astype(np.float32, copy=True)
    for c, scheme in enumerate(spec.normalization_schemes):
        image = out[c]
        if scheme == "ZScoreNormalization":
            if spec.use_mask_for_norm[c]:
                mean = image[mask].mean()
                std = image[mask].std()
                image[mask] = (image[mask] - mean) / max(std, 1e-8)
            else:
                mean = image.mean()
                std = image.std()
                image -= mean
                image /= max(std, 1e-8)
        elif scheme == "CTNormalization":
            props = spec.intensity_properties[c]
            np.clip(image, props.percentile_00_5, props.percentile_99_5, out=image)
            image -= props.mean
            image /= max(props.std, 1e-8)
        elif scheme == "RescaleTo01Normalization":
            image -= image.min()
            image /= np.clip(image.max(), a_min=1e-8, a_max=None)
        elif scheme != "NoNormalization":  # the card's schema admits no other
            raise InferenceInputError(f"nnU-Net normalisation '{scheme}' is not supported.")
    return out


def sliding_steps(size: int, patch: int, step_fraction: float) -> list[int]:
    """nnU-Net's ``compute_steps_for_sliding_window`` along one axis."""
    n = int(np.ceil((size - patch) / (patch * step_fraction))) + 1
    actual = (size - patch) / (n - 1) if n > 1 else 0.0
    return [int(np.round(actual * i)) for i in range(n)]


@lru_cache(maxsize=4)
def nnunet_gaussian(patch: tuple[int, ...], sigma_scale: float = 1.0 / 8,
                    peak: float = 10.0) -> np.ndarray:
    """nnU-Net's ``compute_gaussian`` in float16 (its results dtype), zeros replaced."""
    tmp = np.zeros(patch)
    tmp[tuple(p // 2 for p in patch)] = 1
    weights = ndimage.gaussian_filter(tmp, [p * sigma_scale for p in patch], 0,
                                      mode="constant", cval=0)
    weights /= np.max(weights) / peak
    half: np.ndarray = weights.astype(np.float16)
    zero = half == 0
    if zero.any():
        half[zero] = half[~zero].min()
    half.setflags(write=False)
    return half


def sliding_window_logits(data: np.ndarray, backend: InferenceBackend, spec: NnunetSpec,
                          n_outputs: int, mirror: bool = True) -> np.ndarray:
    """One fold's logits over the whole (preprocessed) array, float16 as nnU-Net keeps them."""
    patch = tuple(spec.patch_size)
    shape = data.shape[1:]
    padded = tuple(max(s, p) for s, p in zip(shape, patch, strict=True))
    below = [(p - s) // 2 for p, s in zip(padded, shape, strict=True)]
    work = np.zeros((data.shape[0], *padded), dtype=np.float32)
    inner = tuple(slice(b, b + s) for b, s in zip(below, shape, strict=True))
    work[(slice(None), *inner)] = data
    gaussian = nnunet_gaussian(patch)
    gaussian32 = gaussian.astype(np.float32)
    logits = np.zeros((n_outputs, *padded), dtype=np.float16)
    weight = np.zeros(padded, dtype=np.float16)
    # nnU-Net's order: each non-empty combination of the axes, smallest first (on N, C, ...).
    flips = [tuple(a + 2 for a in axes) for axes in mirror_axes_sets(spec.mirror_axes)[1:]
             ] if mirror and spec.mirror_axes else []
    steps = [sliding_steps(s, p, spec.tile_step_size) for s, p in zip(padded, patch, strict=True)]
    per_call = max(1, min(len(flips) + 1, MAX_BATCH_VOXELS // int(np.prod(patch))))
    for z in steps[0]:
        for y in steps[1]:
            for x in steps[2]:
                sl = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2]))
                tile = work[(slice(None), *sl)][None]
                # The tile and its mirrored versions go through the network in batches of
                # up to ``per_call`` (bounded memory for large patches); they are summed in
                # nnU-Net's order (the tile, then each axes combination).
                versions = [tile, *(np.flip(tile, axes) for axes in flips)]
                outs = []
                for first in range(0, len(versions), per_call):
                    batch = np.ascontiguousarray(np.concatenate(versions[first:first + per_call]))
                    out = np.asarray(backend.run(batch), dtype=np.float32)
                    if out.shape != (len(batch), n_outputs, *patch):
                        raise InferenceInputError(
                            f"The network returned shape {out.shape} for a batch of shape "
                            f"{batch.shape}; the card expects {(len(batch), n_outputs, *patch)}."
                        )
                    outs.append(out)
                raw = np.concatenate(outs)
                pred = raw[:1]
                for k, axes in enumerate(flips, start=1):
                    pred = pred + np.flip(raw[k : k + 1], axes)
                if flips:
                    pred = pred / np.float32(len(flips) + 1)
                region = logits[(slice(None), *sl)]
                region[...] = (region.astype(np.float32) + pred[0] * gaussian32).astype(np.float16)
                weight[sl] = (weight[sl] + gaussian).astype(np.float16)
    logits = (logits / weight).astype(np.float16)
    return logits[(slice(None), *inner)]


def predict_logits(volume: np.ndarray, spacing: Sequence[float], card: ModelCard,
                   backends: Sequence[InferenceBackend], mirror: bool = True,
                   ) -> tuple[np.ndarray, dict[str, object]]:
    """Preprocess as nnU-Net does and return the folds' mean logits on its grid.

    Returns the logits (float16, ``(K, ...)`` on the resampled, cropped, transposed grid) and
    the properties needed to map them back (:func:`logits_to_labels`).
    """
    spec = _spec(card)
    data = np.asarray(volume, dtype=np.float32)
    if data.ndim != 4 or data.shape[0] != len(spec.channel_names):
        raise InferenceInputError(
            f"Model '{card.id}' takes {len(spec.channel_names)} channels "
            f"({', '.join(card.inputs.channels)}) as a (C, Z, Y, X) array, got {data.shape}."
        )
    if not backends:
        raise InferenceInputError(f"Model '{card.id}' was given no fold to run.")
    forward = list(spec.transpose_forward)
    data = data.transpose([0, *[a + 1 for a in forward]])
    spacing_t = [float(spacing[a]) for a in forward]
    before_crop = data.shape[1:]
    data, mask, box = crop_to_nonzero(data)
    cropped = data.shape[1:]
    target = list(spec.spacing)
    new_shape = compute_new_shape(cropped, spacing_t, target)
    data = normalise(data, mask, spec)
    data = resample(data, new_shape, spacing_t, target, spec.resampling_data,
                    spec.anisotropy_threshold).astype(np.float32, copy=False)
    total: np.ndarray | None = None
    for backend in backends:
        fold = sliding_window_logits(data, backend, spec, card.outputs.n_channels, mirror)
        total = fold if total is None else (total + fold).astype(np.float16)
    assert total is not None
    if len(backends) > 1:
        total = (total / np.float16(len(backends))).astype(np.float16)
    props: dict[str, object] = {
        "shape_before_cropping": before_crop, "box": box,
        "shape_after_cropping": cropped, "spacing": spacing_t,
    }
    return total, props


def logits_to_labels(logits: np.ndarray, props: dict[str, object], card: ModelCard) -> np.ndarray:
    """Resample logits back, make labels in the card's values, un-crop and un-transpose."""
    from rgcds.inference.card import OutputModeValues

    spec = _spec(card)
    cropped = props["shape_after_cropping"]
    spacing_t = props["spacing"]
    assert isinstance(cropped, tuple) and isinstance(spacing_t, list)
    logits = resample(logits, cropped, list(spec.spacing), spacing_t,
                      spec.resampling_probabilities, spec.anisotropy_threshold)
    outputs = card.outputs
    if outputs.mode is OutputModeValues.SIGMOID_REGIONS:
        probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))
        labels = np.zeros(probs.shape[1:], dtype=np.uint8)
        for region in outputs.regions:
            labels[probs[region.index] > region.threshold] = region.label
    else:
        lut = np.zeros(len(outputs.classes), dtype=np.uint8)
        for cls in outputs.classes:
            lut[cls.index] = cls.label
        labels = lut[np.argmax(logits, axis=0)]
    before = props["shape_before_cropping"]
    box = props["box"]
    assert isinstance(before, tuple) and isinstance(box, tuple)
    full = np.zeros(before, dtype=np.uint8)
    full[box] = labels
    return np.ascontiguousarray(full.transpose(list(spec.transpose_backward)))


def segment_nnunet(volume: np.ndarray, spacing: Sequence[float], card: ModelCard,
                   backends: Sequence[InferenceBackend], mirror: bool = True) -> np.ndarray:
    """Segment ``volume`` ``(C, Z, Y, X)`` (spacing per array axis, mm) as nnU-Net would.

    Parameters
    ----------
    volume
        The card's ``inputs.channels`` in order, zero outside the head or brain as the model
        was trained (for BraTS models: skull-stripped).
    spacing
        Voxel spacing along the array axes ``(Z, Y, X)`` in mm.
    card
        An imported nnU-Net card (with an ``nnunet`` section).
    backends
        One open backend per fold (:func:`open_folds`); their logits are averaged.
    mirror
        Mirror test-time augmentation over the trained axes (nnU-Net's default: on).

    Returns
    -------
    numpy.ndarray
        ``(Z, Y, X)`` uint8 labels in the card's label values.
    """
    started = time.perf_counter()
    logits, props = predict_logits(volume, spacing, card, backends, mirror)
    labels = logits_to_labels(logits, props, card)
    logger.info("nnunet_inference", model_id=card.id, folds=len(backends), mirror=mirror,
                shape=list(np.shape(volume)[1:]), seconds=round(time.perf_counter() - started, 3))
    return labels


def open_folds(card: ModelCard, backend: BackendPreference = "auto") -> list[InferenceBackend]:
    """Open one backend per fold listed in the card's ``nnunet.folds``."""
    from rgcds.inference.backends import select_backend

    spec = _spec(card)
    opened = []
    for fold in spec.folds:
        fold_card = card.model_copy(update={"weights": fold.weights})
        opened.append(select_backend(fold_card, backend))
    return opened


def _spec(card: ModelCard) -> NnunetSpec:
    if card.nnunet is None:
        raise InferenceInputError(
            f"Model '{card.id}' is not an imported nnU-Net model (its card has no 'nnunet' "
            "section)."
        )
    return card.nnunet


__all__ = [
    "compute_new_shape",
    "crop_to_nonzero",
    "logits_to_labels",
    "nnunet_gaussian",
    "normalise",
    "open_folds",
    "predict_logits",
    "resample",
    "segment_nnunet",
    "separate_z",
    "sliding_steps",
    "sliding_window_logits",
]
