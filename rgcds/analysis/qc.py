"""Quality control of an automatic tumour segmentation, before anything is measured from it.

Each check looks for a way a segmenter fails on an image it was not trained for: tumour
outside the brain, a scatter of components, a "tumour" that fills a large part of the brain,
nothing at all, or a prediction that changes when the head is mirrored (a segmenter that has
learnt the tumour agrees with itself under a left-right flip, one that is guessing does not).
A study that fails is reported with the reason, never measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from rgcds.settings.qc import QcSettings

_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity, as the component filter


@dataclass(frozen=True)
class QcResult:
    """The gate's verdict and what it measured.

    Attributes
    ----------
    passed
        True when every check passed.
    reasons
        One sentence per failed check (empty when passed).
    measures
        What each check measured (for the log, the SR notes and the bench).
    """

    passed: bool
    reasons: tuple[str, ...] = ()
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """The failed checks as one sentence for the report."""
        return "; ".join(self.reasons)


def _grown(mask: np.ndarray, spacing: tuple[float, ...], margin_mm: float) -> np.ndarray:
    """``mask`` grown by ``margin_mm`` (Euclidean, physical units)."""
    if margin_mm <= 0 or not mask.any():
        return mask
    steps = [float(s) for s in spacing][::-1] if len(spacing) == mask.ndim else None
    distance = ndimage.distance_transform_edt(~mask, sampling=steps)
    return np.asarray(distance <= margin_mm)


def whole_tumour_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of the whole tumour (any label > 0) between two label maps."""
    wa, wb = a > 0, b > 0
    total = int(wa.sum()) + int(wb.sum())
    return 1.0 if total == 0 else 2.0 * int((wa & wb).sum()) / total


def check_segmentation(
    labels: np.ndarray,
    brain: np.ndarray,
    spacing: tuple[float, ...],
    settings: QcSettings,
    *,
    flip_dice: float | None = None,
) -> QcResult:
    """Run every check on BraTS-style labels (0 background) with the study's brain mask.

    Parameters
    ----------
    labels
        Label map (model grid), any label > 0 is tumour.
    brain
        Brain mask on the same grid.
    spacing
        Voxel size (mm) in ITK order (x, y, z), as SimpleITK's ``GetSpacing`` gives it.
    settings
        The thresholds.
    flip_dice
        Whole-tumour Dice with the mirrored twin, when it was computed.
    """
    voxel_ml = float(np.prod(spacing)) / 1000.0
    tumour = labels > 0
    brain = brain.astype(bool)
    wt_ml = float(tumour.sum()) * voxel_ml
    brain_ml = max(float(brain.sum()) * voxel_ml, 1e-6)
    reasons: list[str] = []
    measures: dict[str, float] = {"whole_tumour_ml": round(wt_ml, 2),
                                  "brain_ml": round(brain_ml, 1)}
    if wt_ml < settings.min_whole_tumour_ml:
        reasons.append(f"no tumour was found (whole tumour {wt_ml:.1f} cm3, less than "
                       f"{settings.min_whole_tumour_ml:g} cm3)")
        return QcResult(False, tuple(reasons), measures)
    outside = float((tumour & ~_grown(brain, spacing, settings.outside_margin_mm)).sum())
    outside /= float(tumour.sum())
    measures["outside_brain_fraction"] = round(outside, 4)
    if outside > settings.max_outside_brain_fraction:
        reasons.append(f"{100 * outside:.0f} % of the tumour lies more than "
                       f"{settings.outside_margin_mm:g} mm outside the brain mask "
                       f"(at most {100 * settings.max_outside_brain_fraction:.0f} %)")
    components, n = ndimage.label(tumour, structure=_CONNECTIVITY)
    sizes = np.bincount(components.ravel())[1:] * voxel_ml if n else np.zeros(0)
    counted = int((sizes >= settings.min_component_ml).sum())
    measures["components"] = float(counted)
    if counted > settings.max_components:
        reasons.append(f"{counted} separate tumour components of at least "
                       f"{settings.min_component_ml:g} cm3 (at most {settings.max_components})")
    fraction = wt_ml / brain_ml
    measures["whole_tumour_brain_fraction"] = round(fraction, 4)
    if fraction > settings.max_whole_tumour_brain_fraction:
        reasons.append(f"the whole tumour ({wt_ml:.0f} cm3) is {100 * fraction:.0f} % of the "
                       f"brain (at most {100 * settings.max_whole_tumour_brain_fraction:.0f} %)")
    if flip_dice is not None:
        measures["flip_dice"] = round(flip_dice, 4)
        if flip_dice < settings.min_flip_dice:
            reasons.append(f"the segmentation of the mirrored images disagrees (whole-tumour "
                           f"Dice {flip_dice:.2f}, at least {settings.min_flip_dice:.2f})")
    return QcResult(not reasons, tuple(reasons), measures)


__all__ = ["QcResult", "check_segmentation", "whole_tumour_dice"]
