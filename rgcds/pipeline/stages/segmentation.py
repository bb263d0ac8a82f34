"""The tumour segmentation: the model's card, preprocessing, inference, quality control,
and the copy kept in the work directory for a re-run."""


from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import structlog

from rgcds.analysis.qc import QcResult, check_segmentation, whole_tumour_dice
from rgcds.exceptions import (
    ModelError,
    SegmentationQualityError,
)
from rgcds.imaging import ModelSpace, PreprocessedStudy, make_brain_extractor, preprocess_study
from rgcds.inference import ModelCard, ModelRegistry, segment, select_backend
from rgcds.inference.monai_bundle import segment_monai
from rgcds.inference.nnunet import open_folds, segment_nnunet
from rgcds.pipeline.context import StudyContext
from rgcds.pipeline.stages.channels import model_channels
from rgcds.pipeline.stages.inputs import Converted
from rgcds.study import (
    SeriesRole,
)

logger = structlog.get_logger(__name__)

_SEG_DIR = "segmentation"

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
    margin = ctx.settings.processing.tumour_brain_margin_mm
    grid_spacing = pre.brain_mask.GetSpacing()
    removed_ml: list[float] = []

    def clean(out: np.ndarray, brain: np.ndarray) -> np.ndarray:
        cleaned, ml = clean_labels(out, brain, grid_spacing, margin)
        removed_ml.append(ml)
        return cleaned

    if card.nnunet is not None:
        # An imported nnU-Net model: its own preprocessing, sliding window and folds
        # (rgcds.inference.nnunet); a skull-stripped model sees zeros outside the brain.
        folds = open_folds(card, inference.backend)
        spacing_zyx = tuple(reversed(pre.brain_mask.GetSpacing()))
        stripped = card.nnunet.skull_stripped

        def infer(channels: np.ndarray, brain: np.ndarray) -> np.ndarray:
            x = np.where(brain[None], channels, 0.0) if stripped else channels
            out = segment_nnunet(x.astype(np.float32), spacing_zyx, card, folds)
            return clean(out, brain)
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
            return clean(out, brain)
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
            return clean(out, brain)

    labels = infer(stacked, mask)
    if removed_ml and removed_ml[0] >= REMOVED_NOTE_ML:
        notes = (*notes, f"{removed_ml[0]:.1f} ml labelled tumour by the model more than "
                 f"{margin:g} mm outside the brain mask (scalp, skull, orbit) was removed "
                 "before measurement.")
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
#: Tumour removed outside the brain (``[processing] tumour_brain_margin_mm``) from this much on
#: is said in the report.
REMOVED_NOTE_ML = 0.5


def clean_labels(
    labels: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...], margin_mm: float | None
) -> tuple[np.ndarray, float]:
    """The segmentation stage's cleaning of a model's labels: :func:`restrict_to_brain`
    (unless ``margin_mm`` is ``None``), then :func:`remove_small_components`.

    Returns the cleaned labels and the volume removed outside the brain (ml)."""
    removed = 0.0
    if margin_mm is not None:
        labels, removed = restrict_to_brain(labels, brain, spacing, margin_mm)
    return remove_small_components(labels, spacing), removed


def restrict_to_brain(
    labels: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...], margin_mm: float
) -> tuple[np.ndarray, float]:
    """Remove tumour labels further than ``margin_mm`` outside the brain mask.

    A glioblastoma lies in the brain; a label in the scalp, skull or orbit is the model's
    error (models trained on skull-stripped images never see those tissues). The margin
    keeps a tumour at the cortex that a brain mask cuts by a voxel or two.

    Parameters
    ----------
    labels, brain
        ``(Z, Y, X)`` labels and brain mask on the model grid.
    spacing
        The grid's spacing, SimpleITK order (x, y, z), mm.
    margin_mm
        Labels at most this far outside the mask are kept.

    Returns
    -------
    tuple
        The restricted labels and the removed volume (ml).
    """
    from scipy import ndimage

    tumour = labels > 0
    if not tumour.any() or not brain.any():
        return labels, 0.0
    distance = ndimage.distance_transform_edt(~brain, sampling=tuple(reversed(spacing)))
    far = tumour & (distance > margin_mm)
    removed = float(np.count_nonzero(far)) * float(np.prod(spacing)) / 1000.0
    if not far.any():
        return labels, 0.0
    logger.info("tumour outside the brain removed", removed_ml=round(removed, 2),
                margin_mm=margin_mm)
    return np.where(far, 0, labels).astype(labels.dtype), removed


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
