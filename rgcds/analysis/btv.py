"""Which supra-threshold PET uptake is residual tumour: the BTV's plausibility rules.

The guideline BTV (Law et al. 2019) is every voxel of the search region at or above the
tracer's TBR threshold. After surgery that set also holds uptake that is not tumour, and on
[11C]MET it can dominate the volume:

- **normal grey matter**: deep grey nuclei and cortex reach TBR about 1.3 on MET PET, the
  threshold itself, so noise alone carries them over it;
- **the surgical margin**: reactive uptake along the resection cavity wall (blood-brain
  barrier disruption, gliosis) for weeks after surgery, usually mild;
- **extra-cerebral uptake** (salivary glands, bone marrow, muscle) wherever the brain mask
  leaks;
- **noise**: single hot voxels and blobs about the size of the scanner's resolution.

:func:`select_btv` labels the connected components (26-connectivity) of the supra-threshold
set and keeps each one unless a rule explains it, in this order:

1. ``too small``: volume below ``btv_min_component_ml``;
2. ``far from the tumour``: its nearest voxel is more than ``btv_max_distance_mm`` from the
   resection cavity or the residual enhancement (only when the MR gave that mask);
3. ``surgical margin``: at least ``btv_margin_fraction`` of it lies within
   ``btv_margin_mm`` of the cavity (inside or outside the wall) and its TBRmax is below
   ``threshold x btv_confounder_tbr_factor``;
4. ``normal grey matter``: at least ``btv_grey_matter_fraction`` of it lies in the grey
   matter prior (the template's grey matter carried through the MR's template registration)
   and it has no hot core (below);
5. ``brain edge``: at least ``btv_margin_fraction`` of it lies within ``btv_brain_edge_mm``
   of the brain mask's surface and it has no hot core: skull marrow, dura or scalp where the
   brain mask leaks (when a brain mask is given).

A component with a hot core (uptake smoothed over one voxel at or above ``threshold x
btv_confounder_tbr_factor``) is never explained away as grey matter or margin: tumour sits in
grey matter and on the cavity wall too. Such a component is trimmed instead: its mild voxels
(below that level) that lie in the grey-matter prior or the margin shell and farther than
``btv_core_reach_mm`` from the hot core are left out, and so are its mild voxels in the
brain-edge shell, however near; a nodule touching the cortex or the skull does not carry
the cortical ribbon or the marrow into the BTV, while its own blurred edge stays. What is
left of a trimmed component must still pass the size rule.

The smoothing (Gaussian, sigma one voxel) keeps single noisy voxels from making a core. Every
rule and its default are justified in ``docs/pet.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from rgcds.settings.pet import PetSettings

#: Why a component was left out of the BTV (the report's words).
TOO_SMALL = "too small"
TRIMMED = "grey matter or margin beside a hot core"
FAR_FROM_TUMOUR = "far from the tumour"
SURGICAL_MARGIN = "surgical margin"
GREY_MATTER = "normal grey matter"
BRAIN_EDGE = "brain edge (skull, marrow or scalp)"


@dataclass(frozen=True)
class BtvComponent:
    """One connected component of the supra-threshold uptake.

    Attributes
    ----------
    volume_ml
        Its volume on the PET grid.
    tbr_max, tbr_mean
        Its highest and mean uptake over the background.
    distance_mm
        Distance from its nearest voxel to the cavity or residual enhancement (``None``
        without that mask).
    margin_fraction, grey_matter_fraction
        Share of its voxels within the margin shell of the cavity / in the grey-matter
        prior (``None`` without that mask).
    excluded
        The rule that left it out (one of the module's constants), or ``None`` when kept.
    """

    volume_ml: float
    tbr_max: float
    tbr_mean: float
    distance_mm: float | None
    margin_fraction: float | None
    grey_matter_fraction: float | None
    excluded: str | None


@dataclass(frozen=True)
class BtvSelection:
    """The BTV after the plausibility rules.

    Attributes
    ----------
    mask
        The kept components (bool, z, y, x, PET grid).
    candidate_ml
        Volume of every supra-threshold voxel of the search region (the guideline's BTV).
    components
        Every component, kept or not, largest first.
    """

    mask: NDArray[np.bool_] = field(repr=False)
    candidate_ml: float
    components: tuple[BtvComponent, ...]

    @property
    def excluded(self) -> tuple[BtvComponent, ...]:
        """The components left out."""
        return tuple(c for c in self.components if c.excluded is not None)

    def note(self) -> str | None:
        """One sentence on what was left out, or ``None`` when nothing was."""
        out = self.excluded
        if not out:
            return None
        by_rule: dict[str, list[BtvComponent]] = {}
        for c in out:
            by_rule.setdefault(str(c.excluded), []).append(c)
        parts = [
            f"{len(cs)} {rule} ({sum(c.volume_ml for c in cs):.1f} ml)"
            for rule, cs in by_rule.items()
        ]
        kept = self.candidate_ml - sum(c.volume_ml for c in out)
        return (
            f"Of {self.candidate_ml:.1f} ml above the TBR threshold, {kept:.1f} ml was kept as "
            f"BTV; left out as not residual tumour: {', '.join(parts)}."
        )


def distance_mm(mask: NDArray[np.bool_], spacing: tuple[float, ...]) -> NDArray[np.float64]:
    """Euclidean distance (mm) from each voxel to ``mask`` (0 inside; inf when it is empty)."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return np.asarray(ndimage.distance_transform_edt(~mask, sampling=spacing))


def select_btv(
    candidate: NDArray[np.bool_],
    tbr: NDArray[np.floating],
    spacing_zyx: tuple[float, ...],
    threshold: float,
    *,
    tumour: NDArray[np.bool_] | None = None,
    cavity: NDArray[np.bool_] | None = None,
    grey_matter: NDArray[np.bool_] | None = None,
    brain: NDArray[np.bool_] | None = None,
    settings: PetSettings | None = None,
) -> BtvSelection:
    """Keep the components of ``candidate`` that no plausibility rule explains away.

    Parameters
    ----------
    candidate
        Supra-threshold voxels of the search region (bool, z, y, x, PET grid).
    tbr
        Uptake over the background on the same grid.
    spacing_zyx
        Voxel spacing in mm, array order.
    threshold
        The tracer's TBR threshold.
    tumour
        Resection cavity + residual enhancement (or the pre-operative tumour) on the grid;
        ``None`` or empty: the distance rule does not apply.
    cavity
        The resection cavity alone; ``None`` or empty: the margin rule does not apply.
    grey_matter
        The grey-matter prior; ``None`` or empty: the grey-matter rule does not apply.
    brain
        The brain mask the search region was clipped to; ``None`` or empty: the brain-edge
        rule does not apply.
    settings
        The ``[pet]`` rule parameters.

    Returns
    -------
    BtvSelection
    """
    s = settings or PetSettings()
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    labels, n = ndimage.label(candidate, structure=np.ones((3, 3, 3), dtype=bool))
    candidate_ml = float(np.count_nonzero(candidate)) * voxel_ml
    if n == 0:
        return BtvSelection(np.zeros(candidate.shape, bool), 0.0, ())
    has_tumour = tumour is not None and bool(tumour.any())
    has_cavity = cavity is not None and bool(cavity.any())
    has_gm = grey_matter is not None and bool(grey_matter.any())
    to_tumour = distance_mm(tumour, spacing_zyx) if has_tumour and tumour is not None else None
    near_cavity = (
        distance_mm(cavity, spacing_zyx) <= s.btv_margin_mm
        if has_cavity and cavity is not None else None
    )
    edge = (
        np.asarray(ndimage.distance_transform_edt(brain, sampling=spacing_zyx))
        <= s.btv_brain_edge_mm
        if brain is not None and brain.any() else None
    )
    confounder_ceiling = threshold * s.btv_confounder_tbr_factor
    smooth = ndimage.gaussian_filter(np.asarray(tbr, dtype=np.float32), 1.0)
    hot = candidate & (smooth >= confounder_ceiling)
    index = np.arange(1, n + 1)
    sizes = np.asarray(ndimage.sum_labels(candidate, labels, index), dtype=np.float64)
    tbr_max = np.asarray(ndimage.maximum(tbr, labels, index), dtype=np.float64)
    tbr_mean = np.asarray(ndimage.mean(tbr, labels, index), dtype=np.float64)
    has_core = np.asarray(ndimage.sum_labels(hot, labels, index), dtype=np.float64) > 0
    distance = (
        np.asarray(ndimage.minimum(to_tumour, labels, index), dtype=np.float64)
        if to_tumour is not None else None
    )
    margin = (
        np.asarray(ndimage.sum_labels(near_cavity, labels, index), dtype=np.float64) / sizes
        if near_cavity is not None else None
    )
    gm = (
        np.asarray(ndimage.sum_labels(grey_matter, labels, index), dtype=np.float64) / sizes
        if has_gm and grey_matter is not None else None
    )
    at_edge = (
        np.asarray(ndimage.sum_labels(edge, labels, index), dtype=np.float64) / sizes
        if edge is not None else None
    )
    components: list[BtvComponent] = []
    keep = np.zeros(n + 1, dtype=bool)
    for i in range(n):
        volume = float(sizes[i]) * voxel_ml
        mild = not bool(has_core[i])
        reason: str | None = None
        if volume < s.btv_min_component_ml:
            reason = TOO_SMALL
        elif distance is not None and float(distance[i]) > s.btv_max_distance_mm:
            reason = FAR_FROM_TUMOUR
        elif margin is not None and mild and float(margin[i]) >= s.btv_margin_fraction:
            reason = SURGICAL_MARGIN
        elif gm is not None and mild and float(gm[i]) >= s.btv_grey_matter_fraction:
            reason = GREY_MATTER
        elif at_edge is not None and mild and float(at_edge[i]) >= s.btv_margin_fraction:
            reason = BRAIN_EDGE
        keep[i + 1] = reason is None
        components.append(
            BtvComponent(
                volume_ml=volume,
                tbr_max=float(tbr_max[i]),
                tbr_mean=float(tbr_mean[i]),
                distance_mm=None if distance is None else float(distance[i]),
                margin_fraction=None if margin is None else float(margin[i]),
                grey_matter_fraction=None if gm is None else float(gm[i]),
                excluded=reason,
            )
        )
    mask = keep[labels]
    explainable = np.zeros(candidate.shape, bool)
    if has_gm and grey_matter is not None:
        explainable |= grey_matter
    if near_cavity is not None:
        explainable |= near_cavity
    trim = mask & explainable & ~hot
    if trim.any() and hot.any():
        trim &= distance_mm(hot & mask, spacing_zyx) > s.btv_core_reach_mm
    if edge is not None:
        trim |= mask & edge & ~hot
    if trim.any():
        mask &= ~trim
        components.append(_summary(trim, tbr, voxel_ml, TRIMMED))
        pieces, m = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
        piece_sizes = np.asarray(
            ndimage.sum_labels(mask, pieces, np.arange(1, m + 1)), dtype=np.float64
        )
        small = np.flatnonzero(piece_sizes * voxel_ml < s.btv_min_component_ml) + 1
        if small.size:
            dropped = np.isin(pieces, small)
            mask &= ~dropped
            components.append(_summary(dropped, tbr, voxel_ml, TOO_SMALL))
    components.sort(key=lambda c: -c.volume_ml)
    return BtvSelection(mask, candidate_ml, tuple(components))


def _summary(
    voxels: NDArray[np.bool_], tbr: NDArray[np.floating], voxel_ml: float, reason: str
) -> BtvComponent:
    """The voxels one rule took from kept components, reported as one (pseudo) component."""
    values = np.asarray(tbr)[voxels]
    return BtvComponent(
        volume_ml=float(voxels.sum()) * voxel_ml,
        tbr_max=float(values.max()),
        tbr_mean=float(values.mean()),
        distance_mm=None,
        margin_fraction=None,
        grey_matter_fraction=None,
        excluded=reason,
    )


__all__ = [
    "BRAIN_EDGE",
    "FAR_FROM_TUMOUR",
    "GREY_MATTER",
    "SURGICAL_MARGIN",
    "TOO_SMALL",
    "TRIMMED",
    "BtvComponent",
    "BtvSelection",
    "distance_mm",
    "select_btv",
]
