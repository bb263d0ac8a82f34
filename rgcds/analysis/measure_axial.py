# SimpleITK ships no type hints: its calls are untyped and return Any.
"""Axial reorientation of a label map and the bidimensional diameters of one in-plane
region, for the RANO measurement (see :mod:`rgcds.analysis.measure`, which re-exports these
names)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import structlog
from numpy.typing import NDArray

from rgcds.imaging.bidimensional import bidimensional_axes

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
        result: sitk.Image = sitk.DICOMOrient(labels, "LPS")
        return result
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


def bidimensional(
    mask2d: NDArray[np.bool_], spacing_yx: tuple[float, float]
) -> tuple[float, float]:
    """Longest diameter and longest perpendicular chord (mm) of a 2D region, ``(0, 0)`` for
    an empty one: :func:`rgcds.imaging.bidimensional.bidimensional_axes` without the ends."""
    measured = bidimensional_axes(mask2d, spacing_yx)
    if measured is None:
        return 0.0, 0.0
    return measured[0], measured[1]


__all__ = ["bidimensional", "to_axial"]
