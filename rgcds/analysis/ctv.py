# SimpleITK ships no type hints: its calls are untyped and return Any.
"""Clinical target volume (CTV) for post-operative glioblastoma radiotherapy.

:func:`derive_ctv` (defined in :mod:`rgcds.imaging.ctv`, re-exported here) follows the
ESTRO-EANO 2023 guideline (Niyazi et al., Radiother Oncol 2023): GTV = resection cavity +
residual contrast-enhancing tumour; CTV = GTV + 15 mm isotropic margin, clipped to the brain.
The margin is a Euclidean distance map in mm computed with the image spacing (anisotropic
voxels are handled exactly at voxel centres). Anatomical barriers *within* the brain (falx,
tentorium, ventricles, bone) are not modelled — the CTV is only clipped to the brain mask; a
radiation oncologist edits it for planning. This CTV is an analysis region (e.g. for PET BTV
search and radiomics as in the reference MET-PET study), not a treatment plan.

:func:`ctv_refusal` is the CTV's sanity check: a CTV too large to be a post-operative
glioblastoma's target (absolutely, against the brain, or — derived — against the CTV a
compact GTV of the same volume would give) is refused with a sentence that says why.

:func:`select_ctv_roi` picks the CTV among the ROI names of an RT Structure Set.
:func:`rasterise_roi` fills the chosen ROI's closed planar contours on the grid of the image
series they were drawn on (OpenCV polygon filling, even-odd rule for holes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
import structlog
from pydicom.errors import InvalidDicomError

from rgcds.exceptions import DicomInputError
from rgcds.imaging.ctv import ESTRO_EANO_MARGIN_MM, CtvResult, derive_ctv
from rgcds.settings.pet import PetSettings

logger = structlog.get_logger(__name__)

#: Default ROI-name patterns (case-insensitive regexes, in priority order).
DEFAULT_CTV_PATTERNS: tuple[str, ...] = (r"^ctv$", r"^ctv[\s_-]*1?$", r"\bctv\b", r"ctv")


#: Planning helper structures never picked as the CTV (PTV, optimisation, rings, "z_" helpers).
_NOT_A_CTV = re.compile(r"ptv|opt|ring|^z[_\W]", re.IGNORECASE)


def compact_ctv_bound_ml(gtv_ml: float, margin_mm: float) -> float:
    """Volume (ml) of a ball of ``gtv_ml`` grown by ``margin_mm``: the CTV of a compact GTV."""
    radius: float = (3.0 * 1000.0 * max(gtv_ml, 0.0) / (4.0 * math.pi)) ** (1.0 / 3.0)
    return 4.0 / 3.0 * math.pi * (radius + margin_mm) ** 3 / 1000.0


def ctv_refusal(
    ctv_ml: float,
    brain_ml: float | None,
    *,
    gtv_ml: float | None = None,
    margin_mm: float = ESTRO_EANO_MARGIN_MM,
    settings: PetSettings | None = None,
) -> str | None:
    """Why a CTV is implausible, or ``None`` when it passes.

    Parameters
    ----------
    ctv_ml
        The CTV's volume.
    brain_ml
        The brain mask's volume (``None``: that bound is not checked).
    gtv_ml
        For a derived CTV, its GTV's volume: the CTV may not exceed a ball of that volume
        grown by ``margin_mm`` + ``ctv_excess_margin_mm``. ``None`` for an RT Structure Set.
    margin_mm
        The margin the CTV was derived with.
    settings
        ``ctv_max_ml``, ``ctv_max_brain_fraction`` and ``ctv_excess_margin_mm``.
    """
    s = settings or PetSettings()
    if ctv_ml > s.ctv_max_ml:
        return (
            f"The CTV ({ctv_ml:.0f} ml) is larger than the plausible bound of {s.ctv_max_ml:g} "
            "ml for a post-operative glioblastoma ([pet] ctv_max_ml)."
        )
    if brain_ml is not None and brain_ml > 0 and ctv_ml > s.ctv_max_brain_fraction * brain_ml:
        return (
            f"The CTV ({ctv_ml:.0f} ml) is {100 * ctv_ml / brain_ml:.0f} % of the brain "
            f"({brain_ml:.0f} ml), more than the plausible {100 * s.ctv_max_brain_fraction:g} % "
            "([pet] ctv_max_brain_fraction)."
        )
    if gtv_ml is not None:
        bound = compact_ctv_bound_ml(gtv_ml, margin_mm + s.ctv_excess_margin_mm)
        if ctv_ml > bound:
            return (
                f"The derived CTV ({ctv_ml:.0f} ml) is larger than a compact GTV of the same "
                f"volume ({gtv_ml:.1f} ml) grown by {margin_mm + s.ctv_excess_margin_mm:g} mm "
                f"({bound:.0f} ml): the segmented cavity and residual enhancement are "
                "scattered, which a failed post-operative segmentation gives "
                "([pet] ctv_excess_margin_mm)."
            )
    return None


def select_ctv_roi(
    roi_names: Sequence[str], patterns: Sequence[str] = DEFAULT_CTV_PATTERNS
) -> str | None:
    """Pick the CTV among RT Structure Set ROI names.

    Parameters
    ----------
    roi_names
        Structure Set ROI Names.
    patterns
        Case-insensitive regexes in priority order (``PetSettings.ctv_roi_patterns``). The
        first pattern that matches any name wins; among names it matches, the first in
        ``roi_names`` order. Planning helper structures (names containing PTV, "opt",
        "ring", or starting with "z_") are never chosen.

    Returns
    -------
    str or None
        The chosen ROI name, or ``None`` when nothing matches.
    """
    cleaned = [(name, name.strip()) for name in roi_names]
    for pattern in patterns:
        regex = re.compile(pattern, re.IGNORECASE)
        for name, text in cleaned:
            if regex.search(text) and not _NOT_A_CTV.search(text):
                return name
    return None


class RtStructError(DicomInputError):
    """An RT Structure Set cannot be read or rasterised (the CTV is then derived)."""


def roi_names(rtstruct_path: Path | str) -> list[str]:
    """The Structure Set ROI Names of an RT Structure Set, in file order.

    Raises
    ------
    RtStructError
        If the file is not a readable RT Structure Set.
    """
    try:
        ds = pydicom.dcmread(rtstruct_path, stop_before_pixels=True)
        return [str(item.ROIName) for item in ds.StructureSetROISequence]
    except (InvalidDicomError, OSError, AttributeError, EOFError, ValueError) as exc:
        raise RtStructError(f"The RT Structure Set cannot be read: {exc}.") from None


def referenced_series_uid(rtstruct_path: Path | str) -> str | None:
    """The image series the RT Structure Set's contours were drawn on, if it names one."""
    try:
        ds = pydicom.dcmread(rtstruct_path, stop_before_pixels=True)
        for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
            for study in frame.get("RTReferencedStudySequence", []):
                for series in study.get("RTReferencedSeriesSequence", []):
                    uid = str(series.get("SeriesInstanceUID", ""))
                    if uid:
                        return uid
    except (InvalidDicomError, OSError, EOFError, ValueError):
        return None
    return None


def _roi_number(ds: Any, roi_name: str) -> int:
    for item in ds.StructureSetROISequence:
        if str(item.ROIName) == roi_name:
            return int(item.ROINumber)
    raise RtStructError(f"The RT Structure Set has no ROI named {roi_name!r}.")


def _contours(ds: Any, number: int) -> list[np.ndarray]:
    for roi in ds.get("ROIContourSequence", []):
        if int(roi.ReferencedROINumber) != number:
            continue
        out = []
        for contour in roi.get("ContourSequence", []):
            if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                continue
            points = np.asarray([float(v) for v in contour.ContourData], np.float64)
            if points.size >= 9:
                out.append(points.reshape(-1, 3))
        return out
    return []


def rasterise_roi(
    rtstruct_path: Path | str, roi_name: str, reference: sitk.Image
) -> sitk.Image:
    """Rasterise one RT Structure Set ROI's closed planar contours onto ``reference``.

    Each contour's points are mapped to ``reference``'s continuous indices (same frame of
    reference: the image series the contours were drawn on, or any grid whose slices are
    parallel to the contour planes) and filled with OpenCV's polygon filling at 1/16-voxel
    precision; contours on one slice combine by the even-odd rule, so holes (inner
    contours) stay empty.

    Parameters
    ----------
    rtstruct_path
        The RT Structure Set file.
    roi_name
        The ROI to rasterise (see :func:`select_ctv_roi`).
    reference
        Output grid (e.g. the reference T1c volume).

    Returns
    -------
    SimpleITK.Image
        uint8 mask on ``reference``.

    Raises
    ------
    RtStructError
        If the structure set or the ROI cannot be read, or the ROI is empty on the grid.
    """
    import cv2  # OpenCV (headless); only needed here

    try:
        ds = pydicom.dcmread(rtstruct_path, stop_before_pixels=True)
        contours = _contours(ds, _roi_number(ds, roi_name))
    except (InvalidDicomError, OSError, AttributeError, EOFError, ValueError) as exc:
        raise RtStructError(f"The RT Structure Set cannot be read: {exc}.") from None
    nx, ny, nz = reference.GetSize()
    mask = np.zeros((nz, ny, nx), np.uint8)
    shift = 4  # 2**4 sub-pixel steps
    for points in contours:
        index = np.asarray(
            [reference.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in points]
        )
        k = int(np.rint(np.median(index[:, 2])))
        if not 0 <= k < nz:
            continue
        polygon = np.rint(index[:, :2] * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)
        layer = np.zeros((ny, nx), np.uint8)
        cv2.fillPoly(layer, [polygon], 1, lineType=cv2.LINE_8, shift=shift)
        mask[k] ^= layer
    n = int(np.count_nonzero(mask))
    if n == 0:
        raise RtStructError(f"ROI {roi_name!r} of the RT Structure Set is empty on the grid.")
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(reference)
    logger.info("rt structure rasterised", contours=len(contours), voxels=n)
    return image


__all__ = [
    "DEFAULT_CTV_PATTERNS",
    "ESTRO_EANO_MARGIN_MM",
    "CtvResult",
    "RtStructError",
    "compact_ctv_bound_ml",
    "ctv_refusal",
    "derive_ctv",
    "rasterise_roi",
    "referenced_series_uid",
    "roi_names",
    "select_ctv_roi",
]
