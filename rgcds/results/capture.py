"""Secondary Capture overlays: the segmentation burned into key slices, for any viewer.

Each image is an RGB rendering of one axial slice of a background (the T1c reference series,
and optional extra backgrounds such as FLAIR already resampled on the reference grid) with
the sub-regions filled semi-transparently, a legend, and "RESEARCH USE ONLY" burned in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt
import structlog
from highdicom.sc import SCImage
from PIL import Image, ImageDraw, ImageFont

from rgcds import __version__
from rgcds.exceptions import DicomInputError
from rgcds.results import codes
from rgcds.results._common import (
    MANUFACTURER,
    SERIES_DESCRIPTION,
    SERIES_NUMBER,
    ObjectKind,
    contributing_equipment,
    stamp,
)
from rgcds.results.content import SEGMENT_REGIONS, Region, SegmentationResult, SourceSeries
from rgcds.results.seg import result_key

logger = structlog.get_logger(__name__)

REGION_COLOURS: dict[Region, tuple[int, int, int]] = {
    Region.NCR: (230, 40, 40),
    Region.ET: (255, 215, 0),
    Region.ED: (40, 200, 80),
}
"""Overlay colour of each segment region (red core, yellow enhancing, green oedema)."""

OVERLAY_ALPHA = 0.45
MIN_OUTPUT_SIZE = 512
"""Images are enlarged (nearest neighbour, integer factor) to at least this many pixels."""

BANNER = "RESEARCH USE ONLY"


def key_slices(labels: npt.NDArray[np.uint8], count: int = 3) -> list[int]:
    """Pick up to ``count`` key slices: the largest tumour cross-section and its neighbours
    at a quarter and three quarters of the tumour's extent; the middle slice if no tumour."""
    area = (labels > 0).reshape(labels.shape[0], -1).sum(axis=1)
    if not area.any():
        return [labels.shape[0] // 2]
    nonzero = np.flatnonzero(area)
    lo, hi = int(nonzero[0]), int(nonzero[-1])
    chosen = [int(np.argmax(area))]
    for frac in (0.25, 0.75):
        chosen.append(round(lo + frac * (hi - lo)))
    return sorted(set(chosen[:count]))


def _window(volume: npt.NDArray[np.floating]) -> tuple[float, float]:
    values = volume[volume > 0] if np.any(volume > 0) else volume.ravel()
    lo, hi = np.percentile(values, [1.0, 99.5])
    return float(lo), float(max(hi, lo + 1e-6))


def _orientation(iop: Sequence[float]) -> tuple[str, str]:
    """Patient orientation (row and column directions) from ImageOrientationPatient."""

    def letter(v: Sequence[float]) -> str:
        axis = int(np.argmax(np.abs(v)))
        positive = v[axis] > 0
        return ("L", "P", "H")[axis] if positive else ("R", "A", "F")[axis]

    return (letter([float(x) for x in iop[:3]]), letter([float(x) for x in iop[3:]]))


def render_slice(
    background: npt.NDArray[np.floating],
    labels: npt.NDArray[np.uint8],
    window: tuple[float, float],
    caption: str,
) -> npt.NDArray[np.uint8]:
    """Render one slice as an RGB uint8 image with the overlay and burned-in text."""
    lo, hi = window
    grey = np.clip((background.astype(np.float64) - lo) / (hi - lo), 0, 1) * 255
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for region in SEGMENT_REGIONS:
        mask = np.isin(labels, region.labels)
        colour = np.array(REGION_COLOURS[region], dtype=np.float64)
        rgb[mask] = (1 - OVERLAY_ALPHA) * rgb[mask] + OVERLAY_ALPHA * colour
    factor = max(1, math.ceil(MIN_OUTPUT_SIZE / min(rgb.shape[:2])))
    big = np.kron(rgb, np.ones((factor, factor, 1))).astype(np.uint8)
    image = Image.fromarray(big, mode="RGB")
    draw = ImageDraw.Draw(image)
    size = max(12, image.width // 28)
    font = ImageFont.load_default(size=size)
    small = ImageFont.load_default(size=max(10, size * 2 // 3))
    draw.rectangle((0, 0, image.width, size + 8), fill=(0, 0, 0))
    draw.text((6, 3), BANNER, fill=(255, 60, 60), font=font)
    y = image.height - (max(10, size * 2 // 3) + 6) * 4
    for region in SEGMENT_REGIONS:
        draw.rectangle((6, y + 2, 6 + size // 2, y + 2 + size // 2), fill=REGION_COLOURS[region])
        draw.text((12 + size // 2, y), codes.REGION_LABEL[region], fill=(255, 255, 255), font=small)
        y += max(10, size * 2 // 3) + 6
    draw.text((6, y), caption, fill=(255, 255, 255), font=small)
    return np.asarray(image, dtype=np.uint8)


def build_overlays(
    source: SourceSeries,
    segmentation: SegmentationResult,
    *,
    backgrounds: Mapping[str, npt.NDArray[np.floating]] | None = None,
    slices: Sequence[int] | None = None,
    analysed_at: datetime | None = None,
) -> list[SCImage]:
    """Build the Secondary Capture series of overlays.

    Parameters
    ----------
    source
        The reference (T1c) series; its pixels are the first background.
    segmentation
        The labels on the reference grid.
    backgrounds
        Extra backgrounds by name (e.g. ``{"FLAIR": array}``), each already resampled to
        the reference grid, shape ``(slices, rows, cols)``.
    slices
        Slice indices to render; by default :func:`key_slices`.
    analysed_at
        Stamped as series/content date and time.

    Returns
    -------
    list of highdicom.sc.SCImage
        RGB images (T1c first, then each extra background, per key slice) in one new
        series of the source study, with BurnedInAnnotation YES and "research use only".

    Raises
    ------
    DicomInputError
        If a background does not have the reference grid's shape.
    """
    key = result_key(source, segmentation.algorithm)
    layers: dict[str, npt.NDArray[np.floating]] = {"T1c": source.pixel_volume()}
    for name, volume in (backgrounds or {}).items():
        if volume.shape != source.shape:
            raise DicomInputError(
                f"The {name} background has shape {volume.shape}, not the reference grid "
                f"{source.shape}; resample it onto the T1c grid first."
            )
        layers[name] = volume
    chosen = list(slices) if slices is not None else key_slices(segmentation.labels)
    images: list[SCImage] = []
    series_uid = key.series_uid(ObjectKind.SC)
    for name, volume in layers.items():
        window = _window(volume)
        for k in chosen:
            ref = source.datasets[k]
            caption = f"{name} slice {k + 1}/{source.shape[0]}  rgcds {__version__}"
            pixels = render_slice(volume[k], segmentation.labels[k], window, caption)
            factor = pixels.shape[0] / float(ref.Rows)
            spacing = tuple(float(v) / factor for v in ref.PixelSpacing)
            index = len(images)
            sc = SCImage.from_ref_dataset(
                ref_dataset=ref,
                pixel_array=pixels,
                photometric_interpretation="RGB",
                bits_allocated=8,
                coordinate_system="PATIENT",
                series_instance_uid=series_uid,
                series_number=SERIES_NUMBER[ObjectKind.SC],
                sop_instance_uid=key.instance_uid(ObjectKind.SC, index),
                instance_number=index + 1,
                manufacturer=MANUFACTURER,
                pixel_spacing=spacing,
                patient_orientation=_orientation(ref.ImageOrientationPatient),
                contributing_equipment=contributing_equipment(analysed_at),
                series_description=SERIES_DESCRIPTION[ObjectKind.SC],
            )
            sc.BurnedInAnnotation = "YES"
            # The brain is unpaired: with BodyPartExamined, Laterality (2C) must be absent.
            sc.BodyPartExamined = str(ref.get("BodyPartExamined") or "BRAIN")
            sc.ImageComments = f"{name} with tumour overlay. {BANNER}."
            sc.DerivationDescription = "Segmentation overlay rendered by rgcds. Research use only."
            stamp(sc, analysed_at)
            images.append(sc)
    logger.info(
        "overlays_built", study_uid=key.study_instance_uid, images=len(images), slices=chosen
    )
    return images


__all__ = ["BANNER", "REGION_COLOURS", "build_overlays", "key_slices", "render_slice"]
