"""The geometry checks of :mod:`rgcds.study.convert`: do the slices of a series form one
regular 3D stack, and which grid is it.

Each problem raises its own :class:`GeometryError` subclass: several orientations, several
stacks, a 4D series (repeated positions), gantry tilt, missing slices and non-uniform spacing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rgcds.exceptions import GeometryError

#: Cosines of two orientations closer than this are the same orientation.
ORIENTATION_TOLERANCE = 1e-3
#: Positions whose projection on the normal differ by less than this (mm) are the same.
POSITION_TOLERANCE_MM = 1e-2
#: A gap larger than this times the median spacing is a missing slice.
MISSING_SLICE_FACTOR = 1.5
#: Spacings may differ from the median by this fraction (or 0.01 mm) and still be uniform.
SPACING_TOLERANCE = 0.01
#: Largest tolerated angle (degrees) between slice normal and position progression.
TILT_TOLERANCE_DEG = 0.1


# --- errors -------------------------------------------------------------------------------


class MixedOrientationError(GeometryError):
    """The images of one series have different orientations."""


class MultipleStacksError(GeometryError):
    """The images of one series form several stacks (different in-plane positions or sizes)."""


class FourDimensionalSeriesError(GeometryError):
    """Several images share a slice position (temporal positions, b-values, echoes)."""


class GantryTiltError(GeometryError):
    """The slice positions do not progress along the slice normal (gantry tilt or shear)."""


class MissingSlicesError(GeometryError):
    """The gap between two neighbouring slices is larger than 1.5 times the median spacing."""


class NonUniformSpacingError(GeometryError):
    """The slice spacing varies along the stack (without a gap large enough to be missing)."""


# --- geometry -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StackGeometry:
    """The regular grid a set of slices forms (the result of the geometry checks).

    Attributes
    ----------
    order
        Indices of the input slices in ascending position along the normal.
    origin, direction, spacing
        SimpleITK geometry: origin of the first slice, row-major 3x3 direction whose columns
        are the row, column and normal cosines, and (column, row, slice) spacing in mm.
    """

    order: tuple[int, ...]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    spacing: tuple[float, float, float]


def stack_geometry(
    positions: npt.ArrayLike,
    row_cosines: npt.ArrayLike,
    column_cosines: npt.ArrayLike,
    pixel_spacings: npt.ArrayLike,
    shapes: Sequence[tuple[int, int]],
    fallback_spacing: float | None = None,
    series_instance_uid: str = "",
) -> StackGeometry:
    """Check that slices form one regular stack and return its geometry.

    Parameters
    ----------
    positions
        (n, 3) Image Position (Patient) of each slice.
    row_cosines, column_cosines
        (n, 3) the two halves of Image Orientation (Patient) of each slice.
    pixel_spacings
        (n, 2) Pixel Spacing (between rows, between columns) of each slice.
    shapes
        (rows, columns) of each slice.
    fallback_spacing
        Slice spacing to use when there is a single slice.
    series_instance_uid
        Used in error messages.

    Returns
    -------
    StackGeometry

    Raises
    ------
    MixedOrientationError, MultipleStacksError, FourDimensionalSeriesError,
    GantryTiltError, MissingSlicesError, NonUniformSpacingError
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    rows = np.asarray(row_cosines, dtype=np.float64).reshape(-1, 3)
    cols = np.asarray(column_cosines, dtype=np.float64).reshape(-1, 3)
    spacings = np.asarray(pixel_spacings, dtype=np.float64).reshape(-1, 2)
    n = pos.shape[0]
    what = f"Series {series_instance_uid}" if series_instance_uid else "The series"

    if np.abs(rows - rows[0]).max() > ORIENTATION_TOLERANCE or (
        np.abs(cols - cols[0]).max() > ORIENTATION_TOLERANCE
    ):
        n_orient = len(
            {tuple(round(float(v), 2) for v in (*r, *c)) for r, c in zip(rows, cols, strict=True)}
        )
        raise MixedOrientationError(
            f"{what} holds images in {n_orient} different orientations (for example a "
            "three-plane localizer or a composed series); split it into one series per "
            "orientation or exclude it."
        )
    if len(set(shapes)) > 1 or np.abs(spacings - spacings[0]).max() > 1e-4:
        raise MultipleStacksError(
            f"{what} holds images of different sizes or pixel spacings "
            f"({sorted(set(shapes))}); it is several stacks, not one volume."
        )
    row, col = rows[0] / np.linalg.norm(rows[0]), cols[0] / np.linalg.norm(cols[0])
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    along = pos @ normal
    in_plane = pos - np.outer(along, normal)
    order = np.argsort(along, kind="stable")
    along, in_plane = along[order], in_plane[order]

    # Group slices at the same position along the normal.
    distinct = [0]
    for k in range(1, n):
        if along[k] - along[distinct[-1]] > POSITION_TOLERANCE_MM:
            distinct.append(k)
    if len(distinct) < n:
        same_place = [
            np.linalg.norm(in_plane[k] - in_plane[j])
            for j, k in zip(range(n - 1), range(1, n), strict=True)
            if along[k] - along[j] <= POSITION_TOLERANCE_MM
        ]
        if max(same_place) > POSITION_TOLERANCE_MM:
            raise MultipleStacksError(
                f"{what} holds several stacks of images side by side (images at the same "
                "depth but different in-plane positions); split it into one series per stack."
            )
        raise FourDimensionalSeriesError(
            f"{what} is 4D: {n} images at only {len(distinct)} slice positions (several "
            "temporal positions, b-values or echoes); rgcds needs one image per position — "
            "send the derived 3D series (e.g. the trace or ADC) instead."
        )

    pixel = float(min(spacings[0]))
    if n > 1:
        span = along[-1] - along[0]
        shift = float(np.linalg.norm(in_plane[-1] - in_plane[0]))
        angle = math.degrees(math.atan2(shift, span))
        if angle > TILT_TOLERANCE_DEG and shift > 0.1 * pixel:
            raise GantryTiltError(
                f"{what} has slice positions that progress at {angle:.1f} degrees to the "
                "slice normal (gantry tilt); reconstruct it without tilt or resample it on "
                "the scanner before sending."
            )
        gaps = np.diff(along)
        median = float(np.median(gaps))
        big = np.flatnonzero(gaps > MISSING_SLICE_FACTOR * median)
        if big.size:
            missing = int(sum(round(g / median) - 1 for g in gaps[big]))
            raise MissingSlicesError(
                f"{what} is missing about {missing} slice(s): the gap after slice {int(big[0])} "
                f"is {gaps[big[0]]:.2f} mm while the median spacing is {median:.2f} mm; "
                "resend the complete series."
            )
        tolerance = max(SPACING_TOLERANCE * median, 1e-2)
        if float(np.abs(gaps - median).max()) > tolerance:
            raise NonUniformSpacingError(
                f"{what} has non-uniform slice spacing (from {gaps.min():.3f} to "
                f"{gaps.max():.3f} mm, median {median:.3f} mm); rgcds needs a regular grid — "
                "reconstruct the series with constant spacing."
            )
        slice_spacing = float(span / (n - 1))
    else:
        slice_spacing = float(fallback_spacing or 1.0)

    first = pos[order[0]]
    direction = np.column_stack([row, col, normal])
    return StackGeometry(
        order=tuple(int(i) for i in order),
        origin=(float(first[0]), float(first[1]), float(first[2])),
        direction=tuple(float(v) for v in direction.ravel()),
        spacing=(float(spacings[0][1]), float(spacings[0][0]), slice_spacing),
    )


__all__ = [
    "FourDimensionalSeriesError",
    "GantryTiltError",
    "MissingSlicesError",
    "MixedOrientationError",
    "MultipleStacksError",
    "NonUniformSpacingError",
    "StackGeometry",
    "stack_geometry",
]
