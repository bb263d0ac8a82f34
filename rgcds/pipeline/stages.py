"""The processing stages of one study, as plain functions.

index -> classify -> convert -> preprocess -> segment -> measure -> radiomics -> predict ->
write -> export. Each takes the :class:`StudyContext` and the previous stages' typed
results; none needs Prefect. The expensive results (segmentation with its model-space
images, the radiomics table) are kept in the work directory and reloaded by a re-run.
"""

# mypy: disallow-untyped-calls=False, warn-return-any=False

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
import SimpleITK as sitk
import structlog

from rgcds.analysis.measure import Measurements
from rgcds.analysis.measure import measure as measure_tumour
from rgcds.analysis.pet import PetGeometryError, PetMeasurements, PetNotAnalysed, analyse_pet
from rgcds.analysis.predict import ClinicalInputs, Predictions, predict_all
from rgcds.analysis.qc import QcResult, check_segmentation, whole_tumour_dice
from rgcds.analysis.radiomics import extract_radiomics, to_wide, write_features
from rgcds.exceptions import (
    DicomInputError,
    MissingSequenceError,
    ModelError,
    SegmentationQualityError,
)
from rgcds.imaging import ModelSpace, PreprocessedStudy, make_brain_extractor, preprocess_study
from rgcds.imaging.resample import GridGeometry, resample_onto
from rgcds.inference import ModelCard, ModelRegistry, segment, select_backend
from rgcds.inference.monai_bundle import segment_monai
from rgcds.inference.nnunet import open_folds, segment_nnunet
from rgcds.logging import remember_phi
from rgcds.pipeline.context import StudyContext
from rgcds.results import SegmentationResult, SourceSeries, WrittenResults, write_results
from rgcds.results.content import AlgorithmInfo, PetImages, ReportContent, is_multiframe
from rgcds.study import (
    SequenceSelection,
    SeriesInfo,
    SeriesRole,
    StudyIndex,
    Volume,
    identify_tracer,
    load_volume,
    select_sequences,
)
from rgcds.study import index_study as _index_study

logger = structlog.get_logger(__name__)

#: The roles the analysis converts, in the order they are reported.
ANALYSIS_ROLES: tuple[SeriesRole, ...] = (
    SeriesRole.T1,
    SeriesRole.T1C,
    SeriesRole.T2,
    SeriesRole.FLAIR,
    SeriesRole.PET,
)

_SEG_DIR = "segmentation"


# --- index and classify ---------------------------------------------------------------


def index(ctx: StudyContext) -> StudyIndex:
    """Group the study's instances by series (headers only).

    The series of a paired study (``ctx.partner_inputs``: the MR study of a PET/CT study,
    or the reverse) are indexed with the study's own.

    Raises
    ------
    DicomInputError
        If the inputs hold no DICOM image, or more studies than the study and its partner.
    """
    study_index = _index_study((*ctx.inputs, *ctx.partner_inputs))
    uids = study_index.study_instance_uids
    expected = 2 if ctx.partner_inputs else 1
    if len(uids) != expected:
        raise DicomInputError(
            f"The inputs hold {len(uids)} studies ({', '.join(uids) or 'none'}); "
            + (
                "give the files of exactly one study."
                if expected == 1
                else "expected the study and its paired study of the same patient."
            )
        )
    logger.info("study indexed", n_series=len(study_index.series), study_uid=uids[0])
    return study_index


def classify(ctx: StudyContext, study_index: StudyIndex) -> SequenceSelection:
    """Classify every series and choose one per role; writes ``classification.json``."""
    selection = select_sequences(study_index, ctx.settings.classification)
    record = {
        "chosen": {
            role.value: series.series_instance_uid for role, series in selection.chosen.items()
        },
        "series": [
            {
                "series_instance_uid": c.series_instance_uid,
                "role": c.role.value,
                "confidence": round(c.confidence, 3),
                "reasons": list(c.reasons),
                "tracer": c.tracer.value if c.tracer is not None else None,
            }
            for c in selection.classifications
        ],
        "ambiguities": list(selection.ambiguities),
    }
    ctx.path("classification.json").write_text(json.dumps(record, indent=2))
    logger.info(
        "sequences identified",
        roles=sorted(role.value for role in selection.chosen),
        ambiguities=len(selection.ambiguities),
    )
    return selection


# --- convert --------------------------------------------------------------------------


@dataclass(frozen=True)
class Converted:
    """The converted volumes of the analysed roles, and notes on what was left out."""

    volumes: Mapping[SeriesRole, Volume]
    series: Mapping[SeriesRole, SeriesInfo]
    notes: tuple[str, ...]


CT_NOT_USED_NOTE = (
    "The CT series of the PET/CT study was recognised and not used: the PET is registered "
    "directly to the MR (mutual information); the CT served the PET's attenuation correction."
)


def _ct_notes(selection: SequenceSelection) -> list[str]:
    return [CT_NOT_USED_NOTE] if selection.series_for(SeriesRole.CT) is not None else []


def is_pet_only(selection: SequenceSelection) -> bool:
    """Whether the study (with its partner, if any) has a PET and no MR series at all.

    An MR study without T1c is not analysed (the report says T1c is missing), PET or not.
    """
    mr_roles = (SeriesRole.T1, SeriesRole.T1C, SeriesRole.T2, SeriesRole.FLAIR)
    return selection.series_for(SeriesRole.PET) is not None and all(
        selection.series_for(role) is None for role in mr_roles
    )


def check_pet_only_input(study_index: StudyIndex, selection: SequenceSelection) -> None:
    """Say why a PET/CT study without MR cannot be analysed when its PET is not a volume.

    Raises
    ------
    PetGeometryError
        If the study has no T1c and its PET series has fewer than three slices.
    """
    if selection.series_for(SeriesRole.T1C) is not None:
        return
    if selection.series_for(SeriesRole.PET) is not None:
        return
    if any(series.modality == "MR" for series in study_index.series):
        return
    for series in study_index.series:
        if series.modality == "PT" and series.n_frames < 3:
            raise PetGeometryError(
                f"The PET series {series.series_number} {series.series_description!r} has "
                f"{series.n_frames} slice(s); a PET volume needs at least three slices (send "
                "the whole series), and the study has no MR to analyse instead."
            )


def convert_pet_only(ctx: StudyContext, selection: SequenceSelection) -> Converted:
    """Convert the PET of a study without MR (a PET-grid-only analysis).

    Raises
    ------
    DicomInputError
        If the PET cannot be converted (one slice, broken geometry, ...).
    """
    info = selection.series_for(SeriesRole.PET)
    if info is None:
        raise MissingSequenceError("The study has no PET series to analyse.")
    volume = load_volume(info)
    notes = _ct_notes(selection)
    if volume.pet is not None and not volume.pet.is_suv:
        notes.append(f"PET is not in SUV: {volume.pet.reason}")
    return Converted(
        volumes={SeriesRole.PET: volume}, series={SeriesRole.PET: info}, notes=tuple(notes)
    )


def pet_only_analysis(
    ctx: StudyContext, converted: Converted
) -> PetMeasurements | PetNotAnalysed:
    """Amino-acid PET measurements on the PET grid alone (no MR partner).

    The brain is estimated from the PET, the search region is the brain and the background
    the mirrored contralateral region of the hottest spot (see ``docs/pet.md``).
    """
    volume = converted.volumes[SeriesRole.PET]
    tracer = identify_tracer(converted.series[SeriesRole.PET])
    try:
        result = analyse_pet(
            volume.image, tracer=tracer, suv=volume.pet, brain_mask=None,
            settings=ctx.settings.pet,
        )
    except DicomInputError as exc:
        logger.warning("PET not analysed", reason=str(exc))
        return PetNotAnalysed(tracer=tracer, reason=str(exc))
    if isinstance(result, PetMeasurements):
        ctx.path("pet.json").write_text(json.dumps(pet_summary(result), indent=2))
        logger.info("PET analysed alone", tracer=result.tracer.value,
                    tbr_max=round(result.tbr_max, 2))
    return result


def convert(ctx: StudyContext, selection: SequenceSelection) -> Converted:
    """Convert the chosen series to volumes.

    T1c is required (the reference frame of the results); a PET or MR series that cannot be
    converted is left out with a note, except T1c. A missing or left-out T1, T2 or FLAIR does
    not stop the analysis: the segmentation substitutes it (:func:`model_channels`). Of a
    T2 series with several echoes (dual-echo PD/T2) the longest echo is converted.

    Raises
    ------
    MissingSequenceError
        If the study has no usable T1c series.
    """
    if selection.series_for(SeriesRole.T1C) is None:
        raise MissingSequenceError(
            "The study has no contrast-enhanced T1 (T1c) series, which the tumour "
            "segmentation needs; send the post-contrast T1 series, or add a "
            "[[classification.rules]] entry if it was not recognised."
        )
    volumes: dict[SeriesRole, Volume] = {}
    series: dict[SeriesRole, SeriesInfo] = {}
    notes: list[str] = _ct_notes(selection)
    for role in ANALYSIS_ROLES:
        info = selection.series_for(role)
        if info is None:
            continue
        try:
            # A dual-echo PD/T2 series is one volume per echo: the T2 is the late echo.
            volumes[role] = load_volume(info, echo="longest" if role is SeriesRole.T2 else "all")
        except DicomInputError as exc:
            if role is SeriesRole.T1C:
                raise
            notes.append(f"{role.value} series left out: {exc}")
            logger.warning("series left out", role=role.value, reason=str(exc))
            continue
        series[role] = info
        pet = volumes[role].pet
        if pet is not None and not pet.is_suv:
            notes.append(f"PET is not in SUV: {pet.reason}")
    return Converted(volumes=volumes, series=series, notes=tuple(notes))


# --- segmentation ---------------------------------------------------------------------


def segmentation_card(ctx: StudyContext, postoperative: bool = False) -> ModelCard:
    """The configured segmentation model's card (schema and checksum checked).

    A post-operative study uses ``[processing] postoperative_segmentation_model`` (labels:
    1 resection cavity, 2 oedema, 3 residual enhancing tumour) when it is installed, else the
    pre-operative model (its necrosis label then stands in for the cavity; the report says
    so).

    Raises
    ------
    ModelError
        If it is missing, invalid, or unvalidated outside research mode.
    """
    registry = ModelRegistry(ctx.settings.inference.models_root)
    processing = ctx.settings.processing
    model_id = processing.segmentation_model
    postop_folder = registry.root / processing.postoperative_segmentation_model
    if postoperative and (postop_folder / "model.yaml").is_file():
        model_id = processing.postoperative_segmentation_model
    card = registry.get(model_id)
    research = ctx.settings.research_mode or ctx.settings.inference.research_mode
    if card.validation is None and not research:
        raise ModelError(
            f"The segmentation model {card.id} {card.version} has no validation metrics on "
            "its card; it is refused unless research_mode = true in the configuration."
        )
    return card


@dataclass(frozen=True)
class Segmentation:
    """A study's tumour segmentation and the images it was computed from.

    Attributes
    ----------
    labels_native
        BraTS labels (1 necrotic core, 2 oedema, 3 enhancing) on the reference's native grid.
    labels_model
        The same on the model grid.
    model_images
        Role value -> image on the model grid (MR z-scored in the brain, PET in SUV).
    to_mni
        Reference physical (LPS) points -> MNI template points, from brain extraction.
    reference_role, reference_series_uid
        The reference series.
    model_id, model_version
        The model that segmented.
    notes
        Choices made on the way (fallbacks, left-out series).
    brain_mask_model
        The brain mask on the model grid.
    pet_transform
        Reference physical points -> PET native physical points (the PET-to-MR rigid
        registration), when a PET was preprocessed.
    flip_dice
        Whole-tumour Dice between the labels and those of the left-right mirrored images
        (``[qc] flip_check``), or ``None`` when not computed.
    """

    labels_native: sitk.Image
    labels_model: sitk.Image
    model_images: Mapping[str, sitk.Image]
    to_mni: sitk.Transform | None
    reference_role: str
    reference_series_uid: str
    model_id: str
    model_version: str
    notes: tuple[str, ...] = ()
    brain_mask_model: sitk.Image | None = None
    pet_transform: sitk.Transform | None = None
    flip_dice: float | None = None


def preprocess(ctx: StudyContext, converted: Converted, card: ModelCard) -> tuple[
    PreprocessedStudy, sitk.Transform | None
]:
    """Register, bias-correct, skull-strip and normalise onto the model's grid."""
    spacing = float(card.inputs.spacing_mm[0])
    extractor = make_brain_extractor(
        ctx.settings.preprocessing, ctx.settings.inference.models_root
    )
    pre = preprocess_study(
        converted.volumes,
        model_space=ModelSpace(spacing=spacing),
        brain_extractor=extractor,
    )
    logger.info("study preprocessed", timings=dict(pre.timings), notes=list(pre.notes))
    return pre, extractor.last_transform


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


def run_segmentation(
    ctx: StudyContext,
    pre: PreprocessedStudy,
    to_mni: sitk.Transform | None,
    card: ModelCard,
    notes: tuple[str, ...] = (),
) -> Segmentation:
    """Run the segmentation model and map its labels back to the native reference grid.

    A missing T1, T2 or FLAIR channel is substituted (:func:`model_channels`) and the
    report notes say so; the T1c is required.

    Raises
    ------
    MissingSequenceError
        If the T1c channel is missing.
    """
    stacked, substituted = model_channels(
        pre.images,
        list(card.inputs.channels),
        card.id,
        brain_mask=sitk.GetArrayFromImage(pre.brain_mask) > 0,
    )
    notes = (*notes, *substituted)
    mask = sitk.GetArrayFromImage(pre.brain_mask).astype(bool)
    inference = ctx.settings.inference
    if card.nnunet is not None:
        # An imported nnU-Net model: its own preprocessing, sliding window and folds
        # (rgcds.inference.nnunet); a skull-stripped model sees zeros outside the brain.
        folds = open_folds(card, inference.backend)
        spacing_zyx = tuple(reversed(pre.brain_mask.GetSpacing()))
        stripped = card.nnunet.skull_stripped

        def infer(channels: np.ndarray, brain: np.ndarray) -> np.ndarray:
            x = np.where(brain[None], channels, 0.0) if stripped else channels
            out = segment_nnunet(x.astype(np.float32), spacing_zyx, card, folds)
            return remove_small_components(out, pre.brain_mask.GetSpacing())
    elif card.monai is not None:
        # An imported MONAI bundle: its transforms replayed on the model grid's geometry
        # (rgcds.inference.monai_bundle), its Invertd bringing the labels back to that grid.
        bundle_backend = select_backend(card, inference.backend)
        grid = pre.brain_mask
        skull_stripped = card.monai.skull_stripped

        def infer(channels: np.ndarray, brain: np.ndarray) -> np.ndarray:
            x = np.where(brain[None], channels, 0.0) if skull_stripped else channels
            out = segment_monai(x.astype(np.float32), grid.GetSpacing(), grid.GetDirection(),
                                grid.GetOrigin(), card, bundle_backend)
            return remove_small_components(out, grid.GetSpacing())
    else:
        backend = select_backend(card, inference.backend)

        def infer(channels: np.ndarray, brain: np.ndarray) -> np.ndarray:
            out = segment(
                channels,
                card,
                backend,
                brain_mask=brain,
                overlap=inference.overlap,
                batch_size=inference.batch_size,
                tta=inference.tta,
            ).astype(np.uint8)
            return remove_small_components(out, pre.brain_mask.GetSpacing())

    labels = infer(stacked, mask)
    flip_dice = None
    qc = ctx.settings.qc
    if qc.enabled and qc.flip_check and labels.any():
        # The mirrored twin: x (left-right) is the last array axis.
        mirrored = infer(np.ascontiguousarray(stacked[..., ::-1]),
                         np.ascontiguousarray(mask[..., ::-1]))[..., ::-1]
        flip_dice = whole_tumour_dice(labels, mirrored)
    labels_model = sitk.GetImageFromArray(labels)
    labels_model.CopyInformation(pre.brain_mask)
    labels_native = pre.labels_to_native(labels_model)
    seg = Segmentation(
        labels_native=labels_native,
        labels_model=labels_model,
        model_images={role.value: image for role, image in pre.images.items()},
        to_mni=to_mni,
        reference_role=pre.reference_role.value,
        reference_series_uid=pre.reference_series_instance_uid,
        model_id=card.id,
        model_version=card.version,
        notes=tuple(pre.notes) + tuple(notes),
        brain_mask_model=pre.brain_mask,
        pet_transform=pre.transforms.get(SeriesRole.PET),
        flip_dice=flip_dice,
    )
    save_segmentation(ctx, seg)
    counts = np.bincount(labels.ravel(), minlength=4)[1:4]
    logger.info("tumour segmented", model=card.id, voxels_ncr_ed_et=[int(c) for c in counts])
    return seg


def quality_control(ctx: StudyContext, seg: Segmentation) -> QcResult:
    """The segmentation quality gate (``[qc]``): raise when the segmentation is not credible.

    Returns
    -------
    QcResult
        The passed verdict and its measures (``enabled = false``: passed, nothing measured).

    Raises
    ------
    SegmentationQualityError
        "automatic segmentation failed quality control: <reasons>"; the runner then writes
        the not-analysed report (no SEG, RANO, radiomics or predictions).
    """
    qc = ctx.settings.qc
    if not qc.enabled:
        return QcResult(True)
    labels = sitk.GetArrayFromImage(seg.labels_model)
    if seg.brain_mask_model is not None:
        brain = sitk.GetArrayFromImage(seg.brain_mask_model) > 0
    else:
        brain = np.ones(labels.shape, dtype=bool)
    result = check_segmentation(labels, brain, seg.labels_model.GetSpacing(), qc,
                                flip_dice=seg.flip_dice)
    logger.info("segmentation quality control", passed=result.passed, **result.measures)
    if not result.passed:
        raise SegmentationQualityError(
            f"automatic segmentation failed quality control: {result.reason}. The images "
            "were not measured; read this study without automated results."
        )
    return result


#: Tumour components smaller than this are dropped as noise (the largest is always kept).
MIN_COMPONENT_ML = 1.0


def remove_small_components(
    labels: np.ndarray, spacing: tuple[float, ...], min_ml: float = MIN_COMPONENT_ML
) -> np.ndarray:
    """Drop connected tumour components (26-connectivity) below ``min_ml``.

    Scattered false-positive voxels far from the tumour would otherwise inflate diameters,
    lesion counts and radiomic shape features; a satellite lesion of at least ``min_ml`` is
    kept, so multifocality is still reported.
    """
    from scipy import ndimage

    tumour = labels > 0
    components, n = ndimage.label(tumour, structure=np.ones((3, 3, 3), dtype=bool))
    if n <= 1:
        return labels
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(components.ravel())[1:] * voxel_ml
    keep = np.zeros(n + 1, dtype=bool)
    keep[1:] = sizes >= min_ml
    keep[int(np.argmax(sizes)) + 1] = True
    cleaned = np.where(keep[components], labels, 0).astype(labels.dtype)
    logger.info(
        "small tumour components removed",
        removed=int(n - keep[1:].sum()),
        kept=int(keep[1:].sum()),
    )
    return cleaned


def save_segmentation(ctx: StudyContext, seg: Segmentation) -> None:
    """Keep a segmentation in the work directory so a re-run can resume after it."""
    folder = ctx.work_dir / _SEG_DIR
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(seg.labels_native, str(folder / "labels_native.nii.gz"))
    sitk.WriteImage(seg.labels_model, str(folder / "labels_model.nii.gz"))
    for name, image in seg.model_images.items():
        sitk.WriteImage(image, str(folder / f"model_{name}.nii.gz"))
    if seg.to_mni is not None:
        sitk.WriteTransform(seg.to_mni, str(folder / "to_mni.tfm"))
    if seg.brain_mask_model is not None:
        sitk.WriteImage(seg.brain_mask_model, str(folder / "brain_mask_model.nii.gz"))
    if seg.pet_transform is not None:
        sitk.WriteTransform(seg.pet_transform, str(folder / "pet_transform.tfm"))
    meta = {
        "reference_role": seg.reference_role,
        "reference_series_uid": seg.reference_series_uid,
        "model_id": seg.model_id,
        "model_version": seg.model_version,
        "images": sorted(seg.model_images),
        "notes": list(seg.notes),
        "flip_dice": seg.flip_dice,
    }
    # The marker file is written last: its presence means the folder is complete.
    (folder / "segmentation.json").write_text(json.dumps(meta, indent=2))


def load_segmentation(ctx: StudyContext) -> Segmentation | None:
    """A complete segmentation kept by an earlier run, or ``None``."""
    folder = ctx.work_dir / _SEG_DIR
    marker = folder / "segmentation.json"
    if not marker.exists():
        return None
    try:
        meta = json.loads(marker.read_text())
        tfm = folder / "to_mni.tfm"
        brain = folder / "brain_mask_model.nii.gz"
        pet_tfm = folder / "pet_transform.tfm"
        seg = Segmentation(
            labels_native=sitk.ReadImage(str(folder / "labels_native.nii.gz")),
            labels_model=sitk.ReadImage(str(folder / "labels_model.nii.gz")),
            model_images={
                name: sitk.ReadImage(str(folder / f"model_{name}.nii.gz"))
                for name in meta["images"]
            },
            to_mni=sitk.ReadTransform(str(tfm)) if tfm.exists() else None,
            reference_role=meta["reference_role"],
            reference_series_uid=meta["reference_series_uid"],
            model_id=meta["model_id"],
            model_version=meta["model_version"],
            notes=tuple(meta.get("notes", ())),
            brain_mask_model=sitk.ReadImage(str(brain)) if brain.exists() else None,
            pet_transform=sitk.ReadTransform(str(pet_tfm)) if pet_tfm.exists() else None,
            flip_dice=meta.get("flip_dice"),
        )
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        logger.warning("kept segmentation unreadable; recomputing", error=str(exc))
        return None
    logger.info("segmentation resumed from the work directory")
    return seg


# --- measure, radiomics, predict ------------------------------------------------------


def measure(ctx: StudyContext, seg: Segmentation) -> Measurements:
    """Volumes, RANO, multifocality and location on the native reference grid."""
    result = measure_tumour(seg.labels_native, to_mni=seg.to_mni)
    ctx.path("measurements.json").write_text(
        json.dumps(
            {
                r.region: {"volume_cm3": r.volume_cm3, "components": r.n_components}
                for r in result.regions
            }
            | {"rano_sum_of_products_mm2": result.rano.sum_of_products_mm2},
            indent=2,
        )
    )
    return result


def radiomics(ctx: StudyContext, seg: Segmentation, study_uid: str) -> pd.DataFrame:
    """Radiomic features per sub-region and sequence (model grid); ``features.csv``."""
    path = ctx.work_dir / "features.csv"
    if path.exists():
        try:
            table = pd.read_csv(path)
            logger.info("radiomics resumed from the work directory", n=len(table))
            return table
        except (OSError, ValueError):
            pass
    table = extract_radiomics(
        dict(seg.model_images),
        seg.labels_model,
        study_uid=study_uid,
        regions=tuple(ctx.settings.processing.radiomics_regions),
        params=ctx.settings.processing.radiomics_params,
        max_workers=ctx.settings.processing.radiomics_workers,
    )
    write_features(table, path)
    logger.info("radiomics extracted", n_features=len(table))
    return table


def clinical_inputs(dataset: pydicom.Dataset) -> ClinicalInputs:
    """Age (years) and sex from the header: PatientAge, else birth date and study date."""
    age: float | None = None
    text = str(dataset.get("PatientAge", "") or "")
    if len(text) == 4 and text[:3].isdigit():
        factor = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}.get(text[3])
        if factor is not None:
            age = int(text[:3]) * factor
    if age is None:
        birth = str(dataset.get("PatientBirthDate", "") or "")
        study = str(dataset.get("StudyDate", "") or "")
        if len(birth) == 8 and len(study) == 8 and birth.isdigit() and study.isdigit():
            age = (int(study[:4]) - int(birth[:4])) - (study[4:] < birth[4:])
    sex = str(dataset.get("PatientSex", "") or "") or None
    return ClinicalInputs(age_years=age, sex=sex)


def predict(
    ctx: StudyContext, features: pd.DataFrame, clinical: ClinicalInputs
) -> Predictions:
    """Marker and survival predictions from every prediction model in the registry."""
    wide = to_wide(features)
    values: dict[str, float] = {}
    if len(wide):
        row = wide.iloc[0]
        values = {str(k): float(v) for k, v in row.items() if pd.notna(v)}
    root = ctx.settings.inference.models_root
    if root is None:
        from rgcds.inference import DEFAULT_MODELS_ROOT

        root = DEFAULT_MODELS_ROOT
    research = ctx.settings.research_mode or ctx.settings.inference.research_mode
    return predict_all(Path(root), values, clinical, research_mode=research)


def pet_summary(result: PetMeasurements) -> dict[str, object]:
    """PHI-free figures of a PET analysis."""

    def r(value: float | None, n: int = 2) -> float | None:
        return None if value is None else round(float(value), n)

    return {
        "tracer": result.tracer.value,
        "units": result.units,
        "threshold_tbr": result.threshold_tbr,
        "tbr_max": r(result.tbr_max),
        "tbr_mean": r(result.tbr_mean),
        "suv_max": r(result.suv_max),
        "suv_mean": r(result.suv_mean),
        "suv_peak": r(result.suv_peak),
        "background_mean": r(result.background_mean, 3),
        "background_method": result.background_method,
        "btv_ml": r(result.btv_ml, 1),
        "btv_candidate_ml": r(result.btv_candidate_ml, 1),
    }


def pet_notes(result: PetMeasurements | PetNotAnalysed | None) -> tuple[str, ...]:
    """Sentences for the report on the PET analysis."""
    if result is None:
        return ()
    if isinstance(result, PetNotAnalysed):
        return (f"PET ({result.tracer.value}) not analysed: {result.reason}",)
    suv = (
        f"SUVmax {result.suv_max:.2f}, SUVpeak {result.suv_peak:.2f}, "
        if result.suv_max is not None and result.suv_peak is not None
        else f"SUV not available ({result.suv_reason}); "
    )
    return (
        f"Amino-acid PET ({result.tracer.value}): TBRmax {result.tbr_max:.2f}, "
        + (f"TBRmean {result.tbr_mean:.2f}, " if result.tbr_mean is not None else "")
        + suv
        + f"BTV {result.btv_ml:.1f} ml at TBR {result.threshold_tbr}; background "
        f"{result.background_method}.",
        *result.notes,
    )


# --- write and export -----------------------------------------------------------------


def reference_datasets(info: SeriesInfo, volume: Volume) -> SourceSeries:
    """The reference series' datasets in the volume's slice order (for the SEG).

    A multi-frame (Enhanced) series is its one instance, read once, with the frame number
    of each slice.
    """
    paths = {ref.sop_instance_uid: ref.path for ref in info.instances}
    read: dict[str, pydicom.Dataset] = {}
    for uid in volume.sop_instance_uids:
        if uid not in read:
            read[uid] = pydicom.dcmread(paths[uid])
            remember_phi(read[uid])
    if any(is_multiframe(ds) for ds in read.values()):
        return SourceSeries(tuple(read.values()), frame_numbers=volume.frame_numbers)
    return SourceSeries(tuple(read[uid] for uid in volume.sop_instance_uids))


def overlay_backgrounds(seg: Segmentation) -> dict[str, np.ndarray]:
    """FLAIR on the reference's native grid, for the Secondary Capture overlays."""
    flair = seg.model_images.get(SeriesRole.FLAIR.value)
    if flair is None:
        return {}
    on_native = resample_onto(flair, GridGeometry.of(seg.labels_native))
    return {"FLAIR": sitk.GetArrayFromImage(on_native).astype(np.float32)}


def postoperative_labels(ctx: StudyContext, seg: Segmentation) -> bool:
    """Whether the labels mean cavity / oedema / residual enhancement (post-op model)."""
    return seg.model_id == ctx.settings.processing.postoperative_segmentation_model


def earlier_reports(ctx: StudyContext, study_uid: str) -> list[pydicom.Dataset]:
    """The SR documents that earlier jobs wrote into study ``study_uid`` (now superseded).

    The daemon works in ``<storage>/work/<study UID>/<job id>``. The study's earlier
    reports are in the other job folders of that study (a report written while a partner
    study was awaited, a "not analysed" or fallback report), and, for a paired analysis, in
    the other job folders of the study being processed. Offline runs (job id 0) have none.
    Headers only; an unreadable file is skipped.
    """
    if ctx.job_id <= 0:
        return []
    work_root = ctx.work_dir.parent.parent
    job_dirs = {
        d
        for parent in (ctx.work_dir.parent, work_root / study_uid)
        if parent.is_dir()
        for d in parent.iterdir()
        if d.is_dir() and d.name.isdigit() and d.resolve() != ctx.work_dir.resolve()
    }
    found: dict[str, pydicom.Dataset] = {}
    for job_dir in sorted(job_dirs):
        for folder in (job_dir / "results", job_dir / "fallback"):
            for path in sorted(folder.rglob("*.dcm")) if folder.is_dir() else ():
                try:
                    ds = pydicom.dcmread(path, stop_before_pixels=True)
                except Exception:  # noqa: S112 - a partial or foreign file: not a report
                    continue
                if ds.get("Modality") == "SR" and ds.get("StudyInstanceUID") == study_uid:
                    found[str(ds.SOPInstanceUID)] = ds
    return list(found.values())


def write(
    ctx: StudyContext,
    content: ReportContent,
    source: SourceSeries | None = None,
    seg: Segmentation | None = None,
    pet_images: PetImages | None = None,
) -> WrittenResults:
    """Write SEG, SR, SC overlays and the PDF (or the SR and PDF of a study not analysed).

    With ``pet_images`` (and ``content.pet``) also the PET SEG in the PET study, the PET
    segments on the MR grid and the fused PET/MR overlays.
    """
    segmentation = None
    backgrounds: dict[str, Any] | None = None
    if seg is not None and source is not None:
        segmentation = SegmentationResult(
            labels=sitk.GetArrayFromImage(seg.labels_native).astype(np.uint8),
            algorithm=AlgorithmInfo(
                model_id=seg.model_id, version=seg.model_version, name=seg.model_id
            ),
            postoperative=postoperative_labels(ctx, seg),
        )
        backgrounds = overlay_backgrounds(seg)
    processing = ctx.settings.processing
    written = write_results(
        ctx.work_dir / "results",
        content,
        source=source,
        segmentation=segmentation,
        backgrounds=backgrounds,
        overlays=processing.write_secondary_capture,
        pdf=processing.write_pdf,
        pet_images=pet_images,
        predecessors=earlier_reports(ctx, content.study.study_instance_uid),
    )
    manifest = [
        {"kind": o.kind, "sop_instance_uid": o.sop_instance_uid, "path": str(o.path)}
        for o in written.objects
    ]
    ctx.path("results.json").write_text(json.dumps(manifest, indent=2))
    logger.info("results written", objects=[m["kind"] for m in manifest])
    return written


__all__ = [
    "ANALYSIS_ROLES",
    "CHANNEL_SUBSTITUTES",
    "CT_NOT_USED_NOTE",
    "REQUIRED_CHANNELS",
    "SUBSTITUTION_METHOD",
    "SUBSTITUTION_METHODS",
    "Converted",
    "Segmentation",
    "check_pet_only_input",
    "classify",
    "clinical_inputs",
    "convert",
    "convert_pet_only",
    "index",
    "is_pet_only",
    "load_segmentation",
    "measure",
    "model_channels",
    "pet_notes",
    "pet_only_analysis",
    "pet_summary",
    "postoperative_labels",
    "predict",
    "preprocess",
    "radiomics",
    "reference_datasets",
    "run_segmentation",
    "save_segmentation",
    "segmentation_card",
    "write",
]
