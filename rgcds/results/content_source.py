"""The reference series of the result writers: :class:`SourceSeries` (single-frame
instances or the frames of one multi-frame instance) and its functional-group helpers.

Re-exported by :mod:`rgcds.results.content`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom

from rgcds.exceptions import DicomInputError


def is_multiframe(ds: pydicom.Dataset) -> bool:
    """Whether ``ds`` is a multi-frame image with functional groups (Enhanced or Legacy
    Converted Enhanced MR/PET/CT), whose frames are the slices of a volume."""
    return int(ds.get("NumberOfFrames") or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds


def frame_macro(ds: pydicom.Dataset, frame_number: int, keyword: str) -> pydicom.Dataset | None:
    """The first item of functional group ``keyword`` (e.g. ``"PlanePositionSequence"``) of
    frame ``frame_number`` (1-based): per-frame if present, else shared; ``None`` if neither."""
    for groups, index in (
        (ds.get("PerFrameFunctionalGroupsSequence"), frame_number - 1),
        (ds.get("SharedFunctionalGroupsSequence"), 0),
    ):
        if groups and 0 <= index < len(groups):
            seq = groups[index].get(keyword)
            if seq:
                item: pydicom.Dataset = seq[0]
                return item
    return None


@dataclass(frozen=True, slots=True, eq=False)
class SourceSeries:
    """The reference (T1c) series, in slice order: single-frame instances, or the frames of
    one multi-frame instance (Enhanced or Legacy Converted Enhanced MR/PET).

    The SEG is defined on this grid and references these instances (frames). Slice ``k``
    (``labels[k]`` of :class:`SegmentationResult`) is ``datasets[k]`` for single-frame
    instances, and frame ``frame_numbers[k]`` of ``datasets[0]`` for a multi-frame one
    (:meth:`slice_dataset`, :meth:`slice_frame_number`).

    Raises
    ------
    DicomInputError
        If there are no datasets, they come from more than one series, a multi-frame
        instance comes with other instances, or a frame number is not a frame of it.
    """

    datasets: tuple[pydicom.Dataset, ...]
    frame_numbers: tuple[int, ...] = ()
    """The 1-based frame of the multi-frame ``datasets[0]`` that each slice is, in slice
    order (the stored frame order if not given); empty for single-frame instances."""

    def __post_init__(self) -> None:
        if not self.datasets:
            raise DicomInputError("The reference series has no instances; nothing to segment.")
        uids = {str(ds.SeriesInstanceUID) for ds in self.datasets}
        if len(uids) != 1:
            raise DicomInputError(
                "The reference series' datasets come from more than one series; pass the "
                "instances of one series in slice order."
            )
        if not any(is_multiframe(ds) for ds in self.datasets):
            if any(f != 1 for f in self.frame_numbers):
                raise DicomInputError(
                    "Frame numbers other than 1 were given for single-frame instances; pass "
                    "frame numbers only with one multi-frame instance."
                )
            object.__setattr__(self, "frame_numbers", ())
            return
        if len(self.datasets) != 1:
            raise DicomInputError(
                f"The reference series holds {len(self.datasets)} instances of which some are "
                "multi-frame; a SEG can be derived from one multi-frame image or from "
                "single-frame images only. Send the series as one Enhanced object or as "
                "single-frame instances."
            )
        n_frames = int(self.datasets[0].get("NumberOfFrames") or 1)
        frames = self.frame_numbers or tuple(range(1, n_frames + 1))
        if any(not 1 <= f <= n_frames for f in frames) or len(set(frames)) != len(frames):
            raise DicomInputError(
                f"The frame numbers of the reference slices must be distinct frames 1-"
                f"{n_frames} of the multi-frame instance; got {min(frames)}-{max(frames)} "
                f"for {len(frames)} slices."
            )
        object.__setattr__(self, "frame_numbers", tuple(int(f) for f in frames))

    @property
    def series_instance_uid(self) -> str:
        """The SeriesInstanceUID of the reference series."""
        return str(self.datasets[0].SeriesInstanceUID)

    @property
    def study_instance_uid(self) -> str:
        """The StudyInstanceUID of the reference series."""
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def is_multiframe(self) -> bool:
        """Whether the slices are frames of one multi-frame instance."""
        return bool(self.frame_numbers)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, columns)."""
        first = self.datasets[0]
        slices = len(self.frame_numbers) if self.is_multiframe else len(self.datasets)
        return (slices, int(first.Rows), int(first.Columns))

    def slice_dataset(self, k: int) -> pydicom.Dataset:
        """The instance that holds slice ``k``."""
        return self.datasets[0] if self.is_multiframe else self.datasets[k]

    def slice_frame_number(self, k: int) -> int | None:
        """The 1-based frame number of slice ``k`` in its multi-frame instance, or ``None``
        for a single-frame instance."""
        return self.frame_numbers[k] if self.is_multiframe else None

    def slice_geometry(self, k: int) -> tuple[tuple[float, float], tuple[float, ...]]:
        """Pixel Spacing (row, column; mm) and Image Orientation (Patient) of slice ``k``,
        from the top level or (multi-frame) the frame's functional groups."""
        ds = self.slice_dataset(k)
        frame = self.slice_frame_number(k)
        if frame is None:
            spacing_ds: pydicom.Dataset | None = ds
            orientation_ds: pydicom.Dataset | None = ds
        else:
            spacing_ds = frame_macro(ds, frame, "PixelMeasuresSequence")
            orientation_ds = frame_macro(ds, frame, "PlaneOrientationSequence")
        values = spacing_ds.get("PixelSpacing") if spacing_ds is not None else None
        spacing = [float(v) for v in values or (1.0, 1.0)]
        if orientation_ds is None or "ImageOrientationPatient" not in orientation_ds:
            raise DicomInputError(
                f"Slice {k + 1} of the reference series has no Image Orientation (Patient); "
                "it cannot be placed in patient space."
            )
        orientation = tuple(float(v) for v in orientation_ds.ImageOrientationPatient)
        return (spacing[0], spacing[1]), orientation

    def to_source_order(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``array`` (slice order on axis 0) in the order of the source frames, as highdicom
        expects it with a multi-frame source image: frame ``f`` at index ``f - 1``, frames
        that are no slice all zero. Unchanged for single-frame instances."""
        if not self.is_multiframe:
            return array
        n_frames = int(self.datasets[0].get("NumberOfFrames") or 1)
        out = np.zeros((n_frames, *array.shape[1:]), dtype=array.dtype)
        out[np.asarray(self.frame_numbers) - 1] = array
        return out

    def pixel_volume(self) -> npt.NDArray[np.float32]:
        """The rescaled pixel data as a (slices, rows, cols) float32 array."""
        if not self.is_multiframe:
            slices = []
            for ds in self.datasets:
                arr = ds.pixel_array.astype(np.float32)
                slope = float(ds.get("RescaleSlope", 1) or 1)
                intercept = float(ds.get("RescaleIntercept", 0) or 0)
                slices.append(arr * slope + intercept)
            return np.stack(slices)
        ds = self.datasets[0]
        pixels = np.asarray(ds.pixel_array)
        if pixels.ndim == 2:
            pixels = pixels[np.newaxis]
        out = np.empty(self.shape, dtype=np.float32)
        for k, frame in enumerate(self.frame_numbers):
            transform = frame_macro(ds, frame, "PixelValueTransformationSequence") or ds
            slope = float(transform.get("RescaleSlope", 1) or 1)
            intercept = float(transform.get("RescaleIntercept", 0) or 0)
            out[k] = pixels[frame - 1].astype(np.float32) * slope + intercept
        return out
