# SimpleITK (SWIG) ships no type hints: its calls are untyped and return Any.
"""Convert a DICOM series into one regular 3D SimpleITK volume (LPS, float32).

Single-frame series are sorted along the slice normal by Image Position (Patient), never by
Instance Number. Enhanced (multi-frame) MR and PET are read frame by frame through the
per-frame and shared functional groups (Plane Position, Plane Orientation, Pixel Measures,
Pixel Value Transformation). Compressed transfer syntaxes are decoded by pydicom's pixel
handlers (pylibjpeg). Rescale slope and intercept are applied per slice. PET is converted
to SUVbw when the header allows it (:mod:`rgcds.study.suv`), otherwise kept in Bq/ml with
the reason.

The geometry is checked (:mod:`rgcds.study.stack`) and each problem raises its own
:class:`GeometryError` subclass: several orientations, several stacks, a 4D series (repeated
positions), gantry tilt, missing slices and non-uniform spacing.

A dual-echo series (the PD/T2 spin echo of older 1.5 T protocols: two images per position, one
per echo) is 4D; ``load_volume(..., echo="longest")`` keeps the images of the longest Echo
Time, the T2-weighted echo, and converts them as one volume.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import SimpleITK as sitk
import structlog

from rgcds.exceptions import DicomInputError
from rgcds.logging import remember_phi
from rgcds.study.enums import PetQuantity
from rgcds.study.index import SeriesInfo
from rgcds.study.stack import (
    FourDimensionalSeriesError,
    GantryTiltError,
    MissingSlicesError,
    MixedOrientationError,
    MultipleStacksError,
    NonUniformSpacingError,
    StackGeometry,
    stack_geometry,
)
from rgcds.study.suv import SuvResult, compute_suv_factor, parse_dicom_datetime

logger = structlog.get_logger(__name__)


# --- errors -------------------------------------------------------------------------------


class PixelDataError(DicomInputError):
    """The pixel data of an instance cannot be decoded or has no usable geometry."""


# --- result -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Volume:
    """A 3D volume converted from one DICOM series.

    Attributes
    ----------
    image
        float32 image in DICOM patient coordinates (LPS), rescaled; PET in SUVbw or Bq/ml.
    series_instance_uid, frame_of_reference_uid, modality
        From the source series.
    sop_instance_uids
        The SOP Instance UID of the source of each slice, in slice order (index k is slice z=k).
    frame_numbers
        The 1-based frame number of each slice in its instance (all 1 for single-frame).
    pet
        How PET values were scaled (``None`` for other modalities).
    """

    image: sitk.Image
    series_instance_uid: str
    sop_instance_uids: tuple[str, ...]
    frame_of_reference_uid: str
    modality: str
    frame_numbers: tuple[int, ...] = field(default=())
    pet: SuvResult | None = None

    @property
    def quantity(self) -> PetQuantity | None:
        """What PET voxel values mean, or ``None`` for non-PET volumes."""
        return None if self.pet is None else self.pet.quantity


@dataclass(frozen=True, slots=True)
class _Slice:
    position: npt.NDArray[np.float64]
    row_cosine: npt.NDArray[np.float64]
    column_cosine: npt.NDArray[np.float64]
    spacing: tuple[float, float]  # (between rows, between columns) = PixelSpacing
    pixels: npt.NDArray[np.float32]
    sop_instance_uid: str
    frame_number: int
    thickness: float | None
    acquired: datetime | None
    echo_time: float | None = None


# --- reading ------------------------------------------------------------------------------


def _floats(value: Any, n: int, what: str, uid: str) -> npt.NDArray[np.float64]:
    try:
        array = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PixelDataError(
            f"Instance {uid} has a malformed {what}; the series cannot be converted."
        ) from exc
    if array.shape != (n,):
        raise PixelDataError(
            f"Instance {uid} has a {what} with {array.size} values instead of {n}; the series "
            "cannot be converted."
        )
    return array


def _macro(groups: Any, index: int, keyword: str) -> Any:
    """The first item of macro ``keyword`` in a functional-groups item, or ``None``."""
    if not groups or index >= len(groups):
        return None
    seq = groups[index].get(keyword)
    return seq[0] if seq else None


def _frame_macro(ds: Any, frame: int, keyword: str) -> Any:
    item = _macro(ds.get("PerFrameFunctionalGroupsSequence"), frame, keyword)
    if item is None:
        item = _macro(ds.get("SharedFunctionalGroupsSequence"), 0, keyword)
    return item


def _pixels(ds: Any, uid: str) -> npt.NDArray[Any]:
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises many types for undecodable data
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise PixelDataError(
            f"The pixel data of instance {uid} (transfer syntax {ts}) cannot be decoded "
            f"({type(exc).__name__}); install the matching pylibjpeg plugin or convert the "
            "series to an uncompressed transfer syntax."
        ) from exc


def _rescale(pixels: npt.NDArray[Any], slope: Any, intercept: Any) -> npt.NDArray[np.float32]:
    s = float(slope) if slope not in (None, "") else 1.0
    b = float(intercept) if intercept not in (None, "") else 0.0
    out = pixels.astype(np.float32)
    if s != 1.0:
        out *= np.float32(s)
    if b != 0.0:
        out += np.float32(b)
    return out


def _echo_time(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _keep_longest_echo(slices: list[_Slice]) -> list[_Slice]:
    """The images of the longest Echo Time, when the series holds several echoes."""
    echoes = {round(s.echo_time, 3) for s in slices if s.echo_time is not None}
    if len(echoes) < 2:
        return slices
    longest = max(echoes)
    kept = [s for s in slices if s.echo_time is not None and round(s.echo_time, 3) == longest]
    logger.info("late echo kept", echoes_ms=sorted(echoes), kept=len(kept), of=len(slices))
    return kept


def _slices_single_frame(ds: Any, uid: str) -> list[_Slice]:
    if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
        raise PixelDataError(
            f"Instance {uid} has no Image Position/Orientation (Patient), so it cannot be "
            "placed in a volume."
        )
    orientation = _floats(ds.ImageOrientationPatient, 6, "Image Orientation (Patient)", uid)
    spacing = _floats(ds.get("PixelSpacing") or [1.0, 1.0], 2, "Pixel Spacing", uid)
    pixels = _pixels(ds, uid)
    if pixels.ndim != 2:
        raise PixelDataError(
            f"Instance {uid} is not a single-frame grayscale image (pixel array shape "
            f"{pixels.shape}); rgcds converts grayscale MR, PET and CT only."
        )
    acquired = (
        parse_dicom_datetime(
            str(ds.get("AcquisitionDate", "") or ds.get("SeriesDate", "")),
            str(ds.get("AcquisitionTime", "")),
        )
        if ds.get("AcquisitionTime")
        else None
    )
    return [
        _Slice(
            position=_floats(ds.ImagePositionPatient, 3, "Image Position (Patient)", uid),
            row_cosine=orientation[:3],
            column_cosine=orientation[3:],
            spacing=(float(spacing[0]), float(spacing[1])),
            pixels=_rescale(pixels, ds.get("RescaleSlope"), ds.get("RescaleIntercept")),
            sop_instance_uid=uid,
            frame_number=1,
            thickness=float(ds.SliceThickness) if ds.get("SliceThickness") else None,
            acquired=acquired,
            echo_time=_echo_time(ds.get("EchoTime")),
        )
    ]


def _slices_multi_frame(ds: Any, uid: str) -> list[_Slice]:
    n_frames = int(ds.get("NumberOfFrames") or 1)
    if "PerFrameFunctionalGroupsSequence" not in ds and "SharedFunctionalGroupsSequence" not in ds:
        raise PixelDataError(
            f"Multi-frame instance {uid} has no functional groups, so the position of each "
            "frame is unknown; rgcds converts Enhanced MR/PET/CT multi-frame images."
        )
    pixels = _pixels(ds, uid)
    if pixels.ndim == 2 and n_frames == 1:
        pixels = pixels[np.newaxis]
    if pixels.ndim != 3 or pixels.shape[0] != n_frames:
        raise PixelDataError(
            f"Multi-frame instance {uid} has pixel array shape {pixels.shape} for "
            f"{n_frames} frames; only grayscale multi-frame images are supported."
        )
    out: list[_Slice] = []
    for k in range(n_frames):
        position = _frame_macro(ds, k, "PlanePositionSequence")
        orientation = _frame_macro(ds, k, "PlaneOrientationSequence")
        measures = _frame_macro(ds, k, "PixelMeasuresSequence")
        transform = _frame_macro(ds, k, "PixelValueTransformationSequence")
        content = _frame_macro(ds, k, "FrameContentSequence")
        if position is None or orientation is None:
            raise PixelDataError(
                f"Frame {k + 1} of instance {uid} has no Plane Position or Plane Orientation "
                "functional group; the frame cannot be placed in a volume."
            )
        iop = _floats(orientation.ImageOrientationPatient, 6, "Image Orientation (Patient)", uid)
        spacing = (1.0, 1.0)
        thickness: float | None = None
        if measures is not None:
            sp = _floats(measures.get("PixelSpacing") or [1.0, 1.0], 2, "Pixel Spacing", uid)
            spacing = (float(sp[0]), float(sp[1]))
            thickness = float(measures.SliceThickness) if measures.get("SliceThickness") else None
        slope = transform.get("RescaleSlope") if transform is not None else ds.get("RescaleSlope")
        intercept = (
            transform.get("RescaleIntercept")
            if transform is not None
            else ds.get("RescaleIntercept")
        )
        echo = _frame_macro(ds, k, "MREchoSequence")
        acquired = None
        if content is not None and content.get("FrameAcquisitionDateTime"):
            acquired = parse_dicom_datetime(str(content.FrameAcquisitionDateTime))
        out.append(
            _Slice(
                position=_floats(position.ImagePositionPatient, 3, "Image Position (Patient)", uid),
                row_cosine=iop[:3],
                column_cosine=iop[3:],
                spacing=spacing,
                pixels=_rescale(pixels[k], slope, intercept),
                sop_instance_uid=uid,
                frame_number=k + 1,
                thickness=thickness,
                acquired=acquired,
                echo_time=_echo_time(echo.get("EffectiveEchoTime") if echo is not None else None),
            )
        )
    return out


# --- public -------------------------------------------------------------------------------


def _paths(source: SeriesInfo | Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(source, SeriesInfo):
        return [i.path for i in source.instances]
    return [Path(p) for p in source]


def load_volume(
    source: SeriesInfo | Sequence[str | os.PathLike[str]],
    *,
    suv: bool = True,
    echo: str = "all",
) -> Volume:
    """Read a series and convert it into a :class:`Volume`.

    Parameters
    ----------
    source
        A series from :func:`rgcds.study.index_study`, or the files of one series.
    suv
        Convert PET to SUVbw when the header allows it (otherwise Bq/ml is kept).
    echo
        ``"all"``: every image; ``"longest"``: when the series holds several echo times
        (dual-echo PD/T2), only the images of the longest (the T2-weighted echo).

    Returns
    -------
    Volume

    Raises
    ------
    DicomInputError
        If the files are not one readable image series (``PixelDataError`` for undecodable
        pixels).
    GeometryError
        A subclass naming the geometry problem (see the module docstring).
    """
    paths = _paths(source)
    if not paths:
        raise DicomInputError("The series has no instances; nothing can be converted.")
    slices: list[_Slice] = []
    first: Any = None
    series_uids: set[str] = set()
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError) as exc:
            raise DicomInputError(
                f"The file {path.name} cannot be read as DICOM ({type(exc).__name__}); "
                "remove it or resend the series."
            ) from exc
        remember_phi(ds)
        first = first if first is not None else ds
        uid = str(ds.get("SOPInstanceUID", ""))
        series_uids.add(str(ds.get("SeriesInstanceUID", "")))
        if int(ds.get("NumberOfFrames") or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
            slices.extend(_slices_multi_frame(ds, uid))
        else:
            slices.extend(_slices_single_frame(ds, uid))
    if len(series_uids) > 1:
        raise DicomInputError(
            f"The files belong to {len(series_uids)} different series; convert one series "
            "at a time."
        )
    series_uid = series_uids.pop()
    if echo == "longest":
        slices = _keep_longest_echo(slices)
    elif echo != "all":
        raise ValueError(f"echo must be 'all' or 'longest', not {echo!r}")
    fallback = None
    if first.get("SpacingBetweenSlices"):
        fallback = float(first.SpacingBetweenSlices)
    elif slices[0].thickness:
        fallback = slices[0].thickness
    geometry = stack_geometry(
        [s.position for s in slices],
        [s.row_cosine for s in slices],
        [s.column_cosine for s in slices],
        [s.spacing for s in slices],
        [(int(s.pixels.shape[0]), int(s.pixels.shape[1])) for s in slices],
        fallback_spacing=fallback,
        series_instance_uid=series_uid,
    )
    ordered = [slices[i] for i in geometry.order]
    array = np.stack([s.pixels for s in ordered]).astype(np.float32, copy=False)

    modality = str(first.get("Modality", "")).upper()
    pet: SuvResult | None = None
    if modality == "PT":
        if suv:
            acquired = [s.acquired for s in slices if s.acquired is not None]
            pet = compute_suv_factor(first, acquired)
        else:
            pet = SuvResult(PetQuantity.BQML, None, "SUV conversion was not requested.")
        if pet.factor is not None and pet.factor != 1.0:
            array *= np.float32(pet.factor)

    image = sitk.GetImageFromArray(array)
    image.SetOrigin(geometry.origin)
    image.SetSpacing(geometry.spacing)
    image.SetDirection(geometry.direction)
    volume = Volume(
        image=image,
        series_instance_uid=series_uid,
        sop_instance_uids=tuple(s.sop_instance_uid for s in ordered),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
        modality=modality,
        frame_numbers=tuple(s.frame_number for s in ordered),
        pet=pet,
    )
    logger.info(
        "series converted",
        series_uid=series_uid,
        modality=modality,
        size=list(image.GetSize()),
        spacing=[round(v, 3) for v in image.GetSpacing()],
        pet_quantity=None if pet is None else pet.quantity.value,
    )
    return volume


__all__ = [
    "FourDimensionalSeriesError",
    "GantryTiltError",
    "MissingSlicesError",
    "MixedOrientationError",
    "MultipleStacksError",
    "NonUniformSpacingError",
    "PixelDataError",
    "StackGeometry",
    "Volume",
    "load_volume",
    "stack_geometry",
]
