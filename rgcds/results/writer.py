"""Write all result objects of one analysis to a directory, ready for the outbox.

Where each object goes (every object carries its study's identity, so one C-STORE per file
to the PACS files it in the right study):

* MR analysis (with or without PET): SEG, SR, RANO key-measurement SR, SC overlays, fused
  PET/MR SC, PDF and the
  PET segments' SEG on the MR grid -> the MR study;
* the PET segments' SEG on the PET grid -> the PET study (usually a separate PET/CT study);
* PET-only analysis (no MR partner): PET SEG, SR, PET SC and PDF -> the PET study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import structlog

from rgcds.dicom.uids import uid_path
from rgcds.results.capture import build_overlays, build_pet_fusion
from rgcds.results.content import (
    PetImages,
    PetSegment,
    ReportContent,
    ReportStatus,
    SegmentationResult,
    SourceSeries,
    pet_masks_by_segment,
)
from rgcds.results.pdf import build_encapsulated_pdf
from rgcds.results.pet_seg import build_pet_segmentation
from rgcds.results.seg import build_segmentation
from rgcds.results.sr import build_rano_report, build_report

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WrittenObject:
    """One result instance on disk."""

    kind: str
    """``seg``, ``sr``, ``sc``, ``pdf``; with a PET analysis also ``pet-seg`` (PET grid,
    PET study), ``pet-seg-mr`` (MR grid, MR study) and ``pet-sc`` (fused overlays)."""
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    path: Path
    study_instance_uid: str = ""
    """The study the object belongs to (the PET SEG's differs from the MR objects')."""


@dataclass(frozen=True, slots=True)
class WrittenResults:
    """All result instances of one analysis, SEG first (the SR references it)."""

    objects: tuple[WrittenObject, ...]

    def files(self) -> list[tuple[str, Path]]:
        """``(sop_instance_uid, path)`` pairs, for :func:`rgcds.results.export.enqueue`."""
        return [(o.sop_instance_uid, o.path) for o in self.objects]

    def of_kind(self, kind: str) -> list[WrittenObject]:
        """The objects of one kind."""
        return [o for o in self.objects if o.kind == kind]


def _save(ds: pydicom.Dataset, kind: str, out_dir: Path) -> WrittenObject:
    path = uid_path(out_dir, str(ds.SOPInstanceUID), suffix=".dcm")
    tmp = path.with_suffix(".tmp")
    ds.save_as(tmp, enforce_file_format=True)
    tmp.replace(path)
    return WrittenObject(
        kind=kind,
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        path=path,
        study_instance_uid=str(ds.StudyInstanceUID),
    )


def write_results(
    out_dir: Path,
    content: ReportContent,
    *,
    source: SourceSeries | None = None,
    segmentation: SegmentationResult | None = None,
    backgrounds: Mapping[str, npt.NDArray[np.floating]] | None = None,
    overlays: bool = True,
    pdf: bool = True,
    pet_images: PetImages | None = None,
    predecessors: Sequence[pydicom.Dataset] = (),
) -> WrittenResults:
    """Build and write the SEG, SR, SC overlays and PDF of one analysis (and its PET objects).

    Parameters
    ----------
    out_dir
        Directory for the files (created); each file is named ``<SOPInstanceUID>.dcm``,
        so a re-export overwrites the same files.
    content
        The report content. When ``content.status`` is "not analysed", only the SR and the
        PDF are written (they say why). When ``content.pet`` is set, the SR and PDF report
        the PET; when ``content.pet.pet_only_reason`` is set (PET-only), ``content.study``
        must be the PET study and every object goes into it.
    source, segmentation
        The reference series and the labels on its grid (required when analysed, except
        PET-only).
    backgrounds
        Extra overlay backgrounds on the reference grid (e.g. ``{"FLAIR": array}``).
    overlays, pdf
        Whether to write the Secondary Capture series (MR and PET fusion) and the PDF.
    pet_images
        The PET masks and TBR map (:class:`~rgcds.results.content.PetImages`): the PET SEG
        on the PET grid (PET study), the MR-grid SEG (MR study, when ``masks_mr`` is
        given) and the fused overlays (when ``tbr`` is given). Ignored without
        ``content.pet``.
    predecessors
        Earlier SR documents of the same study that this analysis supersedes (for example
        the "not analysed" or provisional report written while a partner study was
        awaited); the new SR lists them in its Predecessor Documents Sequence. The result
        series keep their series numbers, so the PACS shows the new report in their place.

    Returns
    -------
    WrittenResults
        What was written: SEGs first, then the SR, the RANO key-measurement SR (when a
        RANO lesion was placed on its slice), the overlays and the PDF.

    Raises
    ------
    ValueError
        If the study was analysed but ``source`` or ``segmentation`` is missing (MR), or a
        PET-only report's study is not the PET series' study.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[WrittenObject] = []
    analysed = content.status is ReportStatus.COMPLETE
    pet = content.pet if analysed else None
    images = pet_images if pet is not None else None
    pet_algorithm = images.algorithm if images is not None else None
    if pet is not None and pet.pet_only:
        if content.study.study_instance_uid != pet.pet_source.study_instance_uid:
            raise ValueError(
                "A PET-only report belongs to the PET study: build content.study from the PET "
                "series (StudyIdentity.from_dataset(pet_source.datasets[0]))."
            )
        pet_seg = (
            build_pet_segmentation(
                pet.pet_source,
                images.masks,
                algorithm=images.algorithm,
                analysed_at=content.analysed_at,
            )
            if images is not None
            else None
        )
        if pet_seg is not None:
            written.append(_save(pet_seg, "pet-seg", out_dir))
        sr = build_report(
            content,
            source=pet.pet_source,
            algorithm=pet_algorithm,
            pet_seg=pet_seg,
            pet_algorithm=pet_algorithm,
            predecessors=predecessors,
        )
        written.append(_save(sr, "sr", out_dir))
        if overlays and images is not None and images.tbr is not None:
            for image in build_pet_fusion(
                pet.pet_source,
                pet,
                images.tbr,
                algorithm=images.algorithm,
                btv=pet_masks_by_segment(images.masks).get(PetSegment.BTV),
                ctv=pet_masks_by_segment(images.masks).get(PetSegment.CTV),
                analysed_at=content.analysed_at,
            ):
                written.append(_save(image, "pet-sc", out_dir))
        if pdf:
            document = build_encapsulated_pdf(
                content, source=pet.pet_source, algorithm=pet_algorithm
            )
            written.append(_save(document, "pdf", out_dir))
        _log_written(content, written)
        return WrittenResults(tuple(written))
    algorithm = segmentation.algorithm if segmentation is not None else None
    if analysed:
        if source is None or segmentation is None:
            raise ValueError(
                "A complete analysis needs the reference series and its segmentation to "
                "write the SEG; pass source= and segmentation=."
            )
        seg = build_segmentation(source, segmentation, analysed_at=content.analysed_at)
        written.append(_save(seg, "seg", out_dir))
        pet_seg = pet_seg_mr = None
        if pet is not None and images is not None:
            pet_seg = build_pet_segmentation(
                pet.pet_source,
                images.masks,
                algorithm=images.algorithm,
                analysed_at=content.analysed_at,
            )
            if pet_seg is not None:
                written.append(_save(pet_seg, "pet-seg", out_dir))
            if images.masks_mr is not None:
                pet_seg_mr = build_pet_segmentation(
                    source,
                    images.masks_mr,
                    algorithm=images.algorithm,
                    analysed_at=content.analysed_at,
                )
                if pet_seg_mr is not None:
                    written.append(_save(pet_seg_mr, "pet-seg-mr", out_dir))
        sr = build_report(
            content,
            seg=seg,
            source=source,
            algorithm=algorithm,
            pet_seg=pet_seg,
            pet_seg_mr=pet_seg_mr,
            pet_algorithm=pet_algorithm,
            segmentation=segmentation,
            predecessors=predecessors,
        )
        written.append(_save(sr, "sr", out_dir))
        rano_sr = build_rano_report(
            content,
            source=source,
            algorithm=segmentation.algorithm,
            segmentation=segmentation,
            predecessors=predecessors,
        )
        if rano_sr is not None:
            written.append(_save(rano_sr, "rano-sr", out_dir))
        if overlays:
            for image in build_overlays(
                source, segmentation, backgrounds=backgrounds, analysed_at=content.analysed_at
            ):
                written.append(_save(image, "sc", out_dir))
            if pet is not None and images is not None and images.tbr is not None:
                masks_mr = pet_masks_by_segment(images.masks_mr or {})
                for image in build_pet_fusion(
                    source,
                    pet,
                    images.tbr,
                    algorithm=images.algorithm,
                    btv=masks_mr.get(PetSegment.BTV),
                    ctv=masks_mr.get(PetSegment.CTV),
                    analysed_at=content.analysed_at,
                ):
                    written.append(_save(image, "pet-sc", out_dir))
    else:
        sr = build_report(
            content, source=source, algorithm=algorithm, predecessors=predecessors
        )
        written.append(_save(sr, "sr", out_dir))
    if pdf:
        document = build_encapsulated_pdf(content, source=source, algorithm=algorithm)
        written.append(_save(document, "pdf", out_dir))
    _log_written(content, written)
    return WrittenResults(tuple(written))


def _log_written(content: ReportContent, written: list[WrittenObject]) -> None:
    logger.info(
        "results_written",
        study_uid=content.study.study_instance_uid,
        status=content.status.value,
        objects=len(written),
        studies=len({o.study_instance_uid for o in written}),
    )


__all__ = ["WrittenObject", "WrittenResults", "write_results"]
