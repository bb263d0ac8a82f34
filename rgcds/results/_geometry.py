"""Image geometry of the SR's findings: RANO axes on their source slice, laterality of a mask.

The RANO measurement (``rgcds.analysis.measure.rano``) gives each lesion's diameters and the
index of its axial slice, not where the axes lie. To draw them (SCOORD polylines that a
viewer shows on the image), the lesion is found again on the native reference grid: each 3D
connected component of the enhancing tumour is measured slice by slice as the analysis does
(largest in-plane piece; longest Feret diameter over pixel outlines; longest perpendicular
chord), the components are ranked by product as the analysis ranks them, and a lesion is
drawn only when the native slice's diameters agree with the reported ones. A lesion
measured on an axial slice that is no slice of the source (a sagittal or oblique source)
is reported without coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from rgcds.imaging.bidimensional import Point, bidimensional_axes
from rgcds.results.content import Hemisphere, LesionDiameters, SourceSeries, frame_macro

_STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)

MATCH_TOLERANCE_MM = 0.5
"""Largest difference between a reported and a re-measured diameter for the axes to be drawn."""

MIDLINE_MARGIN_MM = 2.0
"""Half-width of the band around the estimated mid-sagittal plane that counts as midline."""

MIDLINE_MIN_FRACTION = 0.02
"""A mask is bilateral when at least this fraction of it lies beyond the band on each side."""

@dataclass(frozen=True, slots=True)
class LesionAxes:
    """Where one RANO lesion was measured: the slice and the two axes in image coordinates."""

    slice_index: int
    """Index of the slice in the source series' slice order."""
    long_axis: tuple[Point, Point]
    short_axis: tuple[Point, Point]
    outline: tuple[Point, ...]
    """Closed convex outline of the measured piece (first point repeated last)."""
    longest_mm: float
    perpendicular_mm: float


def _is_axial(source: SourceSeries) -> bool:
    _, orientation = source.slice_geometry(0)
    normal = np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:6]))
    return bool(abs(normal[2]) > 0.999)


def _ranked_axes(enhancing: npt.NDArray[np.bool_], source: SourceSeries) -> dict[int, LesionAxes]:
    """Every 3D enhancing lesion on its best native slice, numbered by product (largest 1)."""
    if not enhancing.any() or not _is_axial(source):
        return {}
    labelled, n = ndimage.label(enhancing, structure=_STRUCTURE_26)
    boxes = ndimage.find_objects(labelled)
    found: list[tuple[float, LesionAxes]] = []
    for comp in range(1, n + 1):
        box = boxes[comp - 1]
        if box is None:
            continue
        best: tuple[float, LesionAxes] | None = None
        for k in range(box[0].start, box[0].stop):
            plane = labelled[k] == comp
            if not plane.any():
                continue
            pieces, m = ndimage.label(plane)
            if m > 1:
                sizes = np.bincount(pieces.ravel())[1:]
                plane = pieces == (int(np.argmax(sizes)) + 1)
            spacing, _ = source.slice_geometry(k)
            measured = bidimensional_axes(plane, spacing)
            if measured is None:
                continue
            longest, perp, long_axis, short_axis, outline = measured
            if best is None or longest * perp > best[0]:
                best = (
                    longest * perp,
                    LesionAxes(k, long_axis, short_axis, outline, longest, perp),
                )
        if best is not None:
            found.append(best)
    found.sort(key=lambda item: item[0], reverse=True)
    return {rank + 1: axes for rank, (_, axes) in enumerate(found)}


def lesion_axes(
    enhancing: npt.NDArray[np.bool_],
    source: SourceSeries,
    lesions: tuple[LesionDiameters, ...],
) -> dict[int, LesionAxes]:
    """The axes of each reported RANO lesion on its native slice, where they can be found.

    Parameters
    ----------
    enhancing
        The enhancing-tumour mask on the source grid (slices, rows, columns).
    source
        The reference series.
    lesions
        The reported lesions (``lesion`` is the analysis' rank among all lesions).

    Returns
    -------
    dict
        Lesion number -> :class:`LesionAxes`, for the lesions whose re-measured diameters
        agree with the reported ones within :data:`MATCH_TOLERANCE_MM`.
    """
    if not lesions:
        return {}
    ranked = _ranked_axes(enhancing, source)
    out: dict[int, LesionAxes] = {}
    for lesion in lesions:
        axes = ranked.get(lesion.lesion)
        if axes is None:
            continue
        if (
            abs(axes.longest_mm - lesion.longest_diameter_mm) <= MATCH_TOLERANCE_MM
            and abs(axes.perpendicular_mm - lesion.perpendicular_diameter_mm) <= MATCH_TOLERANCE_MM
        ):
            out[lesion.lesion] = axes
    return out


def rano_lesions(
    enhancing: npt.NDArray[np.bool_], source: SourceSeries, min_diameter_mm: float = 10.0
) -> tuple[LesionDiameters, ...]:
    """The measurable RANO lesions (both diameters >= ``min_diameter_mm``) measured on the
    native axial grid, numbered by rank among all lesions as the analysis numbers them."""
    return tuple(
        LesionDiameters(rank, axes.longest_mm, axes.perpendicular_mm, axes.slice_index)
        for rank, axes in _ranked_axes(enhancing, source).items()
        if axes.longest_mm >= min_diameter_mm and axes.perpendicular_mm >= min_diameter_mm
    )


def laterality(
    mask: npt.NDArray[np.bool_], head: npt.NDArray[np.bool_], source: SourceSeries
) -> Hemisphere | None:
    """The side of ``mask`` relative to the head's mid-sagittal plane (estimated as the
    centre of the head's left-right extent in patient coordinates); ``None`` if empty."""
    if not mask.any() or not head.any():
        return None
    x_mask = _patient_x(mask, source)
    x_head = _patient_x(head, source)
    midline = 0.5 * (float(np.percentile(x_head, 1)) + float(np.percentile(x_head, 99)))
    # LPS: +x is the patient's left.
    beyond_left = float(np.mean(x_mask > midline + MIDLINE_MARGIN_MM))
    beyond_right = float(np.mean(x_mask < midline - MIDLINE_MARGIN_MM))
    if min(beyond_left, beyond_right) >= MIDLINE_MIN_FRACTION:
        return Hemisphere.BILATERAL
    return Hemisphere.LEFT if float(np.mean(x_mask > midline)) >= 0.5 else Hemisphere.RIGHT


def _patient_x(mask: npt.NDArray[np.bool_], source: SourceSeries) -> npt.NDArray[np.float64]:
    """Patient x (LPS, mm) of the voxels of ``mask`` (subsampled to at most ~200k voxels)."""
    ks, rs, cs = np.nonzero(mask)
    step = max(1, ks.size // 200_000)
    ks, rs, cs = ks[::step], rs[::step], cs[::step]
    out = np.empty(ks.size, dtype=np.float64)
    for k in np.unique(ks):
        (sy, sx), orientation = source.slice_geometry(int(k))
        origin = _slice_position(source, int(k))
        sel = ks == k
        row_dir_x, col_dir_x = orientation[0], orientation[3]
        out[sel] = origin[0] + cs[sel] * sx * row_dir_x + rs[sel] * sy * col_dir_x
    return out


def _slice_position(source: SourceSeries, k: int) -> tuple[float, float, float]:
    ds = source.slice_dataset(k)
    frame = source.slice_frame_number(k)
    item = ds if frame is None else frame_macro(ds, frame, "PlanePositionSequence")
    if item is None or "ImagePositionPatient" not in item:
        return (0.0, 0.0, 0.0)
    x, y, z = (float(v) for v in item.ImagePositionPatient)
    return (x, y, z)


__all__ = ["LesionAxes", "bidimensional_axes", "laterality", "lesion_axes", "rano_lesions"]
