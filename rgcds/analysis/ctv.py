# SimpleITK ships no type hints: its calls are untyped and return Any.
# mypy: disallow-untyped-calls=False, warn-return-any=False
"""Clinical target volume (CTV) for post-operative glioblastoma radiotherapy.

:func:`derive_ctv` follows the ESTRO-EANO 2023 guideline (Niyazi et al., Radiother Oncol
2023): GTV = resection cavity + residual contrast-enhancing tumour; CTV = GTV + 15 mm
isotropic margin, clipped to the brain. The margin is a Euclidean distance map in mm
computed with the image spacing (anisotropic voxels are handled exactly at voxel centres).
Anatomical barriers *within* the brain (falx, tentorium, ventricles, bone) are not modelled
— the CTV is only clipped to the brain mask; a radiation oncologist edits it for planning.
This CTV is an analysis region (e.g. for PET BTV search and radiomics as in the reference
MET-PET study), not a treatment plan.

:func:`select_ctv_roi` picks the CTV among the ROI names of an RT Structure Set.
Rasterising RT Structure Set contours needs rt-utils (not installed): :func:`rasterise_roi`
raises :class:`RtStructNotSupportedError` (TODO).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import structlog

from rgcds.exceptions import DicomInputError
from rgcds.imaging.resample import GridGeometry

logger = structlog.get_logger(__name__)

#: ESTRO-EANO 2023 CTV margin for glioblastoma (mm).
ESTRO_EANO_MARGIN_MM = 15.0
#: Default ROI-name patterns (case-insensitive regexes, in priority order).
DEFAULT_CTV_PATTERNS: tuple[str, ...] = (r"^ctv$", r"^ctv[\s_-]*1?$", r"\bctv\b", r"ctv")


#: Planning helper structures never picked as the CTV (PTV, optimisation, rings, "z_" helpers).
_NOT_A_CTV = re.compile(r"ptv|opt|ring|^z[_\W]", re.IGNORECASE)


class RtStructNotSupportedError(DicomInputError, NotImplementedError):
    """RT Structure Set contours cannot be rasterised in this installation."""


@dataclass(frozen=True)
class CtvResult:
    """A derived CTV.

    Attributes
    ----------
    ctv
        uint8 mask on the input grid.
    gtv_ml, ctv_ml
        Volumes of the GTV (cavity + residual enhancement) and of the CTV.
    margin_mm
        The margin used.
    notes
        Sentences (what was modelled, what was not).
    """

    ctv: sitk.Image = field(repr=False)
    gtv_ml: float
    ctv_ml: float
    margin_mm: float
    notes: tuple[str, ...]


def _binary(image: sitk.Image) -> sitk.Image:
    return sitk.Cast(image > 0, sitk.sitkUInt8)


def derive_ctv(
    brain_mask: sitk.Image,
    *,
    cavity: sitk.Image | None = None,
    residual_enhancement: sitk.Image | None = None,
    margin_mm: float = ESTRO_EANO_MARGIN_MM,
) -> CtvResult:
    """Derive a CTV: (cavity + residual enhancement) + ``margin_mm``, clipped to the brain.

    Parameters
    ----------
    brain_mask
        Brain mask (any integer type); its grid is the output grid.
    cavity, residual_enhancement
        Label images on the same grid (non-zero = inside). At least one is required.
    margin_mm
        Isotropic margin in mm (ESTRO-EANO 2023: 15 mm).

    Returns
    -------
    CtvResult

    Raises
    ------
    ValueError
        If neither region is given, a grid differs from the brain mask's, the margin is
        negative, or the GTV is empty.
    """
    if margin_mm < 0:
        raise ValueError(f"The CTV margin must not be negative, got {margin_mm} mm.")
    parts = [p for p in (cavity, residual_enhancement) if p is not None]
    if not parts:
        raise ValueError("A CTV needs a resection cavity, residual enhancement, or both.")
    grid = GridGeometry.of(brain_mask)
    gtv = sitk.Image(list(grid.size), sitk.sitkUInt8)
    gtv.CopyInformation(brain_mask)
    for part in parts:
        if GridGeometry.of(part) != grid:
            raise ValueError(
                "The cavity/residual masks must be on the brain mask's grid; resample them "
                "with rgcds.imaging.resample_onto(label=True) first."
            )
        gtv = gtv | _binary(part)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    n_gtv = int(np.count_nonzero(sitk.GetArrayFromImage(gtv)))
    if n_gtv == 0:
        raise ValueError("The GTV (cavity + residual enhancement) is empty; no CTV derived.")
    distance = sitk.SignedMaurerDistanceMap(
        gtv, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    ctv = sitk.Cast(distance <= margin_mm, sitk.sitkUInt8) & _binary(brain_mask)
    ctv = ctv | (gtv & _binary(brain_mask))
    n_ctv = int(np.count_nonzero(sitk.GetArrayFromImage(ctv)))
    notes = (
        f"CTV = resection cavity + residual enhancement + {margin_mm:g} mm (ESTRO-EANO 2023), "
        "clipped to the brain mask.",
        "Anatomical barriers (falx, tentorium, ventricles) are not modelled; not a treatment plan.",
    )
    logger.info("ctv derived", gtv_ml=round(n_gtv * voxel_ml, 2), ctv_ml=round(n_ctv * voxel_ml, 2))
    return CtvResult(ctv, n_gtv * voxel_ml, n_ctv * voxel_ml, float(margin_mm), notes)


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


def rasterise_roi(rtstruct_path: str, roi_name: str, reference: sitk.Image) -> sitk.Image:
    """Rasterise one RT Structure Set ROI onto ``reference`` (TODO: needs rt-utils).

    Raises
    ------
    RtStructNotSupportedError
        Always, in this installation.
    """
    raise RtStructNotSupportedError(
        f"Rasterising ROI {roi_name!r} of an RT Structure Set needs rt-utils, which is not "
        "installed; derive the CTV with rgcds.analysis.ctv.derive_ctv or provide it as a "
        "label image (DICOM SEG / NIfTI)."
    )


__all__ = [
    "DEFAULT_CTV_PATTERNS",
    "ESTRO_EANO_MARGIN_MM",
    "CtvResult",
    "RtStructNotSupportedError",
    "derive_ctv",
    "rasterise_roi",
    "select_ctv_roi",
]
