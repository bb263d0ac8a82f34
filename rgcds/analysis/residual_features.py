"""The residual-tumour models' inputs: the PET TBR box around the CTV and the T1c radiomics
(see :mod:`rgcds.analysis.residual`, which describes them and re-exports these names)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from numpy.typing import NDArray

from rgcds.analysis.pet import PetSettings, contralateral_background
from rgcds.analysis.radiomics import RadiomicsParams, extract_radiomics, to_wide
from rgcds.inference.errors import InferenceInputError

#: Voxel size (mm) and box size (voxels per side) of the PET model input.
PET_GRID_MM = 3.0
PET_BOX = 40
#: TBR threshold of the biological tumour volume for [11C]MET (PetSettings default).
MET_BTV_TBR = 1.3

T1C_RADIOMICS = RadiomicsParams(
    name="residual-t1c (rgcds.analysis.residual.T1C_RADIOMICS)",
    pyradiomics={
        "imageType": {"Original": {}},
        "featureClass": {
            "firstorder": [
                "Mean",
                "Median",
                "10Percentile",
                "90Percentile",
                "Maximum",
                "Variance",
                "Skewness",
                "Kurtosis",
                "Entropy",
                "Uniformity",
                "RobustMeanAbsoluteDeviation",
            ],
            "glcm": [
                "Contrast",
                "Correlation",
                "JointEntropy",
                "Idm",
                "ClusterShade",
                "JointEnergy",
            ],
        },
        "setting": {
            "normalize": False,
            "binWidth": 0.25,
            "resampledPixelSpacing": [2.0, 2.0, 2.0],
            "interpolator": "sitkBSpline",
            "padDistance": 5,
            "geometryTolerance": 0.0001,
            "correctMask": True,
            "minimumROIDimensions": 2,
            "minimumROISize": 8,
            "label": 1,
            "distances": [1],
            "force2D": False,
            "additionalInfo": False,
        },
    },
)


@dataclass(frozen=True)
class ResidualInputs:
    """Model inputs of one post-operative study (see :func:`residual_inputs`).

    Attributes
    ----------
    pet_input
        ``(1, 1, D, H, W)`` float32 TBR in the CTV, or ``None`` without PET.
    t1c_features
        T1c radiomics in the CTV, or ``None`` without T1c.
    background_mean
        PET background (SUV or the PET's units); ``None`` without PET.
    tbr_max, btv_ml
        Largest TBR in the CTV and volume (ml) with TBR >= :data:`MET_BTV_TBR`, both on the
        model grid; ``None`` without PET.
    notes
        Sentences for the report (background VOI, missing inputs).
    """

    pet_input: NDArray[np.float32] | None = field(repr=False)
    t1c_features: dict[str, float] | None = field(repr=False)
    background_mean: float | None
    tbr_max: float | None
    btv_ml: float | None
    notes: tuple[str, ...] = ()


def _binary(image: sitk.Image) -> sitk.Image:
    out: sitk.Image = sitk.Cast(sitk.NotEqual(image, 0), sitk.sitkUInt8)
    return out


def _onto(mask: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """``mask`` (binary) on ``reference``'s grid (nearest neighbour; copy when same grid)."""
    same = (
        mask.GetSize() == reference.GetSize()
        and np.allclose(mask.GetSpacing(), reference.GetSpacing(), atol=1e-4)
        and np.allclose(mask.GetOrigin(), reference.GetOrigin(), atol=1e-3)
        and np.allclose(mask.GetDirection(), reference.GetDirection(), atol=1e-4)
    )
    if same:
        out = _binary(mask)
        out.CopyInformation(reference)
        return out
    return sitk.Resample(
        _binary(mask), reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )


def _centroid_mm(mask: sitk.Image) -> tuple[float, float, float]:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    if not stats.HasLabel(1):
        raise InferenceInputError("The CTV mask is empty; residual detection needs a CTV.")
    x, y, z = stats.GetCentroid(1)
    return float(x), float(y), float(z)


def model_grid(ctv: sitk.Image, grid_mm: float = PET_GRID_MM, box: int = PET_BOX) -> sitk.Image:
    """The PET model's grid: axis-aligned LPS, ``grid_mm`` isotropic, ``box`` voxels per side,
    centred on the CTV's physical centroid.

    Raises
    ------
    InferenceInputError
        If the CTV is empty.
    """
    centre = np.asarray(_centroid_mm(_binary(ctv)))
    grid = sitk.Image([box] * 3, sitk.sitkFloat32)
    grid.SetSpacing([grid_mm] * 3)
    grid.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    grid.SetOrigin(tuple(float(v) for v in centre - 0.5 * (box - 1) * grid_mm))
    return grid


def pet_model_input(
    pet: sitk.Image,
    ctv: sitk.Image,
    background_mean: float,
    *,
    grid_mm: float = PET_GRID_MM,
    box: int = PET_BOX,
) -> NDArray[np.float32]:
    """The PET model's input: TBR inside the CTV on a fixed box around the CTV.

    Parameters
    ----------
    pet
        PET (SUV or any units proportional to activity), any grid and orientation.
    ctv
        CTV mask (non-zero inside), any grid; resampled in physical space.
    background_mean
        Mean PET of the background VOI (same units as ``pet``), > 0.
    grid_mm, box
        Voxel size and voxels per side (the trained model's card records them).

    Returns
    -------
    numpy.ndarray
        ``(1, 1, box, box, box)`` float32 (z, y, x order): PET / background inside the CTV,
        0 outside.

    Raises
    ------
    InferenceInputError
        If the CTV is empty or the background is not positive.
    """
    if not math.isfinite(background_mean) or background_mean <= 0:
        raise InferenceInputError(
            f"The PET background mean must be positive, got {background_mean}; check the "
            "PET units and the background VOI."
        )
    grid = model_grid(ctv, grid_mm, box)
    pet_g = sitk.Resample(
        sitk.Cast(pet, sitk.sitkFloat32),
        grid,
        sitk.Transform(),
        sitk.sitkLinear,
        0.0,
        sitk.sitkFloat32,
    )
    ctv_g = sitk.Resample(
        _binary(ctv), grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )
    tbr = sitk.GetArrayFromImage(pet_g).astype(np.float32) / np.float32(background_mean)
    inside = sitk.GetArrayFromImage(ctv_g) > 0
    out = np.where(inside, tbr, np.float32(0.0)).astype(np.float32)
    return out[None, None]


def pet_background(
    pet: sitk.Image,
    ctv: sitk.Image,
    brain_mask: sitk.Image | None,
    settings: PetSettings | None = None,
) -> tuple[float, str]:
    """Mean PET of the contralateral background VOI, with the CTV as the tumour.

    Parameters
    ----------
    pet
        PET image (its grid is used).
    ctv
        CTV mask (any grid).
    brain_mask
        Brain mask (any grid); ``None``: voxels of the PET above 10 % of its 99th percentile.
    settings
        Background VOI geometry.

    Returns
    -------
    tuple
        ``(mean, description)``.

    Raises
    ------
    InferenceInputError
        If the masks are empty or the background is not positive.
    """
    tumour = sitk.GetArrayViewFromImage(_onto(ctv, pet)) > 0
    values = sitk.GetArrayFromImage(pet).astype(np.float64)
    if brain_mask is not None:
        brain = sitk.GetArrayViewFromImage(_onto(brain_mask, pet)) > 0
    else:
        brain = values > 0.1 * float(np.percentile(values, 99))
    try:
        voi = contralateral_background(pet, brain, tumour, settings)
    except ValueError as exc:
        raise InferenceInputError(f"No PET background VOI could be built: {exc}") from None
    mean = float(values[voi.mask].mean())
    if not mean > 0:
        raise InferenceInputError(
            f"The PET background mean is {mean}; the PET must be positive in normal brain."
        )
    return mean, voi.description


def t1c_features(
    t1c: sitk.Image, ctv: sitk.Image, brain_mask: sitk.Image | None
) -> dict[str, float]:
    """pyradiomics features of the brain-z-scored T1c inside the CTV (:data:`T1C_RADIOMICS`).

    Parameters
    ----------
    t1c
        Contrast-enhanced T1 (any grid).
    ctv
        CTV mask (any grid; resampled nearest neighbour onto the T1c).
    brain_mask
        Brain mask for the z-scoring; ``None``: voxels of the T1c above 0.

    Returns
    -------
    dict
        ``CTV_T1c_<class>_<feature>`` -> value.

    Raises
    ------
    InferenceInputError
        If the CTV or brain mask is empty, or no feature could be computed.
    """
    image = sitk.Cast(t1c, sitk.sitkFloat32)
    values = sitk.GetArrayFromImage(image).astype(np.float64)
    if brain_mask is not None:
        brain = sitk.GetArrayViewFromImage(_onto(brain_mask, image)) > 0
    else:
        brain = values > 0
    if brain.sum() < 10:
        raise InferenceInputError("The brain mask on the T1c is empty; cannot z-score the T1c.")
    mean = float(values[brain].mean())
    std = float(values[brain].std()) or 1.0
    z = sitk.GetImageFromArray(((values - mean) / std).astype(np.float32))
    z.CopyInformation(image)
    mask = _onto(ctv, image)
    if not sitk.GetArrayViewFromImage(mask).any():
        raise InferenceInputError("The CTV does not overlap the T1c; check the registration.")
    table = extract_radiomics(
        {"T1c": z},
        mask,
        study_uid="residual",
        regions=("NCR",),
        params=T1C_RADIOMICS,
        max_workers=1,
    )
    if table.empty:
        raise InferenceInputError("No T1c radiomic feature could be computed inside the CTV.")
    wide = to_wide(table)
    return {
        "CTV_" + str(name).removeprefix("NCR_"): float(wide.iloc[0][name]) for name in wide.columns
    }


def residual_inputs(
    pet: sitk.Image | None,
    t1c: sitk.Image | None,
    ctv: sitk.Image,
    brain_mask: sitk.Image | None,
    *,
    settings: PetSettings | None = None,
    grid_mm: float = PET_GRID_MM,
    box: int = PET_BOX,
) -> ResidualInputs:
    """Both models' inputs (whichever images are present) plus PET covariates.

    Parameters
    ----------
    pet, t1c
        Post-operative PET and T1c; either may be ``None``.
    ctv
        Radiotherapy CTV mask.
    brain_mask
        Brain mask (background VOI and T1c z-scoring); optional.
    settings
        PET background settings.
    grid_mm, box
        PET model grid.

    Returns
    -------
    ResidualInputs
    """
    notes: list[str] = []
    pet_input: NDArray[np.float32] | None = None
    background = tbr_max = btv = None
    if pet is not None:
        background, description = pet_background(pet, ctv, brain_mask, settings)
        pet_input = pet_model_input(pet, ctv, background, grid_mm=grid_mm, box=box)
        tbr_max = float(pet_input.max())
        btv = float((pet_input >= MET_BTV_TBR).sum()) * grid_mm**3 / 1000.0
        notes.append(f"PET background: {description}.")
    else:
        notes.append("No PET: the PET model was not run.")
    features = t1c_features(t1c, ctv, brain_mask) if t1c is not None else None
    if t1c is None:
        notes.append("No T1c: the T1c radiomics model was not run.")
    return ResidualInputs(pet_input, features, background, tbr_max, btv, tuple(notes))


__all__ = [
    "MET_BTV_TBR",
    "PET_BOX",
    "PET_GRID_MM",
    "T1C_RADIOMICS",
    "ResidualInputs",
    "model_grid",
    "pet_background",
    "pet_model_input",
    "residual_inputs",
    "t1c_features",
]
