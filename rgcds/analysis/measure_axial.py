# SimpleITK ships no type hints: its calls are untyped and return Any.
# mypy: disallow-untyped-calls=False, warn-return-any=False
"""Axial reorientation of a label map and the bidimensional diameters of one in-plane
region, for the RANO measurement (see :mod:`rgcds.analysis.measure`, which re-exports these
names)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import structlog
from numpy.typing import NDArray

logger = structlog.get_logger(__name__)


def _is_axis_aligned(direction: tuple[float, ...], tol: float = 1e-4) -> bool:
    matrix = np.abs(np.asarray(direction, dtype=float).reshape(3, 3))
    return bool(np.all((matrix < tol) | (np.abs(matrix - 1.0) < tol)))


def to_axial(labels: sitk.Image) -> sitk.Image:
    """Return ``labels`` on an axial grid in LPS order (array axis 0 = inferior -> superior).

    Axis-aligned images are reoriented losslessly; oblique ones are resampled with
    nearest-neighbour interpolation onto an axis-aligned grid with isotropic in-plane
    spacing equal to the finest spacing of the input (the slice spacing is kept).
    """
    if _is_axis_aligned(labels.GetDirection()):
        return sitk.DICOMOrient(labels, "LPS")
    spacing = np.asarray(labels.GetSpacing(), dtype=float)
    size = np.asarray(labels.GetSize())
    direction = np.asarray(labels.GetDirection(), dtype=float).reshape(3, 3)
    origin = np.asarray(labels.GetOrigin(), dtype=float)
    corners = []
    for i in (0, size[0] - 1):
        for j in (0, size[1] - 1):
            for k in (0, size[2] - 1):
                corners.append(origin + direction @ (np.array([i, j, k]) * spacing))
    pts = np.asarray(corners)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    fine = float(spacing.min())
    # Keep the slice thickness along z: the axis most aligned with the patient's z.
    z_axis = int(np.argmax(np.abs(direction[2, :])))
    new_spacing = np.array([fine, fine, float(spacing[z_axis])])
    new_size = np.ceil((hi - lo) / new_spacing).astype(int) + 1
    logger.info("rano_resample_oblique", spacing=new_spacing.tolist(), size=new_size.tolist())
    return sitk.Resample(
        labels,
        [int(s) for s in new_size],
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        [float(v) for v in lo],
        [float(v) for v in new_spacing],
        (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        0,
        labels.GetPixelID(),
    )


def _pixel_corners(
    rows: NDArray[np.intp], cols: NDArray[np.intp], sy: float, sx: float
) -> NDArray[np.float64]:
    # Physical in-plane coordinates (x, y) of the four corners of every pixel.
    x = cols.astype(float) * sx
    y = rows.astype(float) * sy
    offsets = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    pts = np.concatenate([np.stack([x + ox * sx, y + oy * sy], axis=1) for ox, oy in offsets])
    return np.unique(pts, axis=0)


def _hull_points(points: NDArray[np.float64]) -> NDArray[np.float64]:
    if len(points) < 4:
        return points
    try:
        from scipy.spatial import ConvexHull

        hull = ConvexHull(points)
        return points[hull.vertices]
    except Exception:
        return points


def bidimensional(
    mask2d: NDArray[np.bool_], spacing_yx: tuple[float, float]
) -> tuple[float, float]:
    """Longest diameter and longest perpendicular chord (mm) of a 2D region.

    The longest diameter is the maximum Feret diameter over pixel outlines (edge to edge).
    The perpendicular diameter is the longest chord of the region perpendicular to it,
    measured on pixel outlines at every position along the longest diameter.

    Parameters
    ----------
    mask2d
        Boolean in-plane mask (rows = y, columns = x).
    spacing_yx
        Pixel spacing (row, column) in mm.

    Returns
    -------
    tuple of float
        ``(longest_mm, perpendicular_mm)``; ``(0, 0)`` for an empty mask.
    """
    rows, cols = np.nonzero(mask2d)
    if rows.size == 0:
        return 0.0, 0.0
    sy, sx = spacing_yx
    corners = _pixel_corners(rows, cols, sy, sx)
    hull = _hull_points(corners)
    diffs = hull[:, None, :] - hull[None, :, :]
    dist = np.sqrt((diffs**2).sum(axis=-1))
    i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
    longest = float(dist[i, j])
    if longest == 0.0:
        return 0.0, 0.0
    u = (hull[j] - hull[i]) / longest
    v = np.array([-u[1], u[0]])
    centres = np.stack([cols * sx, rows * sy], axis=1).astype(float)
    pu = centres @ u
    pv = centres @ v
    # A pixel's half-extent along v and along u (its outline projected on each direction).
    half_v = 0.5 * (abs(v[0]) * sx + abs(v[1]) * sy)
    half_u = 0.5 * (abs(u[0]) * sx + abs(u[1]) * sy)
    step = 0.5 * min(sx, sy)
    bins = np.arange(pu.min() - half_u, pu.max() + half_u + step, step)
    perpendicular = 0.0
    for t in bins:
        # Pixels whose outline a line perpendicular to u at position t crosses.
        hit = np.abs(pu - t) <= half_u
        if not np.any(hit):
            continue
        chord = float(pv[hit].max() - pv[hit].min() + 2 * half_v)
        perpendicular = max(perpendicular, chord)
    return longest, min(perpendicular, longest)


__all__ = ["bidimensional", "to_axial"]
