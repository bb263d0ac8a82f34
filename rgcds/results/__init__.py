"""DICOM result objects of an analysis and their delivery to the PACS. Research use only.

* :func:`write_results` writes, for one analysis: a DICOM SEG of the sub-regions
  (:mod:`~rgcds.results.seg`), a TID 1500 Comprehensive 3D SR (:mod:`~rgcds.results.sr`),
  Secondary Capture overlays (:mod:`~rgcds.results.capture`) and an Encapsulated PDF
  summary (:mod:`~rgcds.results.pdf`), all in the source study, each in a new series whose
  description says "research use only". With a PET analysis (``ReportContent.pet``,
  :class:`PetImages`) it also writes the PET SEG (:mod:`~rgcds.results.pet_seg`) into the
  PET study, the PET segments on the MR grid and fused PET/MR overlays into the MR study;
  a PET-only analysis writes everything into the PET study. UIDs derive from the analysis
  (:class:`~rgcds.results._common.ResultKey`), so a re-export replaces, never duplicates.
* :func:`deliver_due` sends queued files to the configured destinations
  (:mod:`~rgcds.results.export`).
"""

from __future__ import annotations

from rgcds.results._common import ObjectKind, ResultKey
from rgcds.results.capture import build_overlays, build_pet_fusion, key_slices
from rgcds.results.content import (
    PET_UNITS_ARBITRARY,
    PET_UNITS_SUV,
    SEGMENT_REGIONS,
    AlgorithmInfo,
    Hemisphere,
    LesionDiameters,
    Lobe,
    Location,
    ModelProvenance,
    PetImages,
    PetMasks,
    PetRegistration,
    PetReport,
    PetSegment,
    Prediction,
    PrognosisItem,
    RadiomicFeature,
    RanoMeasurement,
    Region,
    RegionMeasurement,
    ReportContent,
    ReportStatus,
    ResidualAssessment,
    SegmentationResult,
    SeriesRole,
    SeriesUsed,
    SourceSeries,
    StudyIdentity,
    SurvivalPrediction,
    pet_masks_by_segment,
)
from rgcds.results.export import (
    DeliverySummary,
    NewDelivery,
    Outbox,
    RetryPolicy,
    deliver_due,
    enqueue,
)
from rgcds.results.pdf import build_encapsulated_pdf, render_pdf
from rgcds.results.pet_seg import build_pet_segmentation, pet_segment_numbers
from rgcds.results.seg import build_segmentation, result_key
from rgcds.results.sr import build_report
from rgcds.results.writer import WrittenObject, WrittenResults, write_results

__all__ = [
    "PET_UNITS_ARBITRARY",
    "PET_UNITS_SUV",
    "SEGMENT_REGIONS",
    "AlgorithmInfo",
    "DeliverySummary",
    "Hemisphere",
    "LesionDiameters",
    "Lobe",
    "Location",
    "ModelProvenance",
    "NewDelivery",
    "ObjectKind",
    "Outbox",
    "PetImages",
    "PetMasks",
    "PetRegistration",
    "PetReport",
    "PetSegment",
    "Prediction",
    "PrognosisItem",
    "RadiomicFeature",
    "RanoMeasurement",
    "Region",
    "RegionMeasurement",
    "ReportContent",
    "ReportStatus",
    "ResidualAssessment",
    "ResultKey",
    "RetryPolicy",
    "SegmentationResult",
    "SeriesRole",
    "SeriesUsed",
    "SourceSeries",
    "StudyIdentity",
    "SurvivalPrediction",
    "WrittenObject",
    "WrittenResults",
    "build_encapsulated_pdf",
    "build_overlays",
    "build_pet_fusion",
    "build_pet_segmentation",
    "build_report",
    "build_segmentation",
    "deliver_due",
    "enqueue",
    "key_slices",
    "pet_masks_by_segment",
    "pet_segment_numbers",
    "render_pdf",
    "result_key",
    "write_results",
]
