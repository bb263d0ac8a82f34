"""Secondary Capture overlays: the segmentation burned into key slices, for any viewer.

Each image is an RGB rendering of one axial slice of a background (the T1c reference series,
and optional extra backgrounds such as FLAIR already resampled on the reference grid) with
the sub-regions filled semi-transparently, a legend, and "RESEARCH USE ONLY" burned in.

:func:`build_pet_fusion` renders the amino-acid PET: the tumour-to-background ratio (TBR) as
a colour map over the T1c (fused PET/MR, in the MR study) or alone (PET-only, in the PET
study), with the BTV and CTV contours, a colour bar with the BTV threshold marked, the key
figures and "RESEARCH USE ONLY" burned in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import structlog
from highdicom.sc import SCImage
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from rgcds import __version__
from rgcds.exceptions import DicomInputError
from rgcds.results import codes
from rgcds.results._common import (
    MANUFACTURER,
    PET_COLOURS,
    REGION_COLOURS,
    SERIES_DESCRIPTION,
    SERIES_NUMBER,
    ObjectKind,
    contributing_equipment,
    series_description,
    stamp,
)
from rgcds.results.content import (
    SEGMENT_REGIONS,
    AlgorithmInfo,
    PetReport,
    PetSegment,
    SegmentationResult,
    SourceSeries,
)
from rgcds.results.seg import result_key

logger = structlog.get_logger(__name__)


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
    postoperative: bool = False,
) -> npt.NDArray[np.uint8]:
    """Render one slice as an RGB uint8 image with the overlay and burned-in text.

    ``postoperative`` names the legend's regions with the post-operative labels.
    """
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
        name = codes.region_label(region, postoperative)
        draw.text((12 + size // 2, y), name, fill=(255, 255, 255), font=small)
        y += max(10, size * 2 // 3) + 6
    draw.text((6, y), caption, fill=(255, 255, 255), font=small)
    return np.asarray(image, dtype=np.uint8)


def source_image_reference(source: SourceSeries, k: int) -> pydicom.Dataset:
    """An item of the Source Image Sequence for slice ``k`` of ``source``: its instance and,
    for a multi-frame instance, its frame (Referenced Frame Number)."""
    ref = source.slice_dataset(k)
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = ref.SOPClassUID
    item.ReferencedSOPInstanceUID = ref.SOPInstanceUID
    frame = source.slice_frame_number(k)
    if frame is not None:
        item.ReferencedFrameNumber = frame
    item.PurposeOfReferenceCodeSequence = [codes.SOURCE_IMAGE_FOR_PROCESSING]
    return item


def _capture(
    source: SourceSeries,
    k: int,
    pixels: npt.NDArray[np.uint8],
    kind: ObjectKind,
    index: int,
    key: Any,
    series_uid: str,
    analysed_at: datetime | None,
    description: str,
    *,
    comments: str,
    derivation: str,
) -> SCImage:
    """One burned-in RGB Secondary Capture of a rendered slice ``k`` of ``source``, which
    it references (Source Image Sequence)."""
    ref = source.slice_dataset(k)
    pixel_spacing, orientation = source.slice_geometry(k)
    factor = pixels.shape[0] / float(ref.Rows)
    spacing = tuple(v / factor for v in pixel_spacing)
    sc = SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=series_uid,
        series_number=SERIES_NUMBER[kind],
        sop_instance_uid=key.instance_uid(kind, index),
        instance_number=index + 1,
        manufacturer=MANUFACTURER,
        pixel_spacing=spacing,
        patient_orientation=_orientation(orientation),
        contributing_equipment=contributing_equipment(analysed_at),
        series_description=description,
    )
    sc.BurnedInAnnotation = "YES"
    # The brain is unpaired: with BodyPartExamined, Laterality (2C) must be absent.
    sc.BodyPartExamined = str(ref.get("BodyPartExamined") or "BRAIN")
    sc.ImageComments = comments
    sc.DerivationDescription = derivation
    sc.SourceImageSequence = [source_image_reference(source, k)]
    stamp(sc, analysed_at)
    return sc


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
            caption = f"{name} slice {k + 1}/{source.shape[0]}  rgcds {__version__}"
            pixels = render_slice(
                volume[k], segmentation.labels[k], window, caption, segmentation.postoperative
            )
            images.append(_capture(
                source, k, pixels, ObjectKind.SC, len(images), key, series_uid, analysed_at,
                series_description(ObjectKind.SC, segmentation.postoperative),
                comments=f"{name} with tumour overlay. {BANNER}.",
                derivation="Segmentation overlay rendered by rgcds. Research use only.",
            ))
    logger.info(
        "overlays_built", study_uid=key.study_instance_uid, images=len(images), slices=chosen
    )
    return images


PET_COLOURMAP = "inferno"
"""Matplotlib colour map of the TBR."""
BTV_COLOUR = PET_COLOURS[PetSegment.BTV]
CTV_COLOUR = PET_COLOURS[PetSegment.CTV]
THRESHOLD_COLOUR = (255, 255, 255)
FUSION_MAX_ALPHA = 0.7
"""Opacity of the TBR colour at and above the top of the colour scale (fused images)."""


def pet_key_slices(
    tbr: npt.NDArray[np.floating],
    btv: npt.NDArray[np.bool_] | None,
    count: int = 3,
) -> list[int]:
    """Up to ``count`` slices: the largest BTV cross-section, the hottest voxel's slice, then
    the BTV's extent at a quarter and three quarters (the hottest slice alone without BTV)."""
    hottest = int(np.unravel_index(int(np.argmax(tbr)), tbr.shape)[0])
    if btv is None or not np.any(btv):
        return [hottest]
    area = btv.reshape(btv.shape[0], -1).sum(axis=1)
    nonzero = np.flatnonzero(area)
    lo, hi = int(nonzero[0]), int(nonzero[-1])
    candidates = [int(np.argmax(area)), hottest, round(lo + 0.25 * (hi - lo))]
    candidates.append(round(lo + 0.75 * (hi - lo)))
    return sorted(list(dict.fromkeys(candidates))[:count])


def _contour(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    if not mask.any():
        return mask
    inner = ndimage.binary_erosion(mask, iterations=2, border_value=0)
    return np.asarray(mask & ~inner, dtype=bool)


def render_pet_slice(
    tbr: npt.NDArray[np.floating],
    *,
    threshold_tbr: float,
    tbr_top: float,
    background: npt.NDArray[np.floating] | None = None,
    window: tuple[float, float] = (0.0, 1.0),
    btv: npt.NDArray[np.bool_] | None = None,
    ctv: npt.NDArray[np.bool_] | None = None,
    caption: Sequence[str] = (),
) -> npt.NDArray[np.uint8]:
    """Render one slice of the TBR (colour) over ``background`` (grey) or alone, as RGB.

    Parameters
    ----------
    tbr
        Tumour-to-background ratio of the slice.
    threshold_tbr
        The BTV threshold, marked on the colour bar.
    tbr_top
        TBR at the top of the colour scale (the scale starts at 0 PET-only, at 1 fused).
    background
        The MR slice (fused); ``None`` for the PET alone.
    window
        Grey-scale window of ``background``.
    btv, ctv
        Masks whose contours are drawn (cyan, green).
    caption
        Lines written at the bottom left.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols, 3)`` uint8, enlarged to at least :data:`MIN_OUTPUT_SIZE` pixels, with
        "RESEARCH USE ONLY" burned in.
    """
    cmap = colormaps[PET_COLOURMAP]
    factor = max(1, math.ceil(MIN_OUTPUT_SIZE / min(tbr.shape)))
    up = np.ones((factor, factor))
    values = np.kron(np.asarray(tbr, dtype=np.float64), up)
    fused = background is not None
    bottom = 1.0 if fused else 0.0
    scaled = np.clip((values - bottom) / max(tbr_top - bottom, 1e-6), 0.0, 1.0)
    colour = np.asarray(cmap(scaled))[..., :3] * 255.0
    if background is not None:
        lo, hi = window
        grey = np.clip((background.astype(np.float64) - lo) / (hi - lo), 0, 1) * 255
        rgb = np.repeat(np.kron(grey, up)[..., None], 3, axis=2).astype(np.float64)
        alpha = (np.clip(scaled * 2.0, 0.0, 1.0) * FUSION_MAX_ALPHA)[..., None]
        alpha[values < bottom] = 0.0
        rgb = (1 - alpha) * rgb + alpha * colour
    else:
        rgb = colour
    for mask, mask_colour in ((ctv, CTV_COLOUR), (btv, BTV_COLOUR)):
        if mask is not None:
            edge = _contour(np.kron(mask.astype(np.uint8), up.astype(np.uint8)).astype(bool))
            rgb[edge] = mask_colour
    image = Image.fromarray(rgb.astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    size = max(12, image.width // 28)
    line = max(10, size * 2 // 3)
    font = ImageFont.load_default(size=size)
    small = ImageFont.load_default(size=line)
    draw.rectangle((0, 0, image.width, size + 8), fill=(0, 0, 0))
    draw.text((6, 3), BANNER, fill=(255, 60, 60), font=font)
    # Colour bar on the right, threshold marked.
    x0, x1 = image.width - 22, image.width - 8
    y0, y1 = size + 20, image.height // 2
    for y in range(y0, y1):
        frac = 1.0 - (y - y0) / max(y1 - y0 - 1, 1)
        rgba = cmap(frac)
        draw.line((x0, y, x1, y), fill=tuple(int(c * 255) for c in rgba[:3]))
    yt = y1 - (threshold_tbr - bottom) / max(tbr_top - bottom, 1e-6) * (y1 - y0)
    yt = float(np.clip(yt, y0, y1))
    draw.line((x0 - 6, yt, x1, yt), fill=THRESHOLD_COLOUR, width=2)
    labels = ((y0, f"TBR {tbr_top:.1f}"), (yt, f"{threshold_tbr:g} (BTV)"), (y1, f"{bottom:.0f}"))
    for ly, text in labels:
        width = draw.textlength(text, font=small)
        tx, ty = x0 - 10 - width, ly - line // 2
        draw.rectangle((tx - 2, ty - 1, tx + width + 2, ty + line + 3), fill=(0, 0, 0))
        draw.text((tx, ty), text, fill=(255, 255, 255), font=small)
    y = image.height - (line + 6) * (2 + len(caption))
    for name, mask_colour in (("BTV", BTV_COLOUR), ("CTV", CTV_COLOUR)):
        draw.rectangle((6, y + 2, 6 + size // 2, y + 2 + size // 2), fill=mask_colour)
        draw.text((12 + size // 2, y), name, fill=(255, 255, 255), font=small)
        y += line + 6
    for text in caption:
        draw.text((6, y), text, fill=(255, 255, 255), font=small)
        y += line + 6
    return np.asarray(image, dtype=np.uint8)


def build_pet_fusion(
    reference: SourceSeries,
    pet: PetReport,
    tbr: npt.NDArray[np.floating],
    *,
    algorithm: AlgorithmInfo,
    btv: npt.NDArray[np.bool_] | None = None,
    ctv: npt.NDArray[np.bool_] | None = None,
    slices: Sequence[int] | None = None,
    analysed_at: datetime | None = None,
) -> list[SCImage]:
    """Build the fused PET/MR (or PET-only) Secondary Capture series.

    Parameters
    ----------
    reference
        The grid of ``tbr`` and the masks, and the series the images are placed in: the MR
        reference (T1c) series for a fused PET/MR rendering (in the MR study), or the PET
        series (``Modality`` PT) for a PET-only rendering (in the PET study).
    pet
        The PET report (tracer, threshold, key figures for the caption).
    tbr
        Tumour-to-background ratio on ``reference``'s grid, ``(slices, rows, cols)``.
    algorithm
        The PET analysis' identification (UIDs derive from it and ``reference``).
    btv, ctv
        BTV and CTV masks on ``reference``'s grid (contours).
    slices
        Slice indices to render; by default :func:`pet_key_slices`.
    analysed_at
        Stamped as series/content date and time.

    Returns
    -------
    list of highdicom.sc.SCImage
        RGB images in one new series (9906) of ``reference``'s study, BurnedInAnnotation
        YES, "research use only" in the series description and burned in.

    Raises
    ------
    DicomInputError
        If ``tbr`` or a mask does not have ``reference``'s shape.
    """
    for name, array in (("TBR map", tbr), ("BTV mask", btv), ("CTV mask", ctv)):
        if array is not None and array.shape != reference.shape:
            raise DicomInputError(
                f"The {name} has shape {array.shape} but the overlay grid is "
                f"{reference.shape}; resample it onto the reference series first."
            )
    fused = str(reference.datasets[0].get("Modality", "")) != "PT"
    key = result_key(reference, algorithm)
    background = reference.pixel_volume() if fused else None
    window = _window(background) if background is not None else (0.0, 1.0)
    top = max(float(np.percentile(tbr, 99.9)), pet.threshold_tbr * 1.5, pet.tbr_max)
    chosen = list(slices) if slices is not None else pet_key_slices(tbr, btv)
    mode = "PET/MR fusion" if fused else "PET only (no MR)"
    figures = f"TBRmax {pet.tbr_max:.2f}  BTV {pet.btv_ml:.1f} ml at TBR >= {pet.threshold_tbr:g}"
    series_uid = key.series_uid(ObjectKind.PET_SC)
    images: list[SCImage] = []
    for index, k in enumerate(chosen):
        caption = [
            f"{pet.tracer} {mode}  slice {k + 1}/{reference.shape[0]}",
            figures,
            f"rgcds {__version__}",
        ]
        pixels = render_pet_slice(
            tbr[k],
            threshold_tbr=pet.threshold_tbr,
            tbr_top=top,
            background=background[k] if background is not None else None,
            window=window,
            btv=btv[k] if btv is not None else None,
            ctv=ctv[k] if ctv is not None else None,
            caption=caption,
        )
        images.append(_capture(
            reference, k, pixels, ObjectKind.PET_SC, index, key, series_uid, analysed_at,
            SERIES_DESCRIPTION[ObjectKind.PET_SC],
            comments=f"{pet.tracer} {mode}, TBR colour map, BTV and CTV contours. {BANNER}.",
            derivation="PET TBR overlay rendered by rgcds. Research use only.",
        ))
    logger.info(
        "pet_fusion_built",
        study_uid=key.study_instance_uid,
        images=len(images),
        slices=chosen,
        fused=fused,
    )
    return images


__all__ = [
    "BANNER",
    "REGION_COLOURS",
    "build_overlays",
    "build_pet_fusion",
    "key_slices",
    "pet_key_slices",
    "render_pet_slice",
    "render_slice",
    "source_image_reference",
]
