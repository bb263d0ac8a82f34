"""The Enhanced SR documents: identity, evidence, Image Library, predecessors and
:func:`build_report`, which puts the groups together, and :func:`build_rano_report`, the RANO
lesions alone for a viewer to draw."""

from __future__ import annotations

from collections.abc import Sequence

import pydicom
import structlog
from highdicom.sr import (
    CodedConcept,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    EnhancedSR,
    MeasurementReport,
    ObservationContext,
    ObserverContext,
)
from pydicom.sr.codedict import codes as pcodes
from pydicom.uid import MRImageStorage

from rgcds import __version__
from rgcds.results import codes
from rgcds.results._common import (
    MANUFACTURER,
    MODEL_NAME,
    SERIES_NUMBER,
    ObjectKind,
    ResultKey,
    contributing_equipment,
    declare_private_scheme,
    series_description,
    stamp,
)
from rgcds.results.content import (
    AlgorithmInfo,
    Region,
    ReportContent,
    ReportStatus,
    SegmentationResult,
    SourceSeries,
    frame_macro,
    is_multiframe,
)
from rgcds.results.sr.items import _Group, report_key
from rgcds.results.sr.pet import _pet_groups
from rgcds.results.sr.predictions import _prediction_groups
from rgcds.results.sr.rano import _rano_groups
from rgcds.results.sr.regions import _composite_groups, _radiomics_groups, _segment_groups
from rgcds.results.sr.status import _qualitative_container, _status_group

logger = structlog.get_logger(__name__)


def _identity_dataset(content: ReportContent, key: ResultKey) -> pydicom.Dataset:
    """A stand-in evidence dataset carrying only the study identity (for 'not analysed')."""
    s = content.study
    ds = pydicom.Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = key.uid("identity-placeholder")
    ds.SeriesInstanceUID = key.uid("identity-placeholder-series")
    ds.StudyInstanceUID = s.study_instance_uid
    ds.PatientID = s.patient_id
    ds.PatientName = s.patient_name
    ds.PatientBirthDate = s.patient_birth_date
    ds.PatientSex = s.patient_sex
    ds.AccessionNumber = s.accession_number
    ds.StudyID = s.study_id
    ds.StudyDate = s.study_date
    ds.StudyTime = s.study_time
    ds.ReferringPhysicianName = s.referring_physician_name
    return ds


def _evidence(datasets: Sequence[pydicom.Dataset], study_uid: str) -> list[pydicom.Dataset]:
    """Unique instances, those of the SR's own study first (highdicom takes the study from
    the first)."""
    unique = {str(ds.SOPInstanceUID): ds for ds in datasets}
    return sorted(unique.values(), key=lambda ds: str(ds.StudyInstanceUID) != study_uid)


def _unique(datasets: Sequence[pydicom.Dataset]) -> list[pydicom.Dataset]:
    return list({str(ds.SOPInstanceUID): _library_view(ds) for ds in datasets}.values())


def _library_view(ds: pydicom.Dataset) -> pydicom.Dataset:
    """``ds`` as the Image Library reads it: a multi-frame image's geometry (pixel spacing,
    slice thickness, orientation, first frame's position) lifted from its functional
    groups to the top level, where highdicom's TID 1602 descriptors look for it."""
    if not is_multiframe(ds):
        return ds
    view = pydicom.Dataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID", "Modality", "FrameOfReferenceUID",
                    "Rows", "Columns", "StudyInstanceUID", "SeriesInstanceUID"):
        if keyword in ds:
            setattr(view, keyword, ds[keyword].value)
    measures = frame_macro(ds, 1, "PixelMeasuresSequence")
    orientation = frame_macro(ds, 1, "PlaneOrientationSequence")
    position = frame_macro(ds, 1, "PlanePositionSequence")
    view.PixelSpacing = list(measures.PixelSpacing) if measures is not None else [1.0, 1.0]
    view.SliceThickness = (
        measures.SliceThickness if measures is not None and "SliceThickness" in measures else 1.0
    )
    view.ImageOrientationPatient = (
        list(orientation.ImageOrientationPatient)
        if orientation is not None
        else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    )
    view.ImagePositionPatient = (
        list(position.ImagePositionPatient) if position is not None else [0.0, 0.0, 0.0]
    )
    return view


def predecessor_sequence(documents: Sequence[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """The Predecessor Documents Sequence items (Hierarchical SOP Instance Reference Macro)
    of ``documents``: study, series and SOP instance of each earlier report."""
    by_study: dict[str, dict[str, list[pydicom.Dataset]]] = {}
    for doc in documents:
        by_study.setdefault(str(doc.StudyInstanceUID), {}).setdefault(
            str(doc.SeriesInstanceUID), []
        ).append(doc)
    items = []
    for study_uid, series in by_study.items():
        study = pydicom.Dataset()
        study.StudyInstanceUID = study_uid
        study.ReferencedSeriesSequence = []
        for series_uid, docs in series.items():
            item = pydicom.Dataset()
            item.SeriesInstanceUID = series_uid
            item.ReferencedSOPSequence = []
            for doc in docs:
                ref = pydicom.Dataset()
                ref.ReferencedSOPClassUID = doc.SOPClassUID
                ref.ReferencedSOPInstanceUID = doc.SOPInstanceUID
                item.ReferencedSOPSequence.append(ref)
            study.ReferencedSeriesSequence.append(item)
        items.append(study)
    return items


def _observation_context(key: ResultKey) -> ObservationContext:
    """rgcds as the observing device (TID 1004), the same device UID in every report."""
    return ObservationContext(
        observer_device_context=ObserverContext(
            observer_type=pcodes.DCM.Device,
            observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
                uid=key.uid("observer-device"),
                name="rgcds",
                manufacturer_name=MANUFACTURER,
                model_name=f"{MODEL_NAME} {__version__}",
            ),
        )
    )


def _document(
    content: ReportContent,
    key: ResultKey,
    kind: ObjectKind,
    report: MeasurementReport,
    evidence: Sequence[pydicom.Dataset],
) -> EnhancedSR:
    """The Enhanced SR document of ``report`` in the ``kind`` series: instance 1, rgcds as
    the manufacturer and contributing equipment, the private scheme declared, stamped with
    the analysis time."""
    sr = EnhancedSR(
        evidence=list(evidence),
        content=report,
        series_instance_uid=key.series_uid(kind),
        series_number=SERIES_NUMBER[kind],
        sop_instance_uid=key.instance_uid(kind),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=series_description(kind, content.postoperative),
        contributing_equipment=contributing_equipment(content.analysed_at),
    )
    declare_private_scheme(sr)
    stamp(sr, content.analysed_at)
    return sr


def _supersede(sr: EnhancedSR, predecessors: Sequence[pydicom.Dataset]) -> None:
    """List the earlier documents that ``sr`` supersedes in its Predecessor Documents
    Sequence: RANO key measurements supersede earlier RANO key measurements, a report every
    other earlier report (complete, provisional, "not analysed", fallback). A re-run of the
    same analysis writes the same UIDs: it replaces, it does not supersede."""
    rano = SERIES_NUMBER[ObjectKind.RANO_SR]
    earlier = [
        d
        for d in predecessors
        if str(d.SOPInstanceUID) != str(sr.SOPInstanceUID)
        and (int(d.get("SeriesNumber") or 0) == rano) == (int(sr.SeriesNumber) == rano)
    ]
    if earlier:
        sr.PredecessorDocumentsSequence = predecessor_sequence(earlier)


def build_rano_report(
    content: ReportContent,
    *,
    source: SourceSeries,
    algorithm: AlgorithmInfo,
    segmentation: SegmentationResult,
    predecessors: Sequence[pydicom.Dataset] = (),
) -> EnhancedSR | None:
    """The RANO key-measurement SR: the lesions' long and short axes, for a viewer to draw.

    A TID 1500 report in its own series (:attr:`ObjectKind.RANO_SR`) with the Image
    Library and, under Imaging Measurements, only the RANO lesion groups that were found
    again on their source slice: the same groups as in the full report (same tracking
    identifiers and UIDs, same numbers, SCOORD polylines on the source image). Every group
    has image coordinates, which is what OHIF v3's SR viewport needs to draw any of them
    (it stops at the first group without coordinates, so it cannot draw the full report's
    lesions next to its volumes, predictions and status). The full report stays the one
    that holds every result; this one repeats a subset of it.

    ``predecessors`` as for :func:`build_report`; only earlier RANO key-measurement SRs
    are listed. Returns ``None`` when the study was not analysed or no lesion could be
    placed.
    """
    if content.status is not ReportStatus.COMPLETE or content.rano is None:
        return None
    key = report_key(content, source, algorithm)
    lesions, _sum = _rano_groups(content, key, source, segmentation, algorithm, placed_only=True)
    if not lesions:
        return None
    report = MeasurementReport(
        observation_context=_observation_context(key),
        procedure_reported=codes.PROCEDURE_MR_BRAIN,
        imaging_measurements=lesions,
        referenced_images=_unique(list(source.datasets)),
    )
    sr = _document(
        content,
        key,
        ObjectKind.RANO_SR,
        report,
        _evidence(list(source.datasets), content.study.study_instance_uid),
    )
    _supersede(sr, predecessors)
    logger.info(
        "rano_sr_built",
        study_uid=key.study_instance_uid,
        sop_instance_uid=sr.SOPInstanceUID,
        lesions=len(lesions),
    )
    return sr


def build_report(
    content: ReportContent,
    *,
    seg: pydicom.Dataset | None = None,
    source: SourceSeries | None = None,
    algorithm: AlgorithmInfo | None = None,
    pet_seg: pydicom.Dataset | None = None,
    pet_seg_mr: pydicom.Dataset | None = None,
    pet_algorithm: AlgorithmInfo | None = None,
    segmentation: SegmentationResult | None = None,
    predecessors: Sequence[pydicom.Dataset] = (),
) -> EnhancedSR | Comprehensive3DSR:
    """Build the TID 1500 measurement report.

    Structure (as OHIF, 3D Slicer / dcmqi and DCMTK read TID 1500): the Image Library
    (TID 1600; the MR reference images first, then the PET images), then the Imaging
    Measurements: one TID 1411 group per SEG segment in segment-number order (so group
    ``i`` is segment ``i + 1``), the RANO lesions (TID 1410 with the axes on the source
    slice, numbered 1..n), the composite regions, the RANO sum, the predictions and the PET
    groups; then the Qualitative Evaluations container with the analysis status, intended
    use, series used and notes. A study that was not analysed has one status group.

    Parameters
    ----------
    content
        What to report. For ``status == "not analysed"`` only the status, the reason and
        the series used are written, with no SEG reference.
    seg
        The SEG written for this analysis (from :func:`rgcds.results.seg.build_segmentation`);
        the region groups reference its segments.
    source
        The reference series the SEG is defined on (evidence of the report).
    algorithm
        The segmentation model (UIDs derive from it, as for the SEG). For a PET-only report,
        ``source`` is the PET series and ``algorithm`` the PET analysis.
    pet_seg
        The PET SEG on the PET grid (:func:`rgcds.results.pet_seg.build_pet_segmentation`);
        the PET groups reference its segments. Used only when ``content.pet`` is set.
    pet_seg_mr
        The PET segments' SEG on the MR grid (evidence only).
    pet_algorithm
        The PET analysis' identification (as given to the PET SEG).
    segmentation
        The labels the SEG was built from: the RANO axes are found on their source slice
        and each segment's side is computed from its mask. Without it, RANO lesions have no
        coordinates and segments take the whole tumour's side.
    predecessors
        Earlier SR documents of the same study that this report supersedes (Predecessor
        Documents Sequence; e.g. a provisional or "not analysed" report).

    Returns
    -------
    highdicom.sr.EnhancedSR
        In the source study, new series, "research use only" in the series description;
        evidence from the PET study (when it differs) in the Pertinent Other Evidence
        Sequence. Enhanced SR: the coordinates are image (SCOORD) coordinates only.
    """
    analysed = content.status is ReportStatus.COMPLETE
    key = report_key(content, source, algorithm)
    groups: list[_Group] = []
    pet = content.pet
    with_pet = analysed and pet is not None
    if analysed:
        segment_groups = _segment_groups(content, key, seg, source, algorithm, segmentation)
        lesions, rano_sum = _rano_groups(content, key, source, segmentation, algorithm)
        groups += segment_groups + lesions
        groups += _composite_groups(content, key, algorithm, bool(segment_groups))
        groups += _radiomics_groups(content, key, algorithm, bool(segment_groups))
        groups += rano_sum
        groups += _prediction_groups(content, key)
    if pet is not None and with_pet:
        residual_ml = (
            next((m.volume_ml for m in content.regions if m.region is Region.ET), None)
            if content.postoperative
            else None
        )
        groups += _pet_groups(pet, key, pet_seg, pet_algorithm, residual_ml)
    if not groups:
        groups = [_status_group(content, key)]
    procedures: list[CodedConcept] = []
    if pet is None or not pet.pet_only:
        procedures.append(codes.PROCEDURE_MR_BRAIN)
    if pet is not None:
        procedures.append(codes.PROCEDURE_PET_BRAIN)
    library: list[pydicom.Dataset] = []
    if analysed and source is not None:
        library += list(source.datasets)
    if pet is not None and with_pet and pet.pet_source is not source:
        library += list(pet.pet_source.datasets)
    report = MeasurementReport(
        observation_context=_observation_context(key),
        procedure_reported=procedures if len(procedures) > 1 else procedures[0],
        imaging_measurements=groups,
        referenced_images=_unique(library) or None,
    )
    if analysed:
        report[0].ContentSequence.append(_qualitative_container(content))
    candidates: list[pydicom.Dataset] = []
    if analysed and seg is not None:
        candidates.append(seg)
    if source is not None:
        candidates += list(source.datasets)
    if pet is not None and with_pet:
        candidates += [d for d in (pet_seg, pet_seg_mr) if d is not None]
        candidates += list(pet.pet_source.datasets)
    evidence = _evidence(candidates, content.study.study_instance_uid)
    placeholder = not evidence
    if placeholder:
        evidence = [_identity_dataset(content, key)]
    sr = _document(content, key, ObjectKind.SR, report, evidence)
    if placeholder and "CurrentRequestedProcedureEvidenceSequence" in sr:
        del sr.CurrentRequestedProcedureEvidenceSequence
    _supersede(sr, predecessors)
    logger.info(
        "sr_built",
        study_uid=key.study_instance_uid,
        sop_instance_uid=sr.SOPInstanceUID,
        status=content.status.value,
        groups=len(groups),
    )
    return sr
