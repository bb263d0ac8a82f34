# SimpleITK (SWIG) ships no type hints: its calls are untyped and return Any.
"""Bring a study's volumes into one reference frame and a model's grid, reversibly.

Steps (each timed in :attr:`PreprocessedStudy.timings`):

1. Reference series: T1c; if missing FLAIR, then T1, then T2 (the fallback is reported in
   ``notes``). Its native grid is where results (SEG) go.
2. N4 bias correction of every MR series (not ADC, PET, CT), on its native grid.
3. Rigid registration of every other series to the reference (Euler3D, Mattes MI, 4-2-1
   pyramid, ~15% sampling). Series in the reference's frame of reference start from no
   motion; others from their centres of mass.
4. Brain extraction on the reference (T1 when present, registered to it, as templates are
   T1) through a :class:`~rgcds.imaging.brain.BrainExtractor`.
5. Resampling onto the model grid (isotropic, LPS or RAS, lattice through the reference's
   first voxel centre) with one interpolation per series (transforms composed).
6. z-score inside the brain for T1, T1c, T2, FLAIR, SWI and DWI; ADC, PET (SUV) and CT keep
   their quantitative units.

Any of T1, T2 and FLAIR may be missing: every step runs on the series present (brain
extraction then runs on the reference itself), and the segmentation stands in for the
missing channels (:func:`rgcds.pipeline.stages.model_channels`,
``docs/missing-sequences.md``).

A label map in model space goes back onto the reference's native grid with
:meth:`PreprocessedStudy.labels_to_native` (nearest neighbour, exact when the native
spacings are multiples of the model spacing).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import SimpleITK as sitk
import structlog

from rgcds.exceptions import MissingSequenceError
from rgcds.imaging.bias import n4_correct
from rgcds.imaging.brain import BrainExtractor, TemplateBrainExtractor
from rgcds.imaging.normalise import zscore
from rgcds.imaging.registration import Initializer, RegistrationSettings, register_rigid
from rgcds.imaging.resample import (
    GridGeometry,
    ModelSpace,
    is_label_image,
    model_grid,
    resample_onto,
)
from rgcds.study import SeriesRole, Volume

logger = structlog.get_logger(__name__)

#: Reference preference: the first present becomes the reference frame.
REFERENCE_ORDER: tuple[SeriesRole, ...] = (
    SeriesRole.T1C,
    SeriesRole.FLAIR,
    SeriesRole.T1,
    SeriesRole.T2,
)
_NO_N4 = frozenset({SeriesRole.ADC, SeriesRole.PET, SeriesRole.CT})
_NORMALISED = frozenset(
    {SeriesRole.T1, SeriesRole.T1C, SeriesRole.T2, SeriesRole.FLAIR, SeriesRole.SWI, SeriesRole.DWI}
)


@dataclass(frozen=True)
class PreprocessedStudy:
    """Co-registered, normalised images in model space, and the way back.

    Attributes
    ----------
    images
        Role -> float32 image on the model grid.
    brain_mask
        uint8 brain mask on the model grid.
    reference_role, reference_series_instance_uid
        The series whose native grid defines the reference frame.
    reference_geometry
        The native grid of the reference series (where SEG results go).
    model_geometry
        The model grid.
    transforms
        Role -> transform mapping reference physical points to that series' native physical
        points (identity for the reference).
    notes
        Sentences on choices made (reference fallback, skipped steps).
    timings
        Seconds per step.
    """

    images: Mapping[SeriesRole, sitk.Image]
    brain_mask: sitk.Image
    reference_role: SeriesRole
    reference_series_instance_uid: str
    reference_geometry: GridGeometry
    model_geometry: GridGeometry
    transforms: Mapping[SeriesRole, sitk.Transform]
    notes: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)

    def to_model_space(
        self, image: sitk.Image, *, role: SeriesRole | None = None, label: bool | None = None
    ) -> sitk.Image:
        """Resample an image onto the model grid.

        Parameters
        ----------
        image
            An image in the reference frame (for example a label map on the reference's
            native grid), or on the native grid of series ``role``.
        role
            When given, ``image`` is in that series' native space and its registration is
            applied.
        label
            Nearest neighbour and the input pixel type; by default for integer images.

        Returns
        -------
        sitk.Image
        """
        transform = self.transforms[role] if role is not None else None
        use_label = is_label_image(image) if label is None else label
        return resample_onto(image, self.model_geometry, transform=transform, label=use_label)

    def labels_to_native(self, label_image: sitk.Image) -> sitk.Image:
        """Map a label map on the model grid onto the reference's native grid (nearest neighbour).

        Parameters
        ----------
        label_image
            Integer label map on the model grid.

        Returns
        -------
        sitk.Image
            Same pixel type, on :attr:`reference_geometry`.
        """
        image = label_image
        if not is_label_image(image):
            image = sitk.Cast(sitk.Round(image), sitk.sitkUInt8)
        return resample_onto(image, self.reference_geometry, label=True)

    def brain_mask_native(self) -> sitk.Image:
        """The brain mask on the reference's native grid."""
        return self.labels_to_native(self.brain_mask)


def choose_reference(roles: Sequence[SeriesRole] | Mapping[SeriesRole, object]) -> SeriesRole:
    """The reference role by :data:`REFERENCE_ORDER`.

    Raises
    ------
    MissingSequenceError
        If none of T1c, FLAIR, T1 and T2 is present.
    """
    present = set(roles)
    for role in REFERENCE_ORDER:
        if role in present:
            return role
    raise MissingSequenceError(
        "The study has none of T1c, FLAIR, T1 or T2, so there is no anatomical reference; "
        "check the sequence classification or add a [[classification.rules]] entry."
    )


def preprocess_study(
    volumes: Mapping[SeriesRole, Volume],
    *,
    model_space: ModelSpace | None = None,
    brain_extractor: BrainExtractor | None = None,
    bias_correction: bool = True,
    registration: RegistrationSettings | None = None,
) -> PreprocessedStudy:
    """Register, bias-correct, skull-strip, normalise and resample a study's volumes.

    Parameters
    ----------
    volumes
        Role -> converted volume (from :func:`rgcds.study.load_volume`).
    model_space
        The model's grid (default 1 mm isotropic, LPS).
    brain_extractor
        Brain extraction; :class:`TemplateBrainExtractor` by default.
    bias_correction
        Run N4 on MR series.
    registration
        Settings for the co-registrations.

    Returns
    -------
    PreprocessedStudy

    Raises
    ------
    MissingSequenceError
        If there is no anatomical reference (see :func:`choose_reference`).
    """
    space = model_space or ModelSpace()
    extractor = brain_extractor or TemplateBrainExtractor()
    settings = registration or RegistrationSettings()
    timings: dict[str, float] = {}
    notes: list[str] = []

    def tick(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - since, 3)
        return now

    t = time.perf_counter()
    reference_role = choose_reference(volumes)
    if reference_role is not SeriesRole.T1C:
        notes.append(
            f"No T1c series: {reference_role.value} is the reference frame (fallback order "
            "T1c, FLAIR, T1, T2)."
        )
    reference = volumes[reference_role]
    native: dict[SeriesRole, sitk.Image] = {}
    for role, volume in volumes.items():
        image = sitk.Cast(volume.image, sitk.sitkFloat32)
        if bias_correction and role not in _NO_N4 and volume.modality == "MR":
            image = n4_correct(image)
        native[role] = image
    t = tick("bias_correction", t)

    identity = sitk.Transform(3, sitk.sitkIdentity)
    transforms: dict[SeriesRole, sitk.Transform] = {reference_role: identity}
    for role, volume in volumes.items():
        if role is reference_role:
            continue
        same_frame = (
            bool(volume.frame_of_reference_uid)
            and volume.frame_of_reference_uid == reference.frame_of_reference_uid
        )
        result = register_rigid(
            native[reference_role],
            native[role],
            initializer=Initializer.IDENTITY if same_frame else Initializer.MOMENTS,
            settings=settings,
        )
        transforms[role] = result.transform
        logger.debug("series registered", role=role.value, metric=round(result.metric_value, 4))
    t = tick("registration", t)

    ref_grid = GridGeometry.of(native[reference_role])
    if SeriesRole.T1 in native and reference_role is not SeriesRole.T1:
        brain_input = resample_onto(
            native[SeriesRole.T1], ref_grid, transform=transforms[SeriesRole.T1]
        )
    else:
        brain_input = native[reference_role]
    mask_native = extractor(brain_input)
    t = tick("brain_extraction", t)

    grid = model_grid(native[reference_role], space)
    mask = resample_onto(sitk.Cast(mask_native, sitk.sitkUInt8), grid, label=True)
    images: dict[SeriesRole, sitk.Image] = {}
    for role, image in native.items():
        images[role] = resample_onto(image, grid, transform=transforms[role])
    t = tick("resampling", t)

    for role in list(images):
        if role in _NORMALISED:
            images[role] = zscore(images[role], mask)
    tick("normalisation", t)
    timings["total"] = round(sum(timings.values()), 3)
    logger.info(
        "study preprocessed",
        reference=reference_role.value,
        roles=sorted(r.value for r in images),
        model_size=list(grid.size),
        seconds=timings["total"],
    )
    return PreprocessedStudy(
        images=images,
        brain_mask=mask,
        reference_role=reference_role,
        reference_series_instance_uid=reference.series_instance_uid,
        reference_geometry=ref_grid,
        model_geometry=grid,
        transforms=transforms,
        notes=tuple(notes),
        timings=timings,
    )


__all__ = ["REFERENCE_ORDER", "PreprocessedStudy", "choose_reference", "preprocess_study"]
