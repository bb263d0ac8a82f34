"""Pixel rendering of the Secondary Capture overlays: key slices, the segmentation over a
grey-scale slice, and the PET TBR colour map (fused or alone) with contours and colour bar,
each with "RESEARCH USE ONLY" burned in.

Re-exported by :mod:`rgcds.results.capture`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from rgcds.results import codes
from rgcds.results._common import PET_COLOURS, REGION_COLOURS
from rgcds.results.content import SEGMENT_REGIONS, PetSegment

OVERLAY_ALPHA = 0.45
MIN_OUTPUT_SIZE = 512
"""Images are enlarged (nearest neighbour, integer factor) to at least this many pixels."""

BANNER = "RESEARCH USE ONLY"


def _banner_canvas(
    pixels: npt.NDArray[np.uint8],
) -> tuple[Image.Image, ImageDraw.ImageDraw, int, ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    """``pixels`` (RGB) as an image with the "RESEARCH USE ONLY" banner burned in at the top;
    with its drawing context, the banner's font size and the small font of the legends."""
    image = Image.fromarray(pixels, mode="RGB")
    draw = ImageDraw.Draw(image)
    size = max(12, image.width // 28)
    font = ImageFont.load_default(size=size)
    small = ImageFont.load_default(size=max(10, size * 2 // 3))
    draw.rectangle((0, 0, image.width, size + 8), fill=(0, 0, 0))
    draw.text((6, 3), BANNER, fill=(255, 60, 60), font=font)
    return image, draw, size, small


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


_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


def side_letters(iop: Sequence[float]) -> tuple[str, str]:
    """The patient directions at the image's left and right edges (e.g. ``("R", "L")`` for
    an axial slice seen from the feet, as radiologists read it)."""
    row = _orientation(iop)[0]  # the direction in which the column index grows
    return _OPPOSITE[row], row


def _draw_sides(
    draw: ImageDraw.ImageDraw, image: Image.Image, sides: tuple[str, str] | None, size: int
) -> None:
    """Burn the orientation letters in (banner size, on black) at the left and right edges,
    below the middle (the PET colour bar ends at the middle)."""
    if sides is None:
        return
    font = ImageFont.load_default(size=size)
    y = image.height * 3 // 5 - size // 2
    for text, left in ((sides[0], True), (sides[1], False)):
        width = draw.textlength(text, font=font)
        x = 6 if left else image.width - 6 - width
        draw.rectangle((x - 3, y - 2, x + width + 3, y + size + 4), fill=(0, 0, 0))
        draw.text((x, y), text, fill=(255, 255, 255), font=font)


def render_slice(
    background: npt.NDArray[np.floating],
    labels: npt.NDArray[np.uint8],
    window: tuple[float, float],
    caption: str,
    postoperative: bool = False,
    sides: tuple[str, str] | None = None,
) -> npt.NDArray[np.uint8]:
    """Render one slice as an RGB uint8 image with the overlay and burned-in text.

    ``postoperative`` names the legend's regions with the post-operative labels; ``sides``
    (:func:`side_letters`) are burned in at the left and right edges.
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
    image, draw, size, small = _banner_canvas(big)
    y = image.height - (max(10, size * 2 // 3) + 6) * 4
    for region in SEGMENT_REGIONS:
        draw.rectangle((6, y + 2, 6 + size // 2, y + 2 + size // 2), fill=REGION_COLOURS[region])
        name = codes.region_label(region, postoperative)
        draw.text((12 + size // 2, y), name, fill=(255, 255, 255), font=small)
        y += max(10, size * 2 // 3) + 6
    draw.text((6, y), caption, fill=(255, 255, 255), font=small)
    _draw_sides(draw, image, sides, size)
    return np.asarray(image, dtype=np.uint8)


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
    sides: tuple[str, str] | None = None,
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
    sides
        Orientation letters at the left and right edges (:func:`side_letters`).

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
    image, draw, size, small = _banner_canvas(rgb.astype(np.uint8))
    line = max(10, size * 2 // 3)
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
    _draw_sides(draw, image, sides, size)
    return np.asarray(image, dtype=np.uint8)
