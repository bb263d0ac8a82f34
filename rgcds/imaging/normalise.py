# SimpleITK (SWIG) ships no type hints: its calls are untyped and return Any.
"""Intensity normalisation inside the brain."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from rgcds.exceptions import DicomInputError


def zscore(image: sitk.Image, mask: sitk.Image) -> sitk.Image:
    """Return ``(image - mean) / std`` computed inside ``mask``; 0 outside the mask.

    Parameters
    ----------
    image
        Scalar image.
    mask
        Non-zero inside the brain; same grid as ``image``.

    Returns
    -------
    sitk.Image
        float32, same geometry as ``image``.

    Raises
    ------
    DicomInputError
        If the mask is empty or the image is constant inside it.
    """
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    inside = sitk.GetArrayViewFromImage(mask) > 0
    if not inside.any():
        raise DicomInputError(
            "The brain mask is empty, so intensities cannot be normalised; check the brain "
            "extraction."
        )
    mean = float(values[inside].mean())
    std = float(values[inside].std())
    if std <= 0:
        raise DicomInputError(
            "The image is constant inside the brain mask, so it cannot be normalised; check "
            "that the series holds image data."
        )
    out = np.where(inside, (values - mean) / std, 0.0).astype(np.float32)
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(image)
    return result


__all__ = ["zscore"]
