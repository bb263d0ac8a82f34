# SimpleITK (SWIG) ships no type hints: its calls are untyped and return Any.
"""Rigid and affine registration with Mattes mutual information, multi-resolution.

The returned transform maps points of the *fixed* image's physical space to the *moving*
image's physical space, which is what :func:`SimpleITK.Resample` needs to bring the moving
image onto the fixed grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import SimpleITK as sitk
import structlog

logger = structlog.get_logger(__name__)


class Initializer(StrEnum):
    """How the transform is initialised before optimisation."""

    MOMENTS = "moments"
    GEOMETRY = "geometry"
    IDENTITY = "identity"


@dataclass(frozen=True, slots=True)
class RegistrationSettings:
    """Optimiser settings; the defaults favour speed (seconds on two cores).

    Attributes
    ----------
    shrink_factors, smoothing_sigmas
        The pyramid (shrink factors per level and Gaussian sigmas in voxels).
    sampling_percentage
        Fraction of fixed voxels sampled for the metric at each level (random, seeded).
    max_samples
        Upper bound on the samples per level (the fraction is lowered on large images);
        ``None`` for no bound.
    histogram_bins
        Mattes mutual information bins.
    iterations
        Maximum optimiser iterations per level.
    learning_rate
        Initial step of the regular-step gradient descent (in physical shift units).
    seed
        Seed of the metric sampling, so that results are reproducible.
    """

    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas: tuple[float, ...] = (2.0, 1.0, 0.0)
    sampling_percentage: float = 0.1
    max_samples: int | None = 30_000
    histogram_bins: int = 32
    iterations: int = 100
    learning_rate: float = 2.0
    min_step: float = 1e-2
    seed: int = 42


@dataclass(frozen=True)
class RegistrationResult:
    """A registration's transform (fixed -> moving points) and how it ended."""

    transform: sitk.Transform
    metric_value: float
    stop_condition: str


def _float(image: sitk.Image) -> sitk.Image:
    result: sitk.Image = sitk.Cast(image, sitk.sitkFloat32)
    return result


def _percentages(fixed: sitk.Image, settings: RegistrationSettings) -> list[float]:
    """Sampling fraction per pyramid level, bounded by ``max_samples``."""
    out = []
    for factor in settings.shrink_factors:
        voxels = 1
        for size in fixed.GetSize():
            voxels *= max(1, size // factor)
        fraction = settings.sampling_percentage
        if settings.max_samples is not None:
            fraction = min(fraction, settings.max_samples / voxels)
        out.append(max(fraction, 1e-3))
    return out


def _initial(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: sitk.Transform,
    initializer: Initializer | None,
) -> sitk.Transform:
    if initializer is None:  # already initialised by the caller
        return transform
    if initializer is Initializer.IDENTITY:
        center = fixed.TransformContinuousIndexToPhysicalPoint(
            [(s - 1) / 2.0 for s in fixed.GetSize()]
        )
        transform.SetCenter(center)  # type: ignore[attr-defined]
        return transform
    mode = (
        sitk.CenteredTransformInitializerFilter.MOMENTS
        if initializer is Initializer.MOMENTS
        else sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    result: sitk.Transform = sitk.CenteredTransformInitializer(fixed, moving, transform, mode)
    return result


def _register(
    fixed: sitk.Image,
    moving: sitk.Image,
    transform: sitk.Transform,
    initializer: Initializer | None,
    settings: RegistrationSettings,
    fixed_mask: sitk.Image | None,
    moving_mask: sitk.Image | None = None,
) -> RegistrationResult:
    fixed_f, moving_f = _float(fixed), _float(moving)
    initial = _initial(fixed_f, moving_f, transform, initializer)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentagePerLevel(_percentages(fixed, settings), settings.seed)
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    if moving_mask is not None:
        method.SetMetricMovingMask(moving_mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=settings.learning_rate,
        minStep=settings.min_step,
        numberOfIterations=settings.iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-6,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_sigmas))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=False)
    final = method.Execute(fixed_f, moving_f)
    # Execute returns a CompositeTransform wrapping the optimised transform; unwrap it.
    if isinstance(final, sitk.CompositeTransform) and final.GetNumberOfTransforms() == 1:
        final = final.GetNthTransform(0)
    result = RegistrationResult(
        transform=final,
        metric_value=float(method.GetMetricValue()),
        stop_condition=method.GetOptimizerStopConditionDescription(),
    )
    logger.debug(
        "registration finished",
        kind=transform.GetName(),
        metric=round(result.metric_value, 4),
        iterations=method.GetOptimizerIteration(),
    )
    return result


def register_rigid(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    initializer: Initializer | str = Initializer.MOMENTS,
    settings: RegistrationSettings | None = None,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
) -> RegistrationResult:
    """Rigidly register ``moving`` to ``fixed`` (Euler3D, Mattes MI, pyramid 4-2-1).

    Parameters
    ----------
    fixed, moving
        Scalar images in physical (LPS) space; any pixel type.
    initializer
        ``moments`` (centres of mass), ``geometry`` (image centres) or ``identity``
        (same frame of reference: start from no motion).
    settings
        Optimiser settings.
    fixed_mask
        Optional mask restricting where the metric is sampled.
    moving_mask
        Optional mask: samples whose mapped point falls outside it are ignored (for example
        a skull-stripped template's brain, so that the subject's skull does not count).

    Returns
    -------
    RegistrationResult
        Its ``transform`` (an Euler3DTransform) maps fixed points to moving points.
    """
    return _register(
        fixed,
        moving,
        sitk.Euler3DTransform(),
        Initializer(initializer),
        settings or RegistrationSettings(),
        fixed_mask,
        moving_mask,
    )


def register_affine(
    fixed: sitk.Image,
    moving: sitk.Image,
    *,
    initial: sitk.Transform | None = None,
    initializer: Initializer | str = Initializer.MOMENTS,
    settings: RegistrationSettings | None = None,
    fixed_mask: sitk.Image | None = None,
    moving_mask: sitk.Image | None = None,
) -> RegistrationResult:
    """Affine registration (12 parameters), optionally starting from a rigid result.

    Parameters
    ----------
    fixed, moving
        Scalar images in physical space.
    initial
        A rigid (Euler3D) transform to start from; otherwise ``initializer`` is used.
    initializer, settings, fixed_mask, moving_mask
        As for :func:`register_rigid`.

    Returns
    -------
    RegistrationResult
        Its ``transform`` (an AffineTransform) maps fixed points to moving points.
    """
    affine = sitk.AffineTransform(3)
    init: Initializer | None = Initializer(initializer)
    if initial is not None:
        euler = sitk.Euler3DTransform(initial)
        affine.SetMatrix(euler.GetMatrix())
        affine.SetTranslation(euler.GetTranslation())
        affine.SetCenter(euler.GetCenter())
        init = None
    return _register(
        fixed, moving, affine, init, settings or RegistrationSettings(), fixed_mask, moving_mask
    )


__all__ = [
    "Initializer",
    "RegistrationResult",
    "RegistrationSettings",
    "register_affine",
    "register_rigid",
]
