# SimpleITK (SWIG) ships no type hints: its calls are untyped and return Any.
"""Brain extraction behind a small protocol, so a model-based extractor can replace it.

:class:`TemplateBrainExtractor` registers a T1 template (the full-head MNI ICBM152 2009a, from
:mod:`rgcds.templates`) to the subject — rigid, then affine, Mattes MI, on images averaged down
to about 3 mm — and carries the template's brain mask over at full resolution. The learned
alternative is :class:`rgcds.imaging.deepbet.DeepbetBrainExtractor`; ``[preprocessing]
brain_extractor`` chooses (:func:`make_brain_extractor`), measured by
``bench/brain_extraction.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import SimpleITK as sitk
import structlog

from rgcds.imaging.registration import (
    Initializer,
    RegistrationSettings,
    register_affine,
    register_rigid,
)
from rgcds.imaging.resample import GridGeometry, resample_onto
from rgcds.settings.preprocessing import PreprocessingSettings

logger = structlog.get_logger(__name__)


@runtime_checkable
class BrainExtractor(Protocol):
    """Anything that returns a brain mask for an image."""

    def __call__(self, image: sitk.Image) -> sitk.Image:
        """Return a uint8 mask (1 = brain) on the grid of ``image``."""
        ...


class TemplateBrainExtractor:
    """Brain mask by affine registration of a template and its mask.

    Parameters
    ----------
    template, template_mask
        A T1-weighted template and its brain mask (same grid). When ``None``, the full-head
        MNI ICBM152 2009a T1 of :func:`rgcds.templates.template_head_t1` and
        :func:`rgcds.templates.template_brain_mask` are loaded on first use: a scanner image
        shows the whole head, and a full-head template's moments and scalp match it (the
        skull-stripped template started oblique heads 10-15 degrees off).
    template_spacing
        Template and subject are averaged down to about this spacing (mm) for the
        registration, for speed; the mask is carried over at full resolution.
    settings
        Registration settings of the affine stage; the rigid stage that starts it runs one
        level coarser.
    """

    def __init__(
        self,
        template: sitk.Image | None = None,
        template_mask: sitk.Image | None = None,
        *,
        template_spacing: float = 3.0,
        settings: RegistrationSettings | None = None,
    ) -> None:
        if (template is None) != (template_mask is None):
            raise ValueError("Give both a template and its mask, or neither.")
        self._template = template
        self._mask = template_mask
        self._spacing = template_spacing
        self._affine_settings = settings or RegistrationSettings(
            shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0), sampling_percentage=0.2
        )
        self._rigid_settings = RegistrationSettings(
            shrink_factors=(4, 2),
            smoothing_sigmas=(2.0, 1.0),
            sampling_percentage=self._affine_settings.sampling_percentage,
            seed=self._affine_settings.seed,
        )
        self.last_transform: sitk.Transform | None = None

    def _load(self) -> tuple[sitk.Image, sitk.Image]:
        if self._template is None or self._mask is None:
            from rgcds.templates import template_brain_mask, template_head_t1

            self._template, self._mask = template_head_t1(), template_brain_mask()
        return self._template, self._mask

    def __call__(self, image: sitk.Image) -> sitk.Image:
        """Return the brain mask (uint8, 1 = brain) on the grid of ``image``."""
        template, mask = self._load()
        fixed = _coarsen(image, self._spacing)
        moving = _coarsen(template, self._spacing)
        # Templates are often skull-stripped while the subject is not: only samples that land
        # in (a rim around) the template brain count, so the skull cannot pull the fit.
        region = _coarsen(mask, self._spacing) > 0.5
        region = sitk.BinaryDilate(region, [2, 2, 2])
        rigid = register_rigid(
            fixed,
            moving,
            initializer=Initializer.MOMENTS,
            settings=self._rigid_settings,
            moving_mask=region,
        )
        affine = register_affine(
            fixed,
            moving,
            initial=rigid.transform,
            settings=self._affine_settings,
            moving_mask=region,
        )
        self.last_transform = affine.transform
        soft = resample_onto(
            sitk.Cast(mask, sitk.sitkFloat32), GridGeometry.of(image), transform=affine.transform
        )
        brain: sitk.Image = sitk.Cast(soft >= 0.5, sitk.sitkUInt8)
        logger.debug("brain extracted", voxels=int(sitk.GetArrayViewFromImage(brain).sum()))
        return brain


class AtlasAlignedExtractor:
    """A brain extractor plus the template registration that places the brain in MNI space.

    The mask is ``extractor``'s; :attr:`last_transform` (subject -> template, what tumour
    location uses) comes from a :class:`TemplateBrainExtractor` run on the same image, its
    mask discarded.
    """

    def __init__(self, extractor: BrainExtractor, atlas: TemplateBrainExtractor | None = None,
                 ) -> None:
        self.extractor = extractor
        self.atlas = atlas or TemplateBrainExtractor()
        self.last_transform: sitk.Transform | None = None

    def __call__(self, image: sitk.Image) -> sitk.Image:
        """Return ``extractor``'s mask and keep the template registration."""
        mask = self.extractor(image)
        self.atlas(image)
        self.last_transform = self.atlas.last_transform
        return mask


def make_brain_extractor(
    settings: PreprocessingSettings, models_root: Path | None = None
) -> TemplateBrainExtractor | AtlasAlignedExtractor:
    """The brain extractor ``[preprocessing] brain_extractor`` names.

    Both kinds expose ``last_transform`` (subject -> MNI template) after a call.
    """
    if settings.brain_extractor == "template":
        return TemplateBrainExtractor()
    from rgcds.imaging.deepbet import DeepbetBrainExtractor

    learned = DeepbetBrainExtractor(
        models_root, crop_shape=settings.deepbet_crop, threads=settings.threads
    )
    return AtlasAlignedExtractor(learned)


def _coarsen(image: sitk.Image, spacing: float) -> sitk.Image:
    """Average voxels down to about ``spacing`` mm (BinShrink; a no-op for coarse images)."""
    factors = [max(1, round(spacing / s)) for s in image.GetSpacing()]
    image = sitk.Cast(image, sitk.sitkFloat32)
    return image if factors == [1, 1, 1] else sitk.BinShrink(image, factors)


__all__ = [
    "AtlasAlignedExtractor",
    "BrainExtractor",
    "TemplateBrainExtractor",
    "make_brain_extractor",
]
