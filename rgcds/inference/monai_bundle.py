"""Run an imported MONAI bundle as ``python -m monai.bundle run`` does, without PyTorch.

The card's ``monai`` section (:mod:`rgcds.inference.monai_card`) lists the bundle's transforms
in order; each is replayed here with the rule MONAI 1.6 applies:

- the study's ``(C, Z, Y, X)`` array and SimpleITK geometry become the array and RAS affine
  that MONAI's NIfTI reader gives (``(C, i, j, k)``, LPS to RAS);
- ``Orientationd``: nibabel's orientation transform (the one MONAI calls) flips and permutes;
- ``Spacingd``: ``zoom_affine`` and ``compute_shape_offset``'s output grid, resampled by the
  affine map from output to input voxels (trilinear or nearest, border or zero padding);
- ``NormalizeIntensityd`` (population std, non-zero voxels when asked, per channel when
  asked) and ``ScaleIntensityRanged``;
- ``SlidingWindowInferer``: MONAI's padding to the ROI, scan interval
  ``int(roi * (1 - overlap))``, window starts, constant or Gaussian importance (clamped at
  its minimum or 1e-3) and the count-map division;
- ``Activationsd`` (sigmoid or softmax), ``Invertd`` (the inverse resampling and orientation
  back to the study's grid) and ``AsDiscreted`` (argmax or ``>= threshold``).

The result is rgcds' label map on the study's grid.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import structlog
from scipy import ndimage

from rgcds.inference.backends import InferenceBackend
from rgcds.inference.card import ModelCard, OutputModeValues
from rgcds.inference.errors import InferenceInputError
from rgcds.inference.monai_card import (
    MonaiNormalise,
    MonaiOrientation,
    MonaiScaleRange,
    MonaiSpacing,
    MonaiSpec,
)

logger = structlog.get_logger(__name__)

_AFFINE_TOL = 1e-3
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ras_affine(spacing_xyz: Sequence[float], direction: Sequence[float],
               origin: Sequence[float]) -> np.ndarray:
    """The RAS voxel-to-world affine nibabel reads from a NIfTI with this ITK geometry."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) @ np.diag(
        np.asarray(spacing_xyz, dtype=float))
    lps[:3, 3] = np.asarray(origin, dtype=float)
    return _LPS_TO_RAS @ lps


def _orientations() -> Any:
    """``nibabel.orientations`` (untyped), the orientation code MONAI's ``Orientationd`` calls."""
    return importlib.import_module("nibabel.orientations")


def orientation_transform(affine: np.ndarray, axcodes: str) -> np.ndarray:
    """nibabel's ``ornt_transform`` from the affine's axes to ``axcodes`` (what MONAI uses)."""
    orientations = _orientations()
    src = orientations.io_orientation(affine)
    dst = orientations.axcodes2ornt(axcodes)
    return np.asarray(orientations.ornt_transform(src, dst))


def apply_orientation(data: np.ndarray, affine: np.ndarray, ornt: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Flip, then permute the spatial axes of ``(C, ...)`` data as MONAI's ``orientation``."""
    shape = data.shape[1:]
    xform = np.asarray(_orientations().inv_ornt_aff(ornt, shape), dtype=np.float64)
    flips = tuple(a + 1 for a in range(3) if ornt[a, 1] == -1)
    out = np.flip(data, axis=flips) if flips else data
    order = [0, *[int(a) + 1 for a in np.argsort(ornt[:, 0])]]
    out = np.ascontiguousarray(out.transpose(order))
    return out, affine @ xform


def undo_orientation(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """The inverse of :func:`apply_orientation` on ``(C, ...)`` data."""
    order = [0, *[int(a) + 1 for a in np.argsort(ornt[:, 0])]]
    back = np.argsort(order)
    out = data.transpose(back)
    flips = tuple(a + 1 for a in range(3) if ornt[a, 1] == -1)
    return np.ascontiguousarray(np.flip(out, axis=flips) if flips else out)


def _affine_spacing(affine: np.ndarray) -> np.ndarray:
    spacing: np.ndarray = np.sqrt(np.sum(affine[:3, :3] ** 2, axis=0))
    return spacing


def spacing_grid(affine: np.ndarray, shape: Sequence[int], pixdim: Sequence[float]
                 ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """``Spacingd``'s output affine and shape (``zoom_affine`` non-diagonal, no extent scale)."""
    scale = np.asarray(pixdim, dtype=float).copy()
    current = _affine_spacing(affine)
    scale[scale <= 0] = current[scale <= 0]
    # Spacing keeps an axis's own spacing when it is within AFFINE_TOL of the target (a
    # float32-stored 0.99999996 mm stays that, it is not made 1 mm).
    keep = np.abs(current - scale) <= _AFFINE_TOL
    scale[keep] = current[keep]
    rzs = affine[:3, :3]
    zs = np.linalg.cholesky(rzs.T @ rzs).T
    rotation = rzs @ np.linalg.inv(zs)
    new = np.eye(4)
    new[:3, :3] = rotation @ np.diag(np.sign(np.diag(zs)) * np.abs(scale))
    dims = np.asarray(shape, dtype=float)
    grids = np.meshgrid(*[(0.0, d - 1.0) for d in dims], indexing="ij")
    corners = np.concatenate([np.asarray(grids).reshape(3, -1), np.ones((1, 8))])
    corners_out = np.linalg.solve(new, affine) @ corners
    all_dist = corners_out[:-1].copy()
    corners_out = corners_out[:-1] / corners_out[-1]
    out_shape = np.round(np.ptp(corners_out, axis=1) + 1.0).astype(int)
    world = affine @ corners
    offset = None
    for i in range(world.shape[1]):
        if np.allclose(np.min(all_dist - all_dist[:, i:i + 1], 1), 0.0, rtol=_AFFINE_TOL):
            offset = world[:-1, i]
            break
    if offset is None:
        offset = (affine[:3, :3] @ (dims / 2.0) + affine[:3, 3]
                  - new[:3, :3] @ (out_shape / 2.0))
    new[:3, 3] = offset
    return new, (int(out_shape[0]), int(out_shape[1]), int(out_shape[2]))


def _torch_linspace(steps: int) -> np.ndarray:
    """``torch.linspace(-1, 1, steps)`` in float64 as PyTorch's CPU kernel computes it.

    It fills from both ends with a fused multiply-add (``start + step * i``); the extended
    precision of ``numpy.longdouble`` stands in for the fused rounding.
    """
    if steps == 1:
        return np.array([-1.0])
    ext = np.longdouble
    step = 2.0 / (steps - 1)
    idx = np.arange(steps)
    low = (ext(-1.0) + ext(step) * idx.astype(ext)).astype(np.float64)
    high = (ext(1.0) - ext(step) * (steps - 1 - idx).astype(ext)).astype(np.float64)
    out: np.ndarray = np.where(idx < steps // 2, low, high)
    return out


def _norm(shape: Sequence[int]) -> np.ndarray:
    """MONAI's ``normalize_transform`` (``align_corners=False``)."""
    size = np.asarray(shape, dtype=np.float64)
    out = np.diag(np.append(2.0 / size, 1.0))
    out[:-1, -1] = 1.0 / size - 1.0
    return out


def source_coordinates(xform: np.ndarray, src_shape: Sequence[int], dst_shape: Sequence[int],
                       rows: slice) -> np.ndarray:
    """The input-voxel coordinates ``grid_sample`` samples for output rows ``rows`` (axis 0).

    The same sequence of float64 operations as MONAI's ``AffineTransform`` (index affine to
    normalised ``theta``, ``affine_grid``'s base grid, ``grid_sample``'s unnormalisation), so
    that a coordinate that lands a rounding error off a voxel centre does so here too: MONAI's
    ``NormalizeIntensityd(nonzero=True)`` then counts the tiny interpolated value as brain.
    """
    theta = _norm(src_shape) @ xform @ np.linalg.inv(_norm(dst_shape))
    base = [_torch_linspace(n) * (n - 1) / n for n in dst_shape]
    b0 = base[0][rows][:, None, None]
    b1 = base[1][None, :, None]
    b2 = base[2][None, None, :]
    coords = np.empty((3, b0.shape[0], dst_shape[1], dst_shape[2]), dtype=np.float64)
    for axis in range(3):
        t = theta[axis]
        # affine_grid multiplies [x, y, z, 1] (last array axis first) by theta's row.
        g = b2 * t[2] + b1 * t[1] + b0 * t[0] + t[3]
        coords[axis] = ((g + 1.0) * src_shape[axis] - 1.0) / 2.0
    return coords


def resample_affine(data: np.ndarray, src_affine: np.ndarray, dst_affine: np.ndarray,
                    shape: Sequence[int], mode: str, padding_mode: str) -> np.ndarray:
    """Resample ``(C, ...)`` data from ``src_affine`` onto ``dst_affine`` of ``shape``.

    MONAI's ``spatial_resample`` maps each output voxel index through ``inv(src) @ dst`` to
    an input index and samples there with ``grid_sample`` (``align_corners=False``), in the
    transform's float64; nothing is resampled when that map is the identity.
    """
    xform = np.linalg.solve(src_affine, dst_affine)
    if (np.allclose(xform, np.eye(4), atol=_AFFINE_TOL)
            and tuple(shape) == tuple(data.shape[1:])):
        return data.astype(np.float32, copy=False)
    src_shape = data.shape[1:]
    out = np.empty((data.shape[0], *shape), dtype=np.float32)
    chunk = max(1, 2_000_000 // max(1, shape[1] * shape[2]))
    for start in range(0, shape[0], chunk):
        rows = slice(start, min(start + chunk, shape[0]))
        coords = source_coordinates(xform, src_shape, shape, rows)
        border = padding_mode == "border"
        if border:  # grid_sample clips the coordinates onto the input
            for a in range(3):
                np.clip(coords[a], 0.0, src_shape[a] - 1.0, out=coords[a])
        for c in range(data.shape[0]):
            channel = data[c].astype(np.float64, copy=False)
            if mode == "bilinear":  # zeros: corners outside the input count as 0
                values = ndimage.map_coordinates(channel, coords, order=1,
                                                 mode="nearest" if border else "grid-constant")
            else:  # nearest: round half to even, as grid_sample does
                idx = np.rint(coords).astype(np.int64)
                inside = np.all([(idx[a] >= 0) & (idx[a] < src_shape[a]) for a in range(3)],
                                axis=0)
                for a in range(3):
                    np.clip(idx[a], 0, src_shape[a] - 1, out=idx[a])
                values = np.where(inside, channel[idx[0], idx[1], idx[2]], 0.0)
            out[c, rows] = values
    return out


def _z_score(x: np.ndarray, nonzero: bool) -> np.ndarray:
    if nonzero:
        mask = x != 0
        if not mask.any():
            return x
        values = x[mask]
        std = float(values.std())
        x = x.copy()
        x[mask] = (values - float(values.mean())) / (std if std != 0.0 else 1.0)
        return x
    std = float(x.std())
    return (x - float(x.mean())) / (std if std != 0.0 else 1.0)


def normalise_intensity(data: np.ndarray, step: MonaiNormalise) -> np.ndarray:
    """``NormalizeIntensityd`` without subtrahend or divisor."""
    data = data.astype(np.float32, copy=True)
    if step.channel_wise:
        for c in range(data.shape[0]):
            data[c] = _z_score(data[c], step.nonzero)
        return data
    return _z_score(data, step.nonzero).astype(np.float32, copy=False)


def scale_intensity_range(data: np.ndarray, step: MonaiScaleRange) -> np.ndarray:
    """``ScaleIntensityRanged``."""
    x = data.astype(np.float32, copy=True)
    if step.a_max == step.a_min:
        return x - step.a_min if step.b_min is None else x - step.a_min + step.b_min
    x = (x - step.a_min) / (step.a_max - step.a_min)
    if step.b_min is not None and step.b_max is not None:
        x = x * (step.b_max - step.b_min) + step.b_min
    if step.clip:
        x = np.clip(x, step.b_min, step.b_max)
    return x.astype(np.float32, copy=False)


def importance_map(roi: Sequence[int], blend: str, sigma_scale: float) -> np.ndarray:
    """MONAI's ``compute_importance_map``: ones, or a separable Gaussian (not normalised)."""
    if blend == "constant":
        weights = np.ones(tuple(roi), dtype=np.float32)
    else:
        weights = np.ones((), dtype=np.float32)
        for size in roi:
            x = np.arange(-(size - 1) / 2.0, (size - 1) / 2.0 + 1, dtype=np.float32)
            g = np.exp(x ** 2 / np.float32(-2 * (size * sigma_scale) ** 2)).astype(np.float32)
            weights = weights[..., None] * g
    floor = max(float(weights.min()), 1e-3)
    return np.maximum(weights, np.float32(floor)).astype(np.float32)


def window_starts(size: int, roi: int, interval: int) -> list[int]:
    """``dense_patch_slices``' start positions along one axis."""
    num = int(np.ceil(size / interval))
    scan = next((d for d in range(num) if d * interval + roi >= size), None)
    count = scan + 1 if scan is not None else 1
    return [i * interval - max(i * interval + roi - size, 0) for i in range(count)]


def sliding_window(x: np.ndarray, backend: InferenceBackend, spec: MonaiSpec,
                   n_out: int) -> np.ndarray:
    """``SlidingWindowInferer`` on ``(C, ...)`` data; returns the raw ``(K, ...)`` output."""
    roi = [int(r) if r > 0 else int(s) for r, s in zip(spec.roi_size, x.shape[1:], strict=True)]
    image = x.shape[1:]
    pads = [(max(r - s, 0) // 2, max(r - s, 0) - max(r - s, 0) // 2)
            for r, s in zip(roi, image, strict=True)]
    if any(p for pair in pads for p in pair):
        x = np.pad(x, [(0, 0), *pads], mode="constant", constant_values=spec.pad_value)
    size = x.shape[1:]
    intervals = [r if r == s else max(int(r * (1 - spec.overlap)), 1)
                 for r, s in zip(roi, size, strict=True)]
    starts = [window_starts(s, r, i) for s, r, i in zip(size, roi, intervals, strict=True)]
    weights = importance_map(roi, spec.blend, spec.sigma_scale)
    out = np.zeros((n_out, *size), dtype=np.float32)
    count = np.zeros(size, dtype=np.float32)
    windows = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
    for first in range(0, len(windows), spec.sw_batch_size):
        group = windows[first:first + spec.sw_batch_size]
        slices = [tuple(slice(s, s + r) for s, r in zip(w, roi, strict=True)) for w in group]
        batch = np.stack([x[(slice(None), *sl)] for sl in slices]).astype(np.float32)
        pred = np.asarray(backend.run(batch), dtype=np.float32)
        for k, sl in enumerate(slices):
            out[(slice(None), *sl)] += pred[k] * weights
    for w in windows:
        count[tuple(slice(s, s + r) for s, r in zip(w, roi, strict=True))] += weights
    out /= count
    crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, image, strict=True))
    return out[(slice(None), *crop)]


def _spec(card: ModelCard) -> MonaiSpec:
    if card.monai is None:
        raise InferenceInputError(
            f"Model '{card.id}' is not an imported MONAI bundle (its card has no 'monai' "
            "section)."
        )
    return card.monai


def predict_monai(volume: np.ndarray, spacing_xyz: Sequence[float], direction: Sequence[float],
                  origin: Sequence[float], card: ModelCard, backend: InferenceBackend,
                  affine: np.ndarray | None = None) -> np.ndarray:
    """The bundle's prediction after its postprocessing, on the study's ``(Z, Y, X)`` grid.

    ``affine`` (RAS, for the ``(i, j, k)`` = ``(X, Y, Z)`` axes), when given, replaces the one
    built from the ITK geometry: a NIfTI's sform as nibabel reads it can differ from ITK's
    reading of the same file by ~1e-8, and MONAI's non-zero normalisation is sensitive to
    that (it turns interpolation residues of 1e-12 at the brain's edge into brain voxels).

    Returns ``(K, Z, Y, X)`` float32: after ``AsDiscreted(threshold)`` one 0/1 channel per
    output, after ``AsDiscreted(argmax)`` one channel of class indices.
    """
    spec = _spec(card)
    data = np.asarray(volume, dtype=np.float32)
    if data.ndim != 4 or data.shape[0] != len(spec.channel_names):
        raise InferenceInputError(
            f"Model '{card.id}' takes {len(spec.channel_names)} channels "
            f"({', '.join(card.inputs.channels)}) as a (C, Z, Y, X) array, got {data.shape}."
        )
    if "invert" not in spec.postprocessing:
        raise InferenceInputError(
            f"Model '{card.id}': the bundle does not invert its preprocessing (no Invertd), so "
            "its output is not on the study's grid; rgcds does not guess the mapping back."
        )
    x = np.ascontiguousarray(data.transpose(0, 3, 2, 1))  # (C, i, j, k) as nibabel reads it
    affine = ras_affine(spacing_xyz, direction, origin) if affine is None else np.asarray(
        affine, dtype=np.float64)
    native_shape = x.shape[1:]
    undo: list[tuple[str, object]] = []
    for step in spec.preprocessing:
        if isinstance(step, MonaiOrientation):
            ornt = orientation_transform(affine, step.axcodes)
            x, affine = apply_orientation(x, affine, ornt)
            undo.append(("orientation", ornt))
        elif isinstance(step, MonaiSpacing):
            new_affine, shape = spacing_grid(affine, x.shape[1:], step.pixdim)
            undo.append(("spacing", (affine, tuple(x.shape[1:]), step)))
            x = resample_affine(x, affine, new_affine, shape, step.mode, step.padding_mode)
            affine = new_affine
        elif isinstance(step, MonaiNormalise):
            x = normalise_intensity(x, step)
        else:
            x = scale_intensity_range(x, step)
    y = sliding_window(x, backend, spec, card.outputs.n_channels)
    for post in spec.postprocessing:
        if post == "sigmoid":
            y = (1.0 / (1.0 + np.exp(-y))).astype(np.float32)
        elif post == "softmax":
            e = np.exp(y - y.max(axis=0, keepdims=True))
            y = (e / e.sum(axis=0, keepdims=True)).astype(np.float32)
        elif post == "argmax":
            y = np.argmax(y, axis=0)[None].astype(np.float32)
        elif post == "threshold":
            y = (y >= np.float32(spec.threshold)).astype(np.float32)
        else:  # invert
            for kind, info in reversed(undo):
                if kind == "orientation":
                    assert isinstance(info, np.ndarray)
                    y = undo_orientation(y, info)
                else:
                    assert isinstance(info, tuple)
                    src_affine, src_shape, step = info
                    mode = "nearest" if spec.invert_nearest else step.mode
                    y = resample_affine(y, affine, src_affine, src_shape, mode, step.padding_mode)
                    affine = src_affine
            if y.shape[1:] != native_shape:
                raise InferenceInputError("The inverted prediction is not on the study's grid.")
    return np.ascontiguousarray(y.transpose(0, 3, 2, 1))


def to_labels(prediction: np.ndarray, card: ModelCard) -> np.ndarray:
    """The bundle's discrete output as rgcds labels (regions painted in card order)."""
    outputs = card.outputs
    if outputs.mode is OutputModeValues.SOFTMAX:
        lut = np.zeros(len(outputs.classes), dtype=np.uint8)
        for cls in outputs.classes:
            lut[cls.index] = cls.label
        index = (prediction[0].astype(np.int64) if prediction.shape[0] == 1
                 else np.argmax(prediction, axis=0))
        mapped: np.ndarray = lut[index]
        return mapped
    labels = np.zeros(prediction.shape[1:], dtype=np.uint8)
    for region in outputs.regions:
        labels[prediction[region.index] > 0.5] = region.label
    return labels


def segment_monai(volume: np.ndarray, spacing_xyz: Sequence[float], direction: Sequence[float],
                  origin: Sequence[float], card: ModelCard,
                  backend: InferenceBackend) -> np.ndarray:
    """Segment ``volume`` ``(C, Z, Y, X)`` with its ITK geometry as the bundle would.

    Returns ``(Z, Y, X)`` uint8 labels in the card's label values.
    """
    started = time.perf_counter()
    labels = to_labels(predict_monai(volume, spacing_xyz, direction, origin, card, backend),
                       card)
    logger.info("monai_bundle_inference", model_id=card.id, shape=list(np.shape(volume)[1:]),
                seconds=round(time.perf_counter() - started, 3))
    return labels


__all__ = [
    "apply_orientation",
    "importance_map",
    "normalise_intensity",
    "orientation_transform",
    "predict_monai",
    "ras_affine",
    "resample_affine",
    "scale_intensity_range",
    "segment_monai",
    "sliding_window",
    "spacing_grid",
    "to_labels",
    "undo_orientation",
    "window_starts",
]
