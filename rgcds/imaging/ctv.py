# SimpleITK ships no type hints: its calls are untyped and return Any.
"""Clinical target volume (CTV) geometry for post-operative glioblastoma radiotherapy.

:func:`derive_ctv` follows the ESTRO-EANO 2023 guideline (Niyazi et al., Radiother Oncol
2023): GTV = resection cavity + residual contrast-enhancing tumour; CTV = GTV + 15 mm
isotropic margin, clipped to the brain. The margin is a Euclidean distance map in mm
computed with the image spacing (anisotropic voxels are handled exactly at voxel centres).
Anatomical barriers *within* the brain (falx, tentorium, ventricles, bone) are not modelled
— the CTV is only clipped to the brain mask; a radiation oncologist edits it for planning.

It lives with the other image operations so that the analysis (:mod:`rgcds.analysis.ctv`,
which re-exports it) and the phantom's ground truth (:mod:`rgcds.phantom.postop`) share it
without the phantom importing the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import structlog

from rgcds.imaging.resample import GridGeometry

logger = structlog.get_logger(__name__)

#: ESTRO-EANO 2023 CTV margin for glioblastoma (mm).
ESTRO_EANO_MARGIN_MM = 15.0


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
    result: sitk.Image = sitk.Cast(image > 0, sitk.sitkUInt8)
    return result


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


__all__ = ["ESTRO_EANO_MARGIN_MM", "CtvResult", "derive_ctv"]
