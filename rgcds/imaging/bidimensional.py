"""The bidimensional (RANO) measurement of one in-plane region: the longest diameter and the
longest chord perpendicular to it, both edge to edge on pixel outlines, with where they lie.

One definition for the analysis (:func:`rgcds.analysis.measure.bidimensional`, the reported
diameters) and for the SR's drawn axes (:mod:`rgcds.results._geometry`), so that the numbers
a viewer shows are those it draws.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError

Point = tuple[float, float]
"""(column, row) image coordinates; (0, 0) is the top left corner of the top left pixel."""


def _pixel_corners(
    rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp], sy: float, sx: float
) -> npt.NDArray[np.float64]:
    x = cols.astype(float) * sx
    y = rows.astype(float) * sy
    offsets = ((-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5))
    pts = np.concatenate([np.stack([x + ox * sx, y + oy * sy], axis=1) for ox, oy in offsets])
    return np.unique(pts, axis=0)


def _hull(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if len(points) < 4:
        return points
    try:
        hull: npt.NDArray[np.float64] = points[ConvexHull(points).vertices]
        return hull
    except QhullError:
        return points


def bidimensional_axes(
    mask2d: npt.NDArray[np.bool_], spacing_yx: tuple[float, float]
) -> tuple[float, float, tuple[Point, Point], tuple[Point, Point], tuple[Point, ...]] | None:
    """Longest diameter and longest perpendicular chord of a 2D region, with their ends.

    The longest diameter is the maximum Feret diameter over pixel outlines (edge to edge);
    the perpendicular one the longest chord of the region perpendicular to it, at every
    position along the longest diameter.

    Parameters
    ----------
    mask2d
        Boolean in-plane mask (rows = y, columns = x).
    spacing_yx
        Pixel spacing (row, column) in mm.

    Returns
    -------
    tuple or None
        ``(longest_mm, perpendicular_mm, long_axis, short_axis, outline)``, the axes and the
        convex outline in (column, row) image coordinates; ``None`` for an empty region.
    """
    rows, cols = np.nonzero(mask2d)
    if rows.size == 0:
        return None
    sy, sx = spacing_yx
    hull = _hull(_pixel_corners(rows, cols, sy, sx))
    diffs = hull[:, None, :] - hull[None, :, :]
    dist = np.sqrt((diffs**2).sum(axis=-1))
    i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
    longest = float(dist[i, j])
    if longest == 0.0:
        return None
    u = (hull[j] - hull[i]) / longest
    v = np.array([-u[1], u[0]])
    centres = np.stack([cols * sx, rows * sy], axis=1).astype(float)
    pu = centres @ u
    pv = centres @ v
    half_v = 0.5 * (abs(v[0]) * sx + abs(v[1]) * sy)
    half_u = 0.5 * (abs(u[0]) * sx + abs(u[1]) * sy)
    step = 0.5 * min(sx, sy)
    best = (0.0, 0.0, 0.0, 0.0)
    for t in np.arange(pu.min() - half_u, pu.max() + half_u + step, step):
        hit = np.abs(pu - t) <= half_u
        if not np.any(hit):
            continue
        lo, hi = float(pv[hit].min() - half_v), float(pv[hit].max() + half_v)
        if hi - lo > best[0]:
            best = (hi - lo, float(t), lo, hi)
    perpendicular = min(best[0], longest)

    def image(point: npt.NDArray[np.float64]) -> Point:
        # Physical in-plane (x, y) mm, pixel centre at index * spacing -> image coordinates.
        return (round(float(point[0] / sx + 0.5), 3), round(float(point[1] / sy + 0.5), 3))

    _, t, lo, hi = best
    short = (image(t * u + lo * v), image(t * u + hi * v))
    ordered = hull if len(hull) < 3 else _ordered(hull)
    outline = tuple(image(p) for p in ordered)
    return longest, perpendicular, (image(hull[i]), image(hull[j])), short, (*outline, outline[0])


def _ordered(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    centre = points.mean(axis=0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    return points[np.argsort(angles)]


__all__ = ["Point", "bidimensional_axes"]
