# SimpleITK (SWIG) ships no type hints: its calls are untyped and return Any.
"""Model space: an isotropic grid in a fixed orientation, and resampling onto grids."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import SimpleITK as sitk


class Orientation(StrEnum):
    """Axis directions of a grid, named as DICOM/ITK do (the direction each axis points to).

    ``LPS``: identity direction (DICOM patient axes). ``RAS``: the NIfTI/nibabel convention
    (first axis towards the patient's right, second anterior, third superior).
    """

    LPS = "LPS"
    RAS = "RAS"

    @property
    def direction(self) -> tuple[float, ...]:
        """Row-major 3x3 direction matrix in LPS physical coordinates."""
        if self is Orientation.LPS:
            return (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        return (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class ModelSpace:
    """The grid a model expects: isotropic spacing (mm) and orientation."""

    spacing: float = 1.0
    orientation: Orientation = Orientation.LPS


@dataclass(frozen=True, slots=True)
class GridGeometry:
    """The geometry of an image grid, without its pixels."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> GridGeometry:
        """The geometry of ``image``."""
        size = image.GetSize()
        spacing = image.GetSpacing()
        origin = image.GetOrigin()
        return cls(
            size=(int(size[0]), int(size[1]), int(size[2])),
            spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
            origin=(float(origin[0]), float(origin[1]), float(origin[2])),
            direction=tuple(float(v) for v in image.GetDirection()),
        )

    def blank(self, pixel_type: int = sitk.sitkUInt8) -> sitk.Image:
        """An all-zero image on this grid."""
        image = sitk.Image(list(self.size), pixel_type)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


def model_grid(reference: sitk.Image, space: ModelSpace) -> GridGeometry:
    """The model-space grid covering every voxel centre of ``reference``.

    The lattice passes through the reference's first voxel centre, so a reference grid whose
    spacings are multiples of the model spacing (same orientation) maps back exactly.

    Parameters
    ----------
    reference
        The native reference image.
    space
        Spacing and orientation of the model grid.

    Returns
    -------
    GridGeometry
    """
    axes = np.asarray(space.orientation.direction, dtype=np.float64).reshape(3, 3)
    size = reference.GetSize()
    corners = [
        reference.TransformContinuousIndexToPhysicalPoint([float(i), float(j), float(k)])
        for i in (0, size[0] - 1)
        for j in (0, size[1] - 1)
        for k in (0, size[2] - 1)
    ]
    coords = np.asarray(corners) @ axes  # coordinates along the model axes
    first = coords[0]
    s = float(space.spacing)
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    start = first - np.floor((first - lo) / s + 1e-6) * s
    n = np.floor((hi - start) / s + 1e-6).astype(int) + 1
    origin = axes @ start
    return GridGeometry(
        size=(int(n[0]), int(n[1]), int(n[2])),
        spacing=(s, s, s),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=space.orientation.direction,
    )


def resample_onto(
    image: sitk.Image,
    grid: GridGeometry,
    *,
    transform: sitk.Transform | None = None,
    label: bool = False,
    default: float = 0.0,
) -> sitk.Image:
    """Resample ``image`` onto ``grid``.

    Parameters
    ----------
    image
        The image to resample.
    grid
        The target grid.
    transform
        Maps grid (target) physical points to ``image`` physical points; identity if ``None``.
    label
        Nearest-neighbour interpolation and the input pixel type (for label maps and masks);
        linear and float32 otherwise.
    default
        Value outside ``image``.

    Returns
    -------
    sitk.Image
    """
    reference = grid.blank(image.GetPixelID() if label else sitk.sitkFloat32)
    return sitk.Resample(
        image if label else sitk.Cast(image, sitk.sitkFloat32),
        reference,
        transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity),
        sitk.sitkNearestNeighbor if label else sitk.sitkLinear,
        default,
        reference.GetPixelID(),
    )


def is_label_image(image: sitk.Image) -> bool:
    """Whether ``image`` has an integer pixel type (treated as labels)."""
    return image.GetPixelID() in {
        sitk.sitkUInt8,
        sitk.sitkInt8,
        sitk.sitkUInt16,
        sitk.sitkInt16,
        sitk.sitkUInt32,
        sitk.sitkInt32,
        sitk.sitkUInt64,
        sitk.sitkInt64,
        sitk.sitkLabelUInt8,
    }


__all__ = [
    "GridGeometry",
    "ModelSpace",
    "Orientation",
    "is_label_image",
    "model_grid",
    "resample_onto",
]
