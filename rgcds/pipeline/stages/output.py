"""The result objects written for a study (SEG, SR, PDF, Secondary Capture)."""


from __future__ import annotations

import json
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
import structlog

from rgcds.imaging.resample import GridGeometry, resample_onto
from rgcds.logging import remember_phi
from rgcds.pipeline.context import StudyContext
from rgcds.pipeline.stages.segmentation import Segmentation
from rgcds.results import SegmentationResult, SourceSeries, WrittenResults, write_results
from rgcds.results.content import AlgorithmInfo, PetImages, ReportContent, is_multiframe
from rgcds.study import (
    SeriesInfo,
    SeriesRole,
    Volume,
)

logger = structlog.get_logger(__name__)

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
