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

import pydicom
import structlog
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    FindingSite,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    QualitativeEvaluation,
    ReferencedSegment,
    RelationshipTypeValues,
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
from rgcds.results.content import (
    AlgorithmInfo,
    ModelProvenance,
    PetReport,
    PetSegment,
    Region,
    ReportContent,
    ReportStatus,
    SourceSeries,
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

_Group = MeasurementsAndQualitativeEvaluations | VolumetricROIMeasurementsAndQualitativeEvaluations


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


def _append(group: _Group, items: Sequence[TextContentItem]) -> None:
    """Append TEXT qualitative evaluations to a measurement group's container."""
    container = group[0]
    for item in items:
        container.ContentSequence.append(item)


def _status_group(content: ReportContent, key: ResultKey) -> MeasurementsAndQualitativeEvaluations:
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
    texts = [_text(codes.INTENDED_USE, RESEARCH_USE_ONLY)]
    if content.reason:
        texts.append(_text(codes.REASON, content.reason))
    for used in content.series_used:
        label = used.series_description or "(no description)"
        texts.append(
            _text(
                codes.SERIES_ROLE[used.role],
                f"{label} [SeriesInstanceUID {used.series_instance_uid}]",
            )
        )
    texts += [_text(codes.NOTE, note) for note in content.notes]
    _append(group, texts)
    return group


def _finding_sites(content: ReportContent) -> list[FindingSite]:
    loc = content.location
    if loc is None:
        return []
    laterality = codes.LATERALITY[loc.hemisphere]
    anatomy = [codes.LOBE[lobe] for lobe in loc.lobes] or [codes.BRAIN]
    return [FindingSite(anatomic_location=a, laterality=laterality) for a in anatomy]


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


def _region_groups(
    content: ReportContent,
    key: ResultKey,
    seg: pydicom.Dataset | None,
    source: SourceSeries | None,
    algorithm: AlgorithmInfo | None,
) -> list[_Group]:
    volumes = {m.region: m for m in content.regions}
    regions = [r for r in Region if r in volumes or any(f.region is r for f in content.features)]
    if content.location is not None and Region.WT not in regions:
        regions.append(Region.WT)
    sites = _finding_sites(content)
    midline = (
        [
            QualitativeEvaluation(
                codes.CROSSES_MIDLINE, codes.YES if content.location.crosses_midline else codes.NO
            )
        ]
        if content.location is not None
        else []
    )
    algo = (
        _algorithm(algorithm.display_name, algorithm.version, [f"model_id {algorithm.model_id}"])
        if algorithm
        else None
    )
    groups: list[_Group] = []
    for region in regions:
        measurements = []
        if region in volumes:
            measurements.append(
                Measurement(codes.VOLUME, float(volumes[region].volume_ml), codes.UNIT_ML)
            )
        for feature in content.features:
            if feature.region is region:
                measurements.append(
                    Measurement(
                        codes.radiomic_feature(
                            feature.name, feature.ibsi_name, feature.sequence.value
                        ),
                        float(feature.value),
                        codes.unit(feature.unit),
                    )
                )
        label = f"{codes.region_label(region, content.postoperative)} ({region.value})"
        evaluations = midline if region is Region.WT else []
        if region.is_segment and seg is not None and source is not None:
            number = SEGMENT_NUMBER[region]
            groups.append(
                VolumetricROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=TrackingIdentifier(
                        uid=key.uid("tracking", number), identifier=label
                    ),
                    referenced_segment=referenced_segment(seg, number, source),
                    finding_type=codes.region_finding(region, content.postoperative),
                    algorithm_id=algo,
                    finding_sites=sites or None,
                    measurements=measurements or None,
                    qualitative_evaluations=evaluations or None,
                )
            )
        else:
            groups.append(
                MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=TrackingIdentifier(
                        uid=key.uid(f"tracking-{region.value}"), identifier=label
                    ),
                    finding_type=codes.region_finding(region, content.postoperative),
                    algorithm_id=algo,
                    finding_sites=sites or None,
                    measurements=measurements or None,
                    qualitative_evaluations=evaluations or None,
                )
            )
    return groups


def _rano_groups(content: ReportContent, key: ResultKey) -> list[_Group]:
    if content.rano is None:
        return []
    groups: list[_Group] = []
    for lesion in content.rano.lesions:
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=key.uid("tracking-rano", lesion.lesion),
                    identifier=f"RANO lesion {lesion.lesion}",
                ),
                finding_type=codes.RANO_LESION,
                measurements=[
                    Measurement(codes.LONG_AXIS, float(lesion.longest_diameter_mm), codes.UNIT_MM),
                    Measurement(
                        codes.SHORT_AXIS, float(lesion.perpendicular_diameter_mm), codes.UNIT_MM
                    ),
                    Measurement(
                        codes.PERPENDICULAR_PRODUCT, float(lesion.product_mm2), codes.UNIT_MM2
                    ),
                ],
            )
        )
    groups.append(
        MeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(
                uid=key.uid("tracking-rano-sum"), identifier="RANO sum"
            ),
            finding_type=codes.RANO_LESION,
            measurements=[
                Measurement(codes.SUM_OF_PRODUCTS, content.rano.sum_of_products_mm2, codes.UNIT_MM2)
            ],
        )
    )
    return groups


def _prediction_groups(content: ReportContent, key: ResultKey) -> list[_Group]:
    groups: list[_Group] = []
    for i, pred in enumerate(content.predictions):
        target = codes.prediction_target(pred.target)
        probability = codes.private(
            codes.prediction_label(pred.target, pred.positive_label).value.replace("LBL", "PRB", 1),
            f"Probability of {pred.positive_label}"[:64],
        )
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=key.uid("tracking-prediction", i),
                    identifier=f"Prediction: {pred.target}"[:64],
                ),
                finding_type=target,
                algorithm_id=_provenance(pred.provenance),
                measurements=[Measurement(probability, float(pred.probability), codes.UNIT_ONE)],
                qualitative_evaluations=[
                    QualitativeEvaluation(
                        target, codes.prediction_label(pred.target, pred.predicted_label)
                    )
                ],
            )
        )
        _append(groups[-1], [_text(codes.INTENDED_USE, RESEARCH_USE_ONLY)])
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
        _append(groups[-1], [_text(codes.INTENDED_USE, RESEARCH_USE_ONLY)])
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


def _pet_groups(
    pet: PetReport,
    key: ResultKey,
    pet_seg: pydicom.Dataset | None,
    pet_algorithm: AlgorithmInfo | None,
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
        groups.append(
            group(
                PetSegment.RESIDUAL,
                "Residual tumour",
                codes.RESIDUAL_TUMOUR,
                residual_algo,
                probabilities,
                [
                    QualitativeEvaluation(
                        codes.RESIDUAL_TUMOUR, codes.PRESENT if residual.present else codes.ABSENT
                    )
                ],
            )
        )
        _append(groups[-1], [_text(codes.INTENDED_USE, RESEARCH_USE_ONLY)])
    if PetSegment.CTV in numbers:
        groups.append(
            group(
                PetSegment.CTV,
                "Clinical target volume",
                codes.CLINICAL_TARGET_VOLUME,
                algo,
                None,
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


def build_report(
    content: ReportContent,
    *,
    seg: pydicom.Dataset | None = None,
    source: SourceSeries | None = None,
    algorithm: AlgorithmInfo | None = None,
    pet_seg: pydicom.Dataset | None = None,
    pet_seg_mr: pydicom.Dataset | None = None,
    pet_algorithm: AlgorithmInfo | None = None,
) -> Comprehensive3DSR:
    """Build the TID 1500 measurement report.

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

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        In the source study, new series, "research use only" in the series description;
        evidence from the PET study (when it differs) in the Pertinent Other Evidence
        Sequence.
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
    groups: list[_Group] = [_status_group(content, key)]
    if analysed:
        groups += _region_groups(content, key, seg, source, algorithm)
        groups += _rano_groups(content, key)
        groups += _prediction_groups(content, key)
    pet = content.pet
    with_pet = analysed and pet is not None
    if pet is not None and with_pet:
        groups += _pet_groups(pet, key, pet_seg, pet_algorithm)
    procedures: list[CodedConcept] = []
    if pet is None or not pet.pet_only:
        procedures.append(codes.PROCEDURE_MR_BRAIN)
    if pet is not None:
        procedures.append(codes.PROCEDURE_PET_BRAIN)
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=procedures if len(procedures) > 1 else procedures[0],
        imaging_measurements=groups,
    )
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
    sr = Comprehensive3DSR(
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
