"""The segmentation model's input channels, with stand-ins for a missing sequence."""


from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk
import structlog

from rgcds.exceptions import (
    MissingSequenceError,
)
from rgcds.study import (
    SeriesRole,
)

logger = structlog.get_logger(__name__)

#: Missing model channel -> the contrasts that stand in for it, closest first: the T1 and the
#: T1c share their weighting (only the enhancing rim differs), T2 and FLAIR too (FLAIR nulls
#: CSF). When none is there, an empty channel (zero, the brain mean after z-scoring) is used.
#: Measured on phantoms against the alternatives: ``docs/missing-sequences.md``.
CHANNEL_SUBSTITUTES: Mapping[SeriesRole, tuple[SeriesRole, ...]] = {
    SeriesRole.T1: (SeriesRole.T1C,),
    SeriesRole.T2: (SeriesRole.FLAIR,),
    SeriesRole.FLAIR: (SeriesRole.T2,),
}

#: ``"nearest"`` (the closest contrast of :data:`CHANNEL_SUBSTITUTES`, else zero),
#: ``"synthetic"`` (the closest contrast made to look like the missing one, see
#: :func:`model_channels`) or ``"zero"`` (always an empty channel). ``"synthetic"`` kept the
#: whole-tumour Dice within 0.05 of the four-sequence baseline on phantoms for each missing
#: channel; the plain stand-in lost 0.43 without FLAIR, and ET without T1 (0.07), as the
#: model reads enhancement as "bright on T1c, not on T1" (``docs/missing-sequences.md``).
SUBSTITUTION_METHOD = "synthetic"
SUBSTITUTION_METHODS: tuple[str, ...] = ("nearest", "synthetic", "zero")

#: Synthetic T1 from the T1c: intensities above this brain percentile (white matter; the
#: enhancing tumour, vessels and dura lie above it) are clipped to it.
SYNTHETIC_T1_CLIP_PERCENTILE = 95.0
#: Synthetic FLAIR / T2: the FLAIR's inversion nulls tissue with a long T1 (fluid), which is
#: what is dark on the T1-weighted image. The weight of the T2 signal rises linearly from 0
#: at this T1 brain percentile (CSF) to 1 at the next (brain tissue).
SYNTHETIC_FLUID_T1_PERCENTILE = 5.0
SYNTHETIC_TISSUE_T1_PERCENTILE = 50.0
#: Synthetic T2 from the FLAIR: nulled fluid is given this FLAIR brain percentile (bright).
SYNTHETIC_T2_FLUID_PERCENTILE = 99.0


def _rezscore(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    mean, std = float(values[inside].mean()), float(values[inside].std())
    out = np.zeros_like(values, dtype=np.float32)
    out[inside] = (values[inside] - mean) / (std if std > 0 else 1.0)
    return out


def _inversion_weight(t1: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """0 for fluid (darkest on T1), rising to 1 for brain tissue: what a FLAIR keeps."""
    fluid = float(np.percentile(t1[inside], SYNTHETIC_FLUID_T1_PERCENTILE))
    tissue = float(np.percentile(t1[inside], SYNTHETIC_TISSUE_T1_PERCENTILE))
    return np.clip((t1 - fluid) / max(tissue - fluid, 1e-6), 0.0, 1.0)


_SYNTHETIC_HOW: Mapping[SeriesRole, str] = {
    SeriesRole.T1: "its enhancement clipped at the white matter level, to resemble a T1",
    SeriesRole.FLAIR: "fluid, dark on the T1, suppressed to resemble a FLAIR",
    SeriesRole.T2: "fluid, dark on the T1, made bright to resemble a T2",
}


def _synthetic(
    role: SeriesRole, stand_in: SeriesRole, arrays: Mapping[str, np.ndarray], inside: np.ndarray
) -> np.ndarray:
    """The stand-in contrast made to resemble ``role`` (z-scored in the brain again).

    T1 from T1c: the enhancement clipped at the white matter level. FLAIR from T2: the T2
    signal times the inversion weight of the T1 (or T1c), so fluid is nulled. T2 from
    FLAIR: the reverse, nulled fluid made bright again.
    """
    source = arrays[stand_in.value.upper()]
    if role is SeriesRole.T1:
        ceiling = float(np.percentile(source[inside], SYNTHETIC_T1_CLIP_PERCENTILE))
        return _rezscore(np.minimum(source, ceiling), inside)
    t1 = arrays.get("T1", arrays.get("T1C"))
    if t1 is None:
        return source
    weight = _inversion_weight(t1, inside)
    positive = source - float(source[inside].min())
    if role is SeriesRole.FLAIR:
        return _rezscore(positive * weight, inside)
    bright = float(np.percentile(positive[inside], SYNTHETIC_T2_FLUID_PERCENTILE))
    return _rezscore(positive * weight + (1.0 - weight) * bright, inside)


#: Channels that no substitute replaces: the T1c is the reference of the results and the
#: only contrast that shows enhancing tumour.
REQUIRED_CHANNELS: frozenset[SeriesRole] = frozenset({SeriesRole.T1C})


def _channel_role(name: str) -> SeriesRole | None:
    return next((role for role in SeriesRole if role.value.upper() == name.upper()), None)


def model_channels(
    images: Mapping[SeriesRole, sitk.Image],
    channels: tuple[str, ...] | list[str],
    model_id: str = "the segmentation model",
    method: str = SUBSTITUTION_METHOD,
    brain_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Stack the model's input channels, substituting missing T1, T2 or FLAIR.

    Parameters
    ----------
    images
        Role -> normalised image on the model grid (``PreprocessedStudy.images``).
    channels
        The card's channel names, in order.
    model_id
        For messages.
    method
        ``"nearest"``: the closest available contrast (:data:`CHANNEL_SUBSTITUTES`), else a
        zero channel; ``"synthetic"``: the same contrast made to resemble the missing one
        (a T1 from the T1c with intensities above the white matter clipped; a FLAIR from the
        T2 with fluid, what is dark on the T1, nulled; a T2 from the FLAIR with that fluid
        made bright);
        ``"zero"``: a zero channel (the brain mean after z-scoring).
    brain_mask
        The brain on the model grid (``"synthetic"`` needs it; else the non-zero voxels of
        the first image).

    Returns
    -------
    tuple
        ``(C, Z, Y, X)`` float32 array and one report sentence per substituted channel.

    Raises
    ------
    MissingSequenceError
        If a required channel (T1c), or a channel no rule substitutes, is missing.
    """
    if method not in SUBSTITUTION_METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(SUBSTITUTION_METHODS)}")
    arrays: dict[str, np.ndarray] = {}
    for present, image in images.items():
        arrays[present.value.upper()] = sitk.GetArrayFromImage(image).astype(np.float32)
    shape = next(iter(arrays.values())).shape if arrays else None
    stacked: list[np.ndarray] = []
    notes: list[str] = []
    for name in channels:
        if name.upper() in arrays:
            stacked.append(arrays[name.upper()])
            continue
        role = _channel_role(name)
        if role is None or role in REQUIRED_CHANNELS or role not in CHANNEL_SUBSTITUTES:
            role = None
        if role is None or shape is None:
            raise MissingSequenceError(
                f"The segmentation model {model_id} needs a {name} series, which the study "
                "lacks or which could not be converted."
            )
        stand_in = None
        if method != "zero":
            stand_in = next(
                (s for s in CHANNEL_SUBSTITUTES[role] if s.value.upper() in arrays), None
            )
        if stand_in is not None and method == "synthetic":
            inside = brain_mask if brain_mask is not None else next(iter(arrays.values())) != 0
            stacked.append(_synthetic(role, stand_in, arrays, inside.astype(bool)))
            notes.append(
                f"No {role.value} series: the segmentation used the {stand_in.value} in its "
                f"place ({_SYNTHETIC_HOW[role]}); volumes may be less accurate."
            )
        elif stand_in is not None:
            stacked.append(arrays[stand_in.value.upper()])
            notes.append(
                f"No {role.value} series: the segmentation used the {stand_in.value} in its "
                "place; volumes may be less accurate."
            )
        else:
            stacked.append(np.zeros(shape, dtype=np.float32))
            notes.append(
                f"No {role.value} series: the segmentation used an empty channel in its "
                "place; volumes may be less accurate."
            )
        logger.warning(
            "segmentation channel substituted",
            channel=role.value,
            substitute=stand_in.value if stand_in is not None else "zero",
        )
    return np.stack(stacked), tuple(notes)
