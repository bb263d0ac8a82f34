"""Comprehensive 3D SR with a TID 1500 Measurement Report of the analysis.

Content (one measurement group each, in this order):

* the analysis status (complete / not analysed with the reason), the series used per role,
  the intended use ("research use only") and notes;
* per tumour region: volume and the region's radiomic features; the three SEG regions are
  volumetric ROI groups (TID 1411) that reference their SEG segment and share its tracking
  UID; the composites (tumour core, whole tumour) are TID 1501 groups; the finding site
  (lobes, with the hemisphere as laterality) and "crosses midline" are on every region group;
* per RANO lesion: long axis, short axis and their product, and a group with the sum;
* per marker prediction: probability of the positive class and the predicted class, with the
  model's identification, version and validation metric as algorithm parameters;
* the survival prediction: relative risk, median overall survival, survival probabilities
  at 6, 12 and 24 months and the risk group, with model provenance;
* when the report has a PET analysis (``content.pet``): a PET group (tracer, units, TBRmax,
  TBRmean, SUVmax/mean/peak, background uptake and method, BTV threshold and volume, CTV
  source, registration quality or the PET-only reason), a volumetric group (TID 1411) that
  references the PET SEG's BTV segment when there is one, a "Residual tumour" group
  (Present/Absent with the combined and per-model probabilities and the models), a CTV group
  referencing the CTV segment, and one group per prognosis item (risk score, risk group,
  median, covariates, whether MGMT was used, model provenance).

Evidence: the MR SEG and T1c series, the PET SEG(s) and the PET series. Instances of the
SR's own study go into the Current Requested Procedure Evidence Sequence; those of the other
(PET) study, acquired for another requested procedure, into the Pertinent Other Evidence
Sequence (PS3.3 C.17.2.3), as highdicom does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pydicom
import structlog
from highdicom.sr import (
    AlgorithmIdentification,
    CodeContentItem,
    CodedConcept,
    Comprehensive3DSR,
    ContainerContentItem,
    ContentItem,
    ContentSequence,
    CoordinatesForMeasurement,
    DeviceObserverIdentifyingAttributes,
    EnhancedSR,
    FindingSite,
    GraphicTypeValues,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    NumContentItem,
    ObservationContext,
    ObserverContext,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    ReferencedSegment,
    RelationshipTypeValues,
    SourceImageForMeasurementGroup,
    SourceImageForRegion,
    SourceImageForSegmentation,
    SourceSeriesForSegmentation,
    TextContentItem,
    TrackingIdentifier,
    VolumetricROIMeasurementsAndQualitativeEvaluations,
)
from pydicom.multival import MultiValue
from pydicom.sr.codedict import codes as pcodes
from pydicom.uid import MRImageStorage

from rgcds import RESEARCH_USE_ONLY, __version__
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
from rgcds.results._geometry import LesionAxes, laterality, lesion_axes
from rgcds.results.content import (
    SEGMENT_REGIONS,
    AlgorithmInfo,
    Hemisphere,
    ModelProvenance,
    PetReport,
    PetSegment,
    Region,
    ReportContent,
    ReportStatus,
    ResidualAssessment,
    SegmentationResult,
    SourceSeries,
    frame_macro,
    is_multiframe,
)
from rgcds.results.pet_seg import pet_segment_numbers
from rgcds.results.seg import SEGMENT_NUMBER, result_key

logger = structlog.get_logger(__name__)

SURVIVAL_TIMEPOINTS_DAYS: tuple[tuple[int, str], ...] = (
    (183, "6 months"),
    (365, "12 months"),
    (730, "24 months"),
)
"""Time points at which the SR reports the predicted survival probability."""

_Group = (
    MeasurementsAndQualitativeEvaluations
    | VolumetricROIMeasurementsAndQualitativeEvaluations
    | PlanarROIMeasurementsAndQualitativeEvaluations
)


def report_key(
    content: ReportContent,
    source: SourceSeries | None,
    algorithm: AlgorithmInfo | None,
) -> ResultKey:
    """The UID key of a report: the SEG's key if analysed, else one per study and rgcds version."""
    if source is not None and algorithm is not None:
        return result_key(source, algorithm)
    return ResultKey(
        study_instance_uid=content.study.study_instance_uid,
        reference_series_uid=source.series_instance_uid if source is not None else "none",
        model_id=algorithm.model_id if algorithm is not None else "rgcds",
        model_version=algorithm.version if algorithm is not None else __version__,
    )


def _algorithm(name: str, version: str, parameters: Sequence[str] = ()) -> AlgorithmIdentification:
    return AlgorithmIdentification(
        name=name[:64], version=version[:64], parameters=list(parameters) or None
    )


def _provenance(p: ModelProvenance) -> AlgorithmIdentification:
    return _algorithm(p.model_id, p.model_version, [f"validation {p.describe_metric()}"])


def _text(name: CodedConcept, value: str) -> TextContentItem:
    return TextContentItem(
        name=name, value=value, relationship_type=RelationshipTypeValues.CONTAINS
    )


def _append(group: _Group, items: Sequence[ContentItem]) -> None:
    """Append TEXT (and NUM) content items to a measurement group's container."""
    container = group[0]
    for item in items:
        container.ContentSequence.append(item)


def _status_items(content: ReportContent) -> list[CodeContentItem | TextContentItem]:
    """The analysis status, intended use, reason, series used and notes."""
    items: list[CodeContentItem | TextContentItem] = [
        CodeContentItem(
            name=codes.ANALYSIS_STATUS,
            value=codes.STATUS[content.status],
            relationship_type=RelationshipTypeValues.CONTAINS,
        ),
        _text(codes.INTENDED_USE, RESEARCH_USE_ONLY),
    ]
    if content.reason:
        items.append(_text(codes.REASON, content.reason))
    for used in content.series_used:
        label = used.series_description or "(no description)"
        items.append(
            _text(
                codes.SERIES_ROLE[used.role],
                f"{label} [SeriesInstanceUID {used.series_instance_uid}]",
            )
        )
    items += [_text(codes.NOTE, note) for note in content.notes]
    return items


def _status_group(content: ReportContent, key: ResultKey) -> MeasurementsAndQualitativeEvaluations:
    """The only group of a report of a study that was not analysed (no segments to index)."""
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=key.uid("tracking-status"), identifier="Analysis status"
        ),
        finding_type=codes.ANALYSIS,
        algorithm_id=_algorithm("rgcds", __version__),
        qualitative_evaluations=[
            QualitativeEvaluation(codes.ANALYSIS_STATUS, codes.STATUS[content.status])
        ],
    )
    _append(group, [i for i in _status_items(content)[1:] if isinstance(i, TextContentItem)])
    return group


def _qualitative_container(content: ReportContent) -> ContainerContentItem:
    """TID 1500 row 12, "Qualitative Evaluations": status, intended use, series, notes."""
    container = ContainerContentItem(
        name=codes.QUALITATIVE_EVALUATIONS,
        relationship_type=RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = ContentSequence(_status_items(content))
    return container


def _primary_site(content: ReportContent) -> CodedConcept:
    loc = content.location
    if loc is None or not loc.lobes:
        return codes.BRAIN
    return codes.LOBE[loc.lobes[0]]


def _segment_lateralities(
    content: ReportContent,
    segmentation: SegmentationResult | None,
    source: SourceSeries | None,
) -> dict[Region, Hemisphere]:
    """The side of each segment region.

    When the whole tumour (placed by the atlas) lies on one side, every sub-region does.
    When it crosses the midline, each segment's side is computed from its mask against
    the head's mid-sagittal plane (the centre of the head's left-right extent).
    """
    loc = content.location
    out: dict[Region, Hemisphere] = {}
    if loc is not None and loc.hemisphere is not Hemisphere.BILATERAL:
        return dict.fromkeys(SEGMENT_REGIONS, loc.hemisphere)
    if segmentation is not None and source is not None:
        pixels = source.pixel_volume()
        head = pixels > 0.2 * float(np.percentile(pixels, 99))
        for region in SEGMENT_REGIONS:
            side = laterality(segmentation.mask(region), head, source)
            if side is not None:
                out[region] = side
    if loc is not None:
        for region in SEGMENT_REGIONS:
            out.setdefault(region, loc.hemisphere)
    return out


def _site(content: ReportContent, side: Hemisphere | None) -> list[FindingSite]:
    """One finding site (readers such as dcmqi keep only the first): the main lobe and side."""
    if content.location is None and side is None:
        return []
    return [
        FindingSite(
            anatomic_location=_primary_site(content),
            laterality=codes.LATERALITY[side] if side is not None else None,
        )
    ]


def _all_sites(content: ReportContent) -> list[FindingSite]:
    """Every involved lobe with the whole tumour's side (composite groups only)."""
    loc = content.location
    if loc is None:
        return []
    laterality_code = codes.LATERALITY[loc.hemisphere]
    anatomy = [codes.LOBE[lobe] for lobe in loc.lobes] or [codes.BRAIN]
    return [FindingSite(anatomic_location=a, laterality=laterality_code) for a in anatomy]


def _source_frames(seg: pydicom.Dataset, segment_number: int) -> list[int]:
    """The source frame numbers that the frames of segment ``segment_number`` derive from."""
    frames: set[int] = set()
    for item in seg.get("PerFrameFunctionalGroupsSequence", []):
        ident = item.get("SegmentIdentificationSequence")
        if not ident or int(ident[0].ReferencedSegmentNumber) != segment_number:
            continue
        for derivation in item.get("DerivationImageSequence", []):
            for image in derivation.get("SourceImageSequence", []):
                if "ReferencedFrameNumber" in image:
                    value = image.ReferencedFrameNumber
                    values = value if isinstance(value, MultiValue) else [value]
                    frames.update(int(v) for v in values)
    return sorted(frames)


def referenced_segment(
    seg: pydicom.Dataset, segment_number: int, source: SourceSeries
) -> ReferencedSegment:
    """The SR reference to segment ``segment_number`` of ``seg`` and to its source.

    Single-frame sources are referenced as the series (Source Series For Segmentation); a
    multi-frame source as the image with the frames the segment was drawn on (Source Image
    For Segmentation with Referenced Frame Number), the series when the segment is empty.
    """
    frames = _source_frames(seg, segment_number) if source.is_multiframe else []
    if frames:
        image = source.datasets[0]
        return ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=segment_number,
            source_images=[
                SourceImageForSegmentation(
                    referenced_sop_class_uid=str(image.SOPClassUID),
                    referenced_sop_instance_uid=str(image.SOPInstanceUID),
                    referenced_frame_numbers=frames,
                )
            ],
        )
    return ReferencedSegment(
        sop_class_uid=seg.SOPClassUID,
        sop_instance_uid=seg.SOPInstanceUID,
        segment_number=segment_number,
        source_series=SourceSeriesForSegmentation(source.series_instance_uid),
    )


def _region_measurements(content: ReportContent, region: Region) -> list[Measurement]:
    volumes = {m.region: m for m in content.regions}
    measurements = []
    if region in volumes:
        measurements.append(
            Measurement(codes.VOLUME, float(volumes[region].volume_ml), codes.UNIT_ML)
        )
    for feature in content.features:
        if feature.region is region:
            measurements.append(
                Measurement(
                    codes.radiomic_feature(feature.name, feature.ibsi_name, feature.sequence.value),
                    float(feature.value),
                    codes.unit(feature.unit),
                    method=codes.SEQUENCE_METHOD[feature.sequence],
                )
            )
    return measurements


def _segment_algorithm(algorithm: AlgorithmInfo | None) -> AlgorithmIdentification | None:
    if algorithm is None:
        return None
    return _algorithm(algorithm.display_name, algorithm.version, [f"model_id {algorithm.model_id}"])


def _segment_groups(
    content: ReportContent,
    key: ResultKey,
    seg: pydicom.Dataset | None,
    source: SourceSeries | None,
    algorithm: AlgorithmInfo | None,
    segmentation: SegmentationResult | None,
) -> list[_Group]:
    """One TID 1411 group per SEG segment, in segment-number order (1, 2, 3), first in the
    report so that group ``i`` is segment ``i + 1``: tracking identifier and UID shared with
    the segment, finding, one finding site with its side, the segment and its source
    series, volume and the region's radiomic features."""
    if seg is None or source is None:
        return []
    sides = _segment_lateralities(content, segmentation, source)
    algo = _segment_algorithm(algorithm)
    groups: list[_Group] = []
    for region in SEGMENT_REGIONS:
        number = SEGMENT_NUMBER[region]
        label = f"{codes.region_label(region, content.postoperative)} ({region.value})"
        measurements = _region_measurements(content, region)
        groups.append(
            VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=key.uid("tracking", number), identifier=label
                ),
                referenced_segment=referenced_segment(seg, number, source),
                finding_type=codes.region_finding(region, content.postoperative),
                algorithm_id=algo,
                finding_sites=_site(content, sides.get(region)) or None,
                measurements=measurements or None,
            )
        )
    return groups


def _composite_groups(
    content: ReportContent,
    key: ResultKey,
    algorithm: AlgorithmInfo | None,
    with_segments: bool,
) -> list[_Group]:
    """TID 1501 groups of the regions that are no SEG segment (tumour core, whole tumour;
    every region when there is no SEG), after the segment and RANO groups."""
    volumes = {m.region: m for m in content.regions}
    regions = [r for r in Region if r in volumes or any(f.region is r for f in content.features)]
    if content.location is not None and Region.WT not in regions:
        regions.append(Region.WT)
    if with_segments:
        regions = [r for r in regions if not r.is_segment]
    sites = _all_sites(content)
    midline = (
        [
            QualitativeEvaluation(
                codes.CROSSES_MIDLINE, codes.YES if content.location.crosses_midline else codes.NO
            )
        ]
        if content.location is not None
        else []
    )
    algo = _segment_algorithm(algorithm)
    groups: list[_Group] = []
    for region in regions:
        measurements = _region_measurements(content, region)
        label = f"{codes.region_label(region, content.postoperative)} ({region.value})"
        evaluations = midline if region is Region.WT else []
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=key.uid(f"tracking-{region.value}"), identifier=label
                ),
                finding_type=codes.region_finding(region, content.postoperative),
                algorithm_id=algo,
                finding_sites=(sites if region is Region.WT else sites[:1]) or None,
                measurements=measurements or None,
                qualitative_evaluations=evaluations or None,
            )
        )
    return groups


def _region(source: SourceSeries, k: int) -> SourceImageForRegion:
    """The source image (and frame, multi-frame) of slice ``k``."""
    image = source.slice_dataset(k)
    frame = source.slice_frame_number(k)
    return SourceImageForRegion(
        referenced_sop_class_uid=str(image.SOPClassUID),
        referenced_sop_instance_uid=str(image.SOPInstanceUID),
        referenced_frame_numbers=[frame] if frame is not None else None,
    )


def _polyline(points: Sequence[tuple[float, float]]) -> npt.NDArray[np.float32]:
    return np.asarray(points, dtype=np.float32)


def _coordinates(
    points: Sequence[tuple[float, float]], image: SourceImageForRegion
) -> CoordinatesForMeasurement:
    return CoordinatesForMeasurement(
        graphic_type=GraphicTypeValues.POLYLINE,
        graphic_data=_polyline(points),
        source_image=image,
    )


def _rano_groups(
    content: ReportContent,
    key: ResultKey,
    source: SourceSeries | None,
    segmentation: SegmentationResult | None,
    algorithm: AlgorithmInfo | None,
) -> tuple[list[_Group], list[_Group]]:
    """The RANO lesions, numbered 1..n in report order, and the sum.

    Returns ``(lesion groups, sum group)``. A lesion found again on its source slice
    (:func:`rgcds.results._geometry.lesion_axes`) has its long and short axes as SCOORD
    polylines on that slice (INFERRED FROM, under the Long axis and Short axis
    measurements) and the slice as the group's source image, so that a viewer draws the
    bidimensional measurement. These are TID 1501 groups with TID 300 measurements, the
    structure OHIF writes for its own bidirectional tool: TID 1410's measurements (TID 1419)
    cannot carry coordinates of their own, and one planar region cannot hold two axes. A
    lesion that cannot be placed has the numbers only.
    """
    if content.rano is None:
        return [], []
    axes: dict[int, LesionAxes] = {}
    if segmentation is not None and source is not None:
        axes = lesion_axes(segmentation.mask(Region.ET), source, content.rano.lesions)
    sides = _segment_lateralities(content, segmentation, source)
    site = _site(content, sides.get(Region.ET)) or None
    finding = codes.region_finding(Region.ET, content.postoperative)
    algo = _segment_algorithm(algorithm)
    groups: list[_Group] = []
    for number, lesion in enumerate(content.rano.lesions, start=1):
        tracking = TrackingIdentifier(
            uid=key.uid("tracking-rano", lesion.lesion), identifier=f"RANO lesion {number}"
        )
        found = axes.get(lesion.lesion)
        if found is None or source is None:
            groups.append(
                MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=tracking,
                    finding_type=finding,
                    finding_category=codes.RANO_LESION,
                    algorithm_id=algo,
                    finding_sites=site,
                    measurements=[
                        Measurement(
                            codes.LONG_AXIS, float(lesion.longest_diameter_mm), codes.UNIT_MM
                        ),
                        Measurement(
                            codes.SHORT_AXIS,
                            float(lesion.perpendicular_diameter_mm),
                            codes.UNIT_MM,
                        ),
                        Measurement(
                            codes.PERPENDICULAR_PRODUCT, float(lesion.product_mm2), codes.UNIT_MM2
                        ),
                    ],
                )
            )
            continue
        slice_image = source.slice_dataset(found.slice_index)
        frame = source.slice_frame_number(found.slice_index)
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking,
                finding_type=finding,
                finding_category=codes.RANO_LESION,
                algorithm_id=algo,
                finding_sites=site,
                source_images=[
                    SourceImageForMeasurementGroup(
                        referenced_sop_class_uid=str(slice_image.SOPClassUID),
                        referenced_sop_instance_uid=str(slice_image.SOPInstanceUID),
                        referenced_frame_numbers=[frame] if frame is not None else None,
                    )
                ],
                measurements=[
                    Measurement(
                        codes.LONG_AXIS,
                        float(lesion.longest_diameter_mm),
                        codes.UNIT_MM,
                        referenced_coordinates=[
                            _coordinates(found.long_axis, _region(source, found.slice_index))
                        ],
                    ),
                    Measurement(
                        codes.SHORT_AXIS,
                        float(lesion.perpendicular_diameter_mm),
                        codes.UNIT_MM,
                        referenced_coordinates=[
                            _coordinates(found.short_axis, _region(source, found.slice_index))
                        ],
                    ),
                    Measurement(
                        codes.PERPENDICULAR_PRODUCT, float(lesion.product_mm2), codes.UNIT_MM2
                    ),
                ],
            )
        )
    total = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=key.uid("tracking-rano-sum"), identifier="RANO sum"
        ),
        finding_type=codes.RANO_LESION,
        measurements=[
            Measurement(codes.SUM_OF_PRODUCTS, content.rano.sum_of_products_mm2, codes.UNIT_MM2)
        ],
    )
    return groups, [total]


def _model_items(p: ModelProvenance) -> list[TextContentItem | NumContentItem]:
    """The validation metric (with its 95 % CI) as numbers; the model id and version are
    the group's Algorithm Name and Version (TID 4019)."""
    items: list[TextContentItem | NumContentItem] = []
    if p.metric_value == p.metric_value:  # not NaN: the model was validated
        items.append(_num(codes.validation_metric(p.metric_name), p.metric_value))
        if p.metric_ci is not None:
            items.append(_num(codes.VALIDATION_LOWER, p.metric_ci[0]))
            items.append(_num(codes.VALIDATION_UPPER, p.metric_ci[1]))
    return items


def _num(name: CodedConcept, value: float, unit: CodedConcept | None = None) -> NumContentItem:
    return NumContentItem(
        name=name,
        value=float(value),
        unit=unit or codes.UNIT_ONE,
        relationship_type=RelationshipTypeValues.CONTAINS,
    )


def decision_rule(positive: str, negative: str, threshold: float) -> str:
    """The decision rule of a binary prediction, as the SR and the PDF state it."""
    return f"{positive} if probability >= {threshold:g}, else {negative}"


def _prediction_groups(content: ReportContent, key: ResultKey) -> list[_Group]:
    """One group per marker: probability, decision threshold and the call that follows from
    them (``probability >= threshold``), model id and version, validation metric."""
    groups: list[_Group] = []
    for i, pred in enumerate(content.predictions):
        target = codes.prediction_target(pred.target)
        probability = codes.prediction_probability(pred.target, pred.positive_label)
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=key.uid("tracking-prediction", i),
                    identifier=f"Prediction: {pred.target}"[:64],
                ),
                finding_type=target,
                algorithm_id=_provenance(pred.provenance),
                measurements=[
                    Measurement(probability, float(pred.probability), codes.UNIT_ONE),
                    Measurement(codes.DECISION_THRESHOLD, float(pred.threshold), codes.UNIT_ONE),
                ],
                qualitative_evaluations=[
                    QualitativeEvaluation(
                        target, codes.prediction_label(pred.target, pred.predicted_label)
                    )
                ],
            )
        )
        _append(
            groups[-1],
            [
                _text(
                    codes.DECISION_RULE,
                    decision_rule(pred.positive_label, pred.negative_label, pred.threshold),
                ),
                *_model_items(pred.provenance),
                _text(codes.INTENDED_USE, RESEARCH_USE_ONLY),
            ],
        )
    survival = content.survival
    if survival is not None:
        measurements = [
            Measurement(codes.RELATIVE_RISK, float(survival.relative_risk), codes.UNIT_ONE)
        ]
        if survival.median_os_days is not None:
            measurements.append(
                Measurement(codes.MEDIAN_OS, float(survival.median_os_days), codes.UNIT_DAYS)
            )
        for days, label in SURVIVAL_TIMEPOINTS_DAYS:
            value = survival.survival_at(days)
            if value is not None:
                name = codes.private(
                    f"OS-PROB-{days}D", f"Predicted overall survival probability at {label}"
                )
                measurements.append(Measurement(name, float(value), codes.UNIT_ONE))
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=key.uid("tracking-survival"), identifier="Survival prediction"
                ),
                finding_type=codes.OVERALL_SURVIVAL,
                algorithm_id=_provenance(survival.provenance),
                measurements=measurements,
                qualitative_evaluations=[
                    QualitativeEvaluation(codes.RISK_GROUP, codes.risk_group(survival.risk_group))
                ],
            )
        )
        _append(
            groups[-1],
            [*_model_items(survival.provenance), _text(codes.INTENDED_USE, RESEARCH_USE_ONLY)],
        )
    return groups


def _pet_uptake_unit(pet: PetReport) -> CodedConcept:
    return codes.UNIT_SUVBW if pet.is_suv else codes.UNIT_ARBITRARY


def _pet_measurements(pet: PetReport) -> list[Measurement]:
    items = [Measurement(codes.TBR, float(pet.tbr_max), codes.UNIT_ONE, derivation=codes.MAXIMUM)]
    if pet.tbr_mean is not None:
        items.append(
            Measurement(codes.TBR, float(pet.tbr_mean), codes.UNIT_ONE, derivation=codes.MEAN)
        )
    for value, derivation in (
        (pet.suv_max, codes.MAXIMUM),
        (pet.suv_mean, codes.MEAN),
        (pet.suv_peak, codes.PEAK),
    ):
        if value is not None:
            items.append(
                Measurement(
                    codes.STANDARDIZED_UPTAKE_VALUE_BW,
                    float(value),
                    codes.UNIT_SUVBW,
                    derivation=derivation,
                )
            )
    items += [
        Measurement(
            codes.BACKGROUND_UPTAKE,
            float(pet.background_mean),
            _pet_uptake_unit(pet),
            derivation=codes.MEAN,
        ),
        Measurement(codes.TBR_THRESHOLD, float(pet.threshold_tbr), codes.UNIT_ONE),
        Measurement(codes.VOLUME, float(pet.btv_ml), codes.UNIT_ML),
    ]
    if pet.registration is not None and pet.registration.nmi is not None:
        items.append(
            Measurement(codes.REGISTRATION_NMI, float(pet.registration.nmi), codes.UNIT_ONE)
        )
    return items


def _pet_texts(pet: PetReport) -> list[TextContentItem]:
    texts = [
        _text(codes.PET_UNITS, pet.units),
        _text(codes.BACKGROUND_METHOD, pet.background_method),
        _text(codes.CTV_SOURCE, pet.ctv_source),
    ]
    if pet.pet_only_reason is not None:
        texts.append(_text(codes.PET_ONLY_REASON, pet.pet_only_reason))
    texts.append(_text(codes.INTENDED_USE, RESEARCH_USE_ONLY))
    texts += [_text(codes.NOTE, note) for note in pet.notes]
    return texts


def residual_consistency(
    residual: ResidualAssessment, residual_enhancing_ml: float | None
) -> str | None:
    """A plain statement when the segmentation and the residual-tumour call disagree
    (residual enhancing tissue segmented but tumour called absent, or the reverse)."""
    if residual_enhancing_ml is None:
        return None
    rule = (
        f"probability {residual.probability:.2f} against threshold {residual.threshold:g}"
        if residual.threshold is not None
        else f"probability {residual.probability:.2f}"
    )
    if not residual.call and residual_enhancing_ml >= 0.1:
        return (
            f"The MR segmentation shows {residual_enhancing_ml:.1f} ml of residual enhancing "
            f"tissue, but the residual-tumour model calls tumour absent ({rule}). Enhancement "
            "after surgery is not always tumour; both findings are reported as they are. "
            "Review the images."
        )
    if residual.call and residual_enhancing_ml < 0.1:
        return (
            "The MR segmentation shows no residual enhancing tissue, but the residual-tumour "
            f"model calls tumour present ({rule}). Both findings are reported as they are. "
            "Review the images."
        )
    return None


def _pet_groups(
    pet: PetReport,
    key: ResultKey,
    pet_seg: pydicom.Dataset | None,
    pet_algorithm: AlgorithmInfo | None,
    residual_enhancing_ml: float | None = None,
) -> list[_Group]:
    """The PET measurement, residual tumour, CTV and prognosis groups."""
    numbers = pet_segment_numbers(pet_seg) if pet_seg is not None else {}
    seg_key = result_key(pet.pet_source, pet_algorithm) if pet_algorithm is not None else key
    algo = (
        _algorithm(
            pet_algorithm.display_name,
            pet_algorithm.version,
            [f"model_id {pet_algorithm.model_id}"],
        )
        if pet_algorithm is not None
        else _algorithm("rgcds", __version__)
    )

    def referenced(segment: PetSegment) -> ReferencedSegment | None:
        if pet_seg is None or segment not in numbers:
            return None
        return referenced_segment(pet_seg, numbers[segment], pet.pet_source)

    def tracking(segment: PetSegment, label: str) -> TrackingIdentifier:
        ident = codes.PET_SEGMENT_ID[segment]
        return TrackingIdentifier(uid=seg_key.uid(f"tracking-pet-{ident}"), identifier=label)

    def group(
        segment: PetSegment,
        label: str,
        finding: CodedConcept,
        algorithm_id: AlgorithmIdentification,
        measurements: list[Measurement] | None,
        evaluations: list[QualitativeEvaluation] | None,
    ) -> _Group:
        ref = referenced(segment)
        if ref is not None:
            return VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking(segment, label),
                referenced_segment=ref,
                finding_type=finding,
                algorithm_id=algorithm_id,
                measurements=measurements or None,
                qualitative_evaluations=evaluations or None,
            )
        return MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking(segment, label),
            finding_type=finding,
            algorithm_id=algorithm_id,
            measurements=measurements or None,
            qualitative_evaluations=evaluations or None,
        )

    evaluations = [
        QualitativeEvaluation(codes.RADIOPHARMACEUTICAL, codes.tracer(pet.tracer, pet.tracer_code))
    ]
    if pet.registration is not None and pet.registration.passed is not None:
        evaluations.append(
            QualitativeEvaluation(
                codes.REGISTRATION_PASSED, codes.YES if pet.registration.passed else codes.NO
            )
        )
    groups: list[_Group] = [
        group(
            PetSegment.BTV,
            f"PET {pet.tracer}: biological tumour volume (BTV)"[:64],
            codes.BIOLOGICAL_TUMOUR_VOLUME,
            algo,
            _pet_measurements(pet),
            evaluations,
        )
    ]
    _append(groups[-1], _pet_texts(pet))
    residual = pet.residual
    if residual is not None:
        probabilities = [
            Measurement(codes.RESIDUAL_PROBABILITY, float(residual.probability), codes.UNIT_ONE)
        ]
        if residual.probability_pet is not None:
            probabilities.append(
                Measurement(
                    codes.RESIDUAL_PROBABILITY_PET,
                    float(residual.probability_pet),
                    codes.UNIT_ONE,
                )
            )
        if residual.probability_radiomics is not None:
            probabilities.append(
                Measurement(
                    codes.RESIDUAL_PROBABILITY_RADIOMICS,
                    float(residual.probability_radiomics),
                    codes.UNIT_ONE,
                )
            )
        models = residual.models
        residual_algo = (
            _algorithm(
                models[0].model_id if len(models) == 1 else "rgcds residual tumour assessment",
                models[0].model_version if len(models) == 1 else __version__,
                [
                    f"{m.model_id} {m.model_version} validation {m.describe_metric()}"
                    for m in models
                ],
            )
            if models
            else algo
        )
        if residual.threshold is not None:
            probabilities.append(
                Measurement(codes.DECISION_THRESHOLD, float(residual.threshold), codes.UNIT_ONE)
            )
        groups.append(
            group(
                PetSegment.RESIDUAL,
                "Residual tumour",
                codes.RESIDUAL_TUMOUR,
                residual_algo,
                probabilities,
                [
                    QualitativeEvaluation(
                        codes.RESIDUAL_TUMOUR, codes.PRESENT if residual.call else codes.ABSENT
                    )
                ],
            )
        )
        texts: list[ContentItem] = []
        if residual.threshold is not None:
            texts.append(
                _text(
                    codes.DECISION_RULE,
                    decision_rule("present", "absent", residual.threshold)
                    + (f" ({residual.decided_by} probability)" if residual.decided_by else ""),
                )
            )
        for model in residual.models:
            texts += _model_items(model)
        consistency = residual_consistency(residual, residual_enhancing_ml)
        if consistency is not None:
            texts.append(_text(codes.CONSISTENCY_NOTE, consistency))
        texts.append(_text(codes.INTENDED_USE, RESEARCH_USE_ONLY))
        _append(groups[-1], texts)
    if PetSegment.CTV in numbers:
        groups.append(
            group(
                PetSegment.CTV,
                "Clinical target volume",
                codes.CLINICAL_TARGET_VOLUME,
                algo,
                (
                    [Measurement(codes.VOLUME, float(pet.ctv_ml), codes.UNIT_ML)]
                    if pet.ctv_ml is not None else None
                ),
                None,
            )
        )
        _append(groups[-1], [_text(codes.CTV_SOURCE, pet.ctv_source)])
    for i, item in enumerate(pet.prognosis):
        measurements = [Measurement(codes.RISK_SCORE, float(item.risk_score), codes.UNIT_ONE)]
        if item.median_days is not None:
            measurements.append(
                Measurement(
                    codes.prognosis_median(item.endpoint), float(item.median_days), codes.UNIT_DAYS
                )
            )
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=key.uid("tracking-prognosis", i),
                    identifier=f"Prognosis: {item.endpoint}"[:64],
                ),
                finding_type=codes.prognosis_endpoint(item.endpoint),
                algorithm_id=_provenance(item.provenance),
                measurements=measurements,
                qualitative_evaluations=[
                    QualitativeEvaluation(codes.RISK_GROUP, codes.risk_group(item.risk_group)),
                    QualitativeEvaluation(
                        codes.MGMT_USED, codes.YES if item.mgmt_used else codes.NO
                    ),
                ],
            )
        )
        _append(
            groups[-1],
            [
                _text(codes.COVARIATES, ", ".join(item.covariates) or "(none)"),
                *_model_items(item.provenance),
                _text(codes.INTENDED_USE, RESEARCH_USE_ONLY),
            ],
        )
    return groups


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
    observer = ObserverContext(
        observer_type=pcodes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=key.uid("observer-device"),
            name="rgcds",
            manufacturer_name=MANUFACTURER,
            model_name=f"{MODEL_NAME} {__version__}",
        ),
    )
    groups: list[_Group] = []
    pet = content.pet
    with_pet = analysed and pet is not None
    if analysed:
        segment_groups = _segment_groups(content, key, seg, source, algorithm, segmentation)
        lesions, rano_sum = _rano_groups(content, key, source, segmentation, algorithm)
        groups += segment_groups + lesions
        groups += _composite_groups(content, key, algorithm, bool(segment_groups))
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
        observation_context=ObservationContext(observer_device_context=observer),
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
    sr = EnhancedSR(
        evidence=evidence,
        content=report,
        series_instance_uid=key.series_uid(ObjectKind.SR),
        series_number=SERIES_NUMBER[ObjectKind.SR],
        sop_instance_uid=key.instance_uid(ObjectKind.SR),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=series_description(ObjectKind.SR, content.postoperative),
        contributing_equipment=contributing_equipment(content.analysed_at),
    )
    if placeholder and "CurrentRequestedProcedureEvidenceSequence" in sr:
        del sr.CurrentRequestedProcedureEvidenceSequence
    # A re-run of the same analysis writes the same UIDs: it replaces, it does not supersede.
    earlier = [d for d in predecessors if str(d.SOPInstanceUID) != str(sr.SOPInstanceUID)]
    if earlier:
        sr.PredecessorDocumentsSequence = predecessor_sequence(earlier)
    declare_private_scheme(sr)
    stamp(sr, content.analysed_at)
    logger.info(
        "sr_built",
        study_uid=key.study_instance_uid,
        sop_instance_uid=sr.SOPInstanceUID,
        status=content.status.value,
        groups=len(groups),
    )
    return sr


__all__ = ["SURVIVAL_TIMEPOINTS_DAYS", "build_report", "referenced_segment", "report_key"]
