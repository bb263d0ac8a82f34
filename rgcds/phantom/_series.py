# (SimpleITK ships no type information.)
"""Acquisition protocols, head poses and series geometries; resampling into a series grid.

Coordinates: template (MNI) space and scanner patient space are both LPS, in mm. Each
series has a *pose*, a rigid transform from template space to the scanner's patient
coordinate system (the patient's head position during that series). The MR series share
one session pose plus a small per-series motion; the PET series has its own pose (another
scanner). Each series grid (origin, spacing, direction = row, column, normal) lives in
scanner coordinates; the image is the subject resampled through the inverse pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

from rgcds.phantom._template import FloatArray

Float64Array = npt.NDArray[np.float64]

#: Centre of rotation for head poses, template LPS mm (centre of the brain).
_POSE_CENTRE = (0.0, 18.0, 15.0)
#: Head centre, template LPS mm (centre of the synthetic head box).
_HEAD_CENTRE = (0.0, 16.0, 6.0)


@dataclass(frozen=True)
class Protocol:
    """An acquisition protocol (what the scanner console stores for a series).

    Attributes
    ----------
    role : str
        ``"T1"``, ``"T1c"``, ``"T2"``, ``"FLAIR"`` or ``"PET"``.
    series_number : int
        SeriesNumber.
    description : str
        SeriesDescription and ProtocolName (Siemens-like).
    orientation : str
        ``"sag"`` or ``"tra"``.
    acquisition_type : str
        MRAcquisitionType ``"2D"``/``"3D"`` (``"3D"`` for PET too).
    matrix : dict
        Per size: ``(columns, rows, slices)``.
    pixel_mm : dict
        Per size: in-plane pixel size (square pixels).
    thickness_mm : dict
        Per size: SliceThickness.
    spacing_mm : dict
        Per size: SpacingBetweenSlices (centre to centre).
    fov_centre_z : float
        Superior-inferior centre of the slab, template mm.
    minutes : float
        Start of the series after the study (or PET session) start.
    """

    role: str
    series_number: int
    description: str
    orientation: str
    acquisition_type: str
    matrix: dict[str, tuple[int, int, int]]
    pixel_mm: dict[str, float]
    thickness_mm: dict[str, float]
    spacing_mm: dict[str, float]
    fov_centre_z: float
    minutes: float


PROTOCOLS: dict[str, Protocol] = {
    "T1": Protocol(
        "T1", 3, "t1_mprage_sag_p2_iso", "sag", "3D",
        {"full": (256, 256, 192), "small": (112, 112, 96)},
        {"full": 1.0, "small": 2.0}, {"full": 1.0, "small": 2.0}, {"full": 1.0, "small": 2.0},
        6.0, 3.0,
    ),
    "T2": Protocol(
        "T2", 4, "t2_tse_tra_5mm", "tra", "2D",
        {"full": (256, 256, 25), "small": (128, 128, 25)},
        {"full": 0.859375, "small": 1.71875}, {"full": 5.0, "small": 5.0},
        {"full": 6.0, "small": 6.0},
        20.0, 9.0,
    ),
    "FLAIR": Protocol(
        "FLAIR", 5, "t2_tirm_tra_dark-fluid_4mm", "tra", "2D",
        {"full": (256, 256, 35), "small": (128, 128, 35)},
        {"full": 0.8984375, "small": 1.796875}, {"full": 4.0, "small": 4.0},
        {"full": 4.4, "small": 4.4},
        18.0, 14.0,
    ),
    "T1c": Protocol(
        "T1c", 8, "t1_mprage_tra_p2_iso_KM", "tra", "3D",
        {"full": (240, 240, 176), "small": (112, 112, 80)},
        {"full": 1.0, "small": 2.0}, {"full": 1.0, "small": 2.0}, {"full": 1.0, "small": 2.0},
        6.0, 22.0,
    ),
    "PET": Protocol(
        "PET", 101, "MET Brain 20min AC", "tra", "3D",
        {"full": (128, 128, 109), "small": (64, 64, 55)},
        {"full": 2.0364, "small": 4.0728}, {"full": 2.027, "small": 4.054},
        {"full": 2.027, "small": 4.054},
        6.0, 0.0,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class SeriesGeometry:
    """A series grid in scanner patient coordinates (LPS mm).

    Attributes
    ----------
    size : tuple of int
        ``(columns, rows, slices)`` (SimpleITK x, y, z).
    spacing : tuple of float
        Column spacing (along the row direction), row spacing, slice spacing.
    direction : tuple of float
        Row-major 3x3 matrix whose columns are the row direction, the column direction and
        the slice normal (SimpleITK convention); ImageOrientationPatient is its first two
        columns.
    origin : tuple of float
        ImagePositionPatient of the first slice.
    slice_thickness : float
        Nominal slice thickness.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]
    origin: tuple[float, float, float]
    slice_thickness: float

    @property
    def matrix(self) -> Float64Array:
        """Direction as a 3x3 array (columns: row dir, column dir, normal)."""
        return np.array(self.direction, dtype=np.float64).reshape(3, 3)

    def slice_position(self, k: int) -> Float64Array:
        """ImagePositionPatient of slice ``k`` (0-based)."""
        return np.array(self.origin) + k * self.spacing[2] * self.matrix[:, 2]

    def reference(self, normal_offset_mm: float = 0.0) -> sitk.Image:
        """An empty image on this grid, optionally shifted along the slice normal."""
        image = sitk.Image([int(s) for s in self.size], sitk.sitkUInt8)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        origin = np.array(self.origin) + normal_offset_mm * self.matrix[:, 2]
        image.SetOrigin(tuple(float(v) for v in origin))
        return image


def rotation(angles_deg: tuple[float, float, float]) -> Float64Array:
    """Rotation matrix ``Rz @ Ry @ Rx`` for angles about the x, y, z axes (degrees)."""
    ax, ay, az = (math.radians(a) for a in angles_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return np.asarray(rz @ ry @ rx, dtype=np.float64)


@dataclass(frozen=True)
class Pose:
    """Rigid head pose: template point ``p`` maps to ``R (p - c) + c + t`` in scanner space.

    Attributes
    ----------
    angles_deg : tuple of float
        Rotations about x (pitch), y (roll), z (yaw), degrees.
    translation_mm : tuple of float
        Translation ``t``.
    """

    angles_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]

    def transform(self) -> sitk.Euler3DTransform:
        """The pose as a SimpleITK transform (template -> scanner)."""
        tx = sitk.Euler3DTransform()
        tx.SetCenter(_POSE_CENTRE)
        tx.SetRotation(*(math.radians(a) for a in self.angles_deg))
        tx.SetTranslation(self.translation_mm)
        return tx

    def apply(self, point: tuple[float, float, float]) -> Float64Array:
        """Map a template point to scanner coordinates."""
        return np.array(self.transform().TransformPoint(point), dtype=np.float64)

    def combined(self, other: Pose) -> Pose:
        """Small-angle composition (adds angles and translations): session + motion."""
        return Pose(
            tuple(a + b for a, b in zip(self.angles_deg, other.angles_deg, strict=True)),  # type: ignore[arg-type]
            tuple(a + b for a, b in zip(self.translation_mm, other.translation_mm, strict=True)),  # type: ignore[arg-type]
        )


def _random_pose(
    rng: np.random.Generator, angle_sd: tuple[float, float, float], shift_sd: tuple[float, ...]
) -> Pose:
    angles = tuple(round(float(rng.normal(0.0, s)), 3) for s in angle_sd)
    shift = tuple(round(float(rng.normal(0.0, s)), 3) for s in shift_sd)
    return Pose(angles, shift)  # type: ignore[arg-type]


def draw_poses(rng: np.random.Generator) -> dict[str, Pose]:
    """Draw a pose per role: one MR session pose plus per-series motion; a separate PET pose.

    Parameters
    ----------
    rng : numpy.random.Generator
        Geometry random stream.

    Returns
    -------
    dict
        Role -> pose.
    """
    session = _random_pose(rng, (6.0, 3.0, 3.0), (4.0, 4.0, 6.0))
    poses = {
        role: session.combined(_random_pose(rng, (1.2, 1.2, 1.2), (1.0, 1.0, 1.0)))
        for role in ("T1", "T2", "FLAIR", "T1c")
    }
    pet = _random_pose(rng, (6.0, 3.0, 3.0), (5.0, 5.0, 5.0))
    poses["PET"] = Pose(
        pet.angles_deg,
        (
            pet.translation_mm[0],
            pet.translation_mm[1],
            round(pet.translation_mm[2] + float(rng.uniform(-60.0, 60.0)), 3),
        ),
    )
    return poses


def _base_directions(orientation: str) -> Float64Array:
    if orientation == "tra":
        row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    else:  # sagittal: rows run anterior -> posterior, columns superior -> inferior
        row, col = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])
    return np.stack([row, col, np.cross(row, col)], axis=1)


def series_geometry(
    protocol: Protocol, size: str, pose: Pose, rng: np.random.Generator
) -> SeriesGeometry:
    """Plan the series grid like a technologist: centred on the head, roughly aligned.

    2D axial stacks are angulated about the left-right axis to follow part of the head's
    pitch (AC-PC-like); the sagittal 3D slab follows part of the yaw; the 3D axial T1c and the
    PET are not angulated. Direction cosines are rounded to 8 decimals and positions to
    0.0001 mm so that what DICOM stores is exactly this geometry.

    Parameters
    ----------
    protocol : Protocol
        The protocol.
    size : {"small", "full"}
        Matrix choice.
    pose : Pose
        The head pose of the series.
    rng : numpy.random.Generator
        Geometry random stream.

    Returns
    -------
    SeriesGeometry
        The grid.
    """
    base = _base_directions(protocol.orientation)
    if protocol.role in ("T2", "FLAIR"):
        tilt = rotation((0.7 * pose.angles_deg[0] + float(rng.normal(0.0, 2.0)), 0.0, 0.0))
    elif protocol.role == "T1":
        tilt = rotation((0.0, 0.0, 0.7 * pose.angles_deg[2] + float(rng.normal(0.0, 1.0))))
    else:
        tilt = np.eye(3)
    direction = tilt @ base
    row = np.round(direction[:, 0], 8)
    col = np.round(direction[:, 1], 8)
    normal = np.cross(row, col)
    direction = np.stack([row, col, normal], axis=1)

    cols, rows, slices = protocol.matrix[size]
    pixel = protocol.pixel_mm[size]
    spacing = (pixel, pixel, protocol.spacing_mm[size])
    centre_t = (_HEAD_CENTRE[0], _HEAD_CENTRE[1], protocol.fov_centre_z)
    centre = pose.apply(centre_t) + rng.normal(0.0, 3.0, 3)
    extent = np.array([(cols - 1) * spacing[0], (rows - 1) * spacing[1], (slices - 1) * spacing[2]])
    origin = np.round(centre - direction @ (extent / 2.0), 4)
    return SeriesGeometry(
        size=(cols, rows, slices),
        spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        direction=tuple(float(v) for v in direction.ravel()),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        slice_thickness=float(protocol.thickness_mm[size]),
    )


def resample(
    image: sitk.Image,
    geometry: SeriesGeometry,
    pose: Pose,
    *,
    interpolator: int = sitk.sitkLinear,
    sim_spacing: float = 1.0,
    thick: bool = False,
) -> FloatArray:
    """Resample a template-space image into a series grid.

    Parameters
    ----------
    image : SimpleITK.Image
        Template-space image.
    geometry : SeriesGeometry
        Target grid (scanner coordinates).
    pose : Pose
        Template -> scanner pose of this series.
    interpolator : int, optional
        SimpleITK interpolator (linear by default; nearest for labels).
    sim_spacing : float, optional
        Simulation grid spacing, to choose the number of sub-slices.
    thick : bool, optional
        If True, average sub-slices across the slice thickness (box slice profile), as a
        thick 2D slice integrates the signal across its thickness.

    Returns
    -------
    numpy.ndarray
        ``(slices, rows, columns)`` float32 array.
    """
    inverse = pose.transform().GetInverse()
    n_sub = 1
    if thick:
        n_sub = max(2, math.ceil(1.5 * geometry.slice_thickness / sim_spacing))
    offsets = [((j + 0.5) / n_sub - 0.5) * geometry.slice_thickness for j in range(n_sub)]
    if n_sub == 1:
        offsets = [0.0]
    acc: FloatArray | None = None
    for off in offsets:
        out = sitk.Resample(
            image, geometry.reference(off), inverse, interpolator, 0.0, sitk.sitkFloat32
        )
        arr = sitk.GetArrayFromImage(out).astype(np.float32)
        acc = arr if acc is None else acc + arr
    assert acc is not None
    return np.asarray(acc / np.float32(len(offsets)), dtype=np.float32)
