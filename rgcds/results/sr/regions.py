"""Per tumour region: the TID 1411 volumetric groups that reference their SEG segment, the
TID 1501 composites (tumour core, whole tumour), finding sites and image coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pydicom
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    CoordinatesForMeasurement,
    FindingSite,
    GraphicTypeValues,
    Measurement,
    MeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    ReferencedSegment,
    SourceImageForRegion,
    SourceImageForSegmentation,
    SourceSeriesForSegmentation,
    TrackingIdentifier,
    VolumetricROIMeasurementsAndQualitativeEvaluations,
)
from pydicom.multival import MultiValue

from rgcds.enums import SeriesRole
from rgcds.results import codes
from rgcds.results._common import (
    ResultKey,
)
from rgcds.results._geometry import laterality
from rgcds.results.content import (
    SEGMENT_REGIONS,
    AlgorithmInfo,
    Hemisphere,
    Region,
    ReportContent,
    SegmentationResult,
    SourceSeries,
)
from rgcds.results.seg import SEGMENT_NUMBER
from rgcds.results.sr.items import _algorithm, _Group


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
    """The region's volume (its radiomic features are in :func:`_radiomics_groups`)."""
    volumes = {m.region: m for m in content.regions}
    if region not in volumes:
        return []
    return [Measurement(codes.VOLUME, float(volumes[region].volume_ml), codes.UNIT_ML)]


def _radiomics_groups(
    content: ReportContent,
    key: ResultKey,
    algorithm: AlgorithmInfo | None,
    with_segments: bool,
) -> list[_Group]:
    """The radiomic features, one TID 1501 group per region and sequence, after the region
    groups.

    The sequence a feature's intensities come from is the group's Measurement Method, where
    dcmqi and OHIF read it (they ignore a method on a single measurement). A group shares
    its region group's tracking identifier and UID (the SEG segment's, for a segment), so a
    viewer merges it into that region's measurement; it does not reference the segment
    again, so that the groups that reference segments stay one per segment.
    """
    by_group: dict[tuple[Region, SeriesRole], list[Measurement]] = {}
    for feature in content.features:
        by_group.setdefault((feature.region, feature.sequence), []).append(
            Measurement(
                codes.radiomic_feature(feature.name, feature.ibsi_name, feature.sequence.value),
                float(feature.value),
                codes.unit(feature.unit),
            )
        )
    algo = _segment_algorithm(algorithm)
    groups: list[_Group] = []
    for (region, sequence), measurements in by_group.items():
        uid = (
            key.uid("tracking", SEGMENT_NUMBER[region])
            if with_segments and region.is_segment
            else key.uid(f"tracking-{region.value}")
        )
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=uid, identifier=codes.region_tag(region, content.postoperative)
                ),
                finding_type=codes.region_finding(region, content.postoperative),
                method=codes.SEQUENCE_METHOD[sequence],
                algorithm_id=algo,
                measurements=measurements,
            )
        )
    return groups


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
        label = codes.region_tag(region, content.postoperative)
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
        label = codes.region_tag(region, content.postoperative)
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
