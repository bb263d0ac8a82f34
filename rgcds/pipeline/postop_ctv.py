# SimpleITK ships no type hints: its calls are untyped and return Any.
"""The CTV of the PET read: from an RT Structure Set, else derived (ESTRO-EANO 2023), then
checked for plausibility (see :mod:`rgcds.pipeline.postop`, which re-exports these names)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
import structlog

from rgcds.analysis.ctv import (
    RtStructError,
    ctv_refusal,
    derive_ctv,
    rasterise_roi,
    referenced_series_uid,
    roi_names,
    select_ctv_roi,
)
from rgcds.pipeline.context import StudyContext
from rgcds.pipeline.stages import Converted, Segmentation
from rgcds.study import SeriesRole, StudyIndex

logger = structlog.get_logger(__name__)

#: Post-operative segmentation labels (the post-operative model's label values).
LABEL_CAVITY = 1
LABEL_OEDEMA = 2
LABEL_RESIDUAL_ENHANCING = 3

CTV_DERIVED = "derived: ESTRO-EANO 2023 (resection cavity + residual enhancement + 15 mm)"


@dataclass(frozen=True)
class CtvChoice:
    """The CTV on the model grid, where it came from, its volume and whether it was refused.

    A refused CTV (``refused`` holds the reason) is reported by its volume and reason only:
    it is not the PET's search region, not a SEG segment, and no residual call is made in it.
    """

    image: sitk.Image = field(repr=False)
    source: str
    notes: tuple[str, ...] = ()
    ml: float | None = None
    refused: str | None = None

    @property
    def usable(self) -> bool:
        """Whether the CTV passed the sanity check."""
        return self.refused is None


def _volume_ml(mask: sitk.Image) -> float:
    voxel_ml = float(np.prod(mask.GetSpacing())) / 1000.0
    return float(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) * voxel_ml


def _checked(
    ctx: StudyContext, seg: Segmentation, choice: CtvChoice, gtv_ml: float | None
) -> CtvChoice:
    ml = _volume_ml(choice.image)
    brain_ml = _volume_ml(seg.brain_mask_model) if seg.brain_mask_model is not None else None
    reason = ctv_refusal(
        ml, brain_ml, gtv_ml=gtv_ml, margin_mm=ctx.settings.pet.ctv_margin_mm,
        settings=ctx.settings.pet,
    )
    notes = choice.notes
    if reason is not None:
        logger.warning("ctv refused", ctv_ml=round(ml, 1), source=choice.source.split(":")[0])
        notes = (*notes, f"CTV refused ({choice.source}): {reason} The BTV was searched near "
                 "the segmented tumour instead and no residual-tumour call was made.")
    return CtvChoice(choice.image, choice.source, notes, ml, reason)


def _onto(mask: sitk.Image, reference: sitk.Image) -> sitk.Image:
    return sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt8)


def _rtstruct_ctv(
    ctx: StudyContext, study_index: StudyIndex, converted: Converted, seg: Segmentation
) -> tuple[CtvChoice | None, list[str]]:
    notes: list[str] = []
    by_uid = {info.series_instance_uid: role for role, info in converted.series.items()}
    reference = converted.volumes[SeriesRole(seg.reference_role)]
    for series in study_index.series:
        if series.modality != "RTSTRUCT":
            continue
        for ref in series.instances:
            try:
                roi = select_ctv_roi(roi_names(ref.path), ctx.settings.pet.ctv_roi_patterns)
            except RtStructError as exc:
                notes.append(f"RT Structure Set not used: {exc}")
                continue
            if roi is None:
                notes.append("An RT Structure Set was received but holds no ROI named as a CTV.")
                continue
            role = by_uid.get(referenced_series_uid(ref.path) or "")
            volume = converted.volumes[role] if role is not None else reference
            if volume.frame_of_reference_uid != reference.frame_of_reference_uid:
                notes.append(
                    f"RT Structure Set ROI {roi!r} is in another frame of reference than the "
                    "MR; the CTV was derived instead."
                )
                continue
            try:
                native = rasterise_roi(ref.path, roi, volume.image)
            except RtStructError as exc:
                notes.append(f"RT Structure Set ROI {roi!r} not used: {exc}")
                continue
            on_model = _onto(native, seg.labels_model)
            if not np.any(sitk.GetArrayViewFromImage(on_model)):
                notes.append(f"RT Structure Set ROI {roi!r} lies outside the analysed volume.")
                continue
            logger.info("ctv from rt structure set")
            return CtvChoice(on_model, f"RT Structure Set ROI '{roi}'"), notes
    return None, notes


def choose_ctv(
    ctx: StudyContext,
    study_index: StudyIndex,
    converted: Converted,
    seg: Segmentation,
    postoperative: bool,
) -> CtvChoice | None:
    """The CTV on the model grid: from an RT Structure Set, else derived (post-operative)."""
    choice, notes = _rtstruct_ctv(ctx, study_index, converted, seg)
    if choice is not None:
        return _checked(ctx, seg, CtvChoice(choice.image, choice.source, tuple(notes)), None)
    if not postoperative or seg.brain_mask_model is None:
        return None
    labels = seg.labels_model
    cavity = sitk.Cast(sitk.Equal(labels, LABEL_CAVITY), sitk.sitkUInt8)
    residual = sitk.Cast(sitk.Equal(labels, LABEL_RESIDUAL_ENHANCING), sitk.sitkUInt8)
    try:
        derived = derive_ctv(
            seg.brain_mask_model, cavity=cavity, residual_enhancement=residual,
            margin_mm=ctx.settings.pet.ctv_margin_mm,
        )
    except ValueError as exc:  # DicomInputError, or an empty GTV
        logger.info("no ctv derived", reason=str(exc))
        return None
    return _checked(
        ctx, seg, CtvChoice(derived.ctv, CTV_DERIVED, (*notes, *derived.notes)), derived.gtv_ml
    )


__all__ = [
    "CTV_DERIVED",
    "LABEL_CAVITY",
    "LABEL_OEDEMA",
    "LABEL_RESIDUAL_ENHANCING",
    "CtvChoice",
    "choose_ctv",
]
