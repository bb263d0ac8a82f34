"""Write all result objects of one analysis to a directory, ready for the outbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import structlog

from rgcds.dicom.uids import uid_path
from rgcds.results.capture import build_overlays
from rgcds.results.content import ReportContent, ReportStatus, SegmentationResult, SourceSeries
from rgcds.results.pdf import build_encapsulated_pdf
from rgcds.results.seg import build_segmentation
from rgcds.results.sr import build_report

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WrittenObject:
    """One result instance on disk."""

    kind: str
    """``seg``, ``sr``, ``sc`` or ``pdf``."""
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    path: Path


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
) -> WrittenResults:
    """Build and write the SEG, SR, SC overlays and PDF of one analysis.

    Parameters
    ----------
    out_dir
        Directory for the files (created); each file is named ``<SOPInstanceUID>.dcm``,
        so a re-export overwrites the same files.
    content
        The report content. When ``content.status`` is "not analysed", only the SR and the
        PDF are written (they say why).
    source, segmentation
        The reference series and the labels on its grid (required when analysed).
    backgrounds
        Extra overlay backgrounds on the reference grid (e.g. ``{"FLAIR": array}``).
    overlays, pdf
        Whether to write the Secondary Capture series and the PDF.

    Returns
    -------
    WrittenResults
        What was written, SEG first.

    Raises
    ------
    ValueError
        If the study was analysed but ``source`` or ``segmentation`` is missing.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[WrittenObject] = []
    analysed = content.status is ReportStatus.COMPLETE
    algorithm = segmentation.algorithm if segmentation is not None else None
    if analysed:
        if source is None or segmentation is None:
            raise ValueError(
                "A complete analysis needs the reference series and its segmentation to "
                "write the SEG; pass source= and segmentation=."
            )
        seg = build_segmentation(source, segmentation, analysed_at=content.analysed_at)
        written.append(_save(seg, "seg", out_dir))
        sr = build_report(content, seg=seg, source=source, algorithm=algorithm)
        written.append(_save(sr, "sr", out_dir))
        if overlays:
            for image in build_overlays(
                source, segmentation, backgrounds=backgrounds, analysed_at=content.analysed_at
            ):
                written.append(_save(image, "sc", out_dir))
    else:
        sr = build_report(content, source=source, algorithm=algorithm)
        written.append(_save(sr, "sr", out_dir))
    if pdf:
        document = build_encapsulated_pdf(content, source=source, algorithm=algorithm)
        written.append(_save(document, "pdf", out_dir))
    logger.info(
        "results_written",
        study_uid=content.study.study_instance_uid,
        status=content.status.value,
        objects=len(written),
    )
    return WrittenResults(tuple(written))


__all__ = ["WrittenObject", "WrittenResults", "write_results"]
