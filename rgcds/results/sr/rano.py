"""Per RANO lesion: long and short axes (SCOORD on the T1c image) and their products."""

from __future__ import annotations

from highdicom.sr import (
    Measurement,
    MeasurementsAndQualitativeEvaluations,
    SourceImageForMeasurementGroup,
    TrackingIdentifier,
)

from rgcds.results import codes
from rgcds.results._common import (
    ResultKey,
)
from rgcds.results._geometry import LesionAxes, lesion_axes
from rgcds.results.content import (
    AlgorithmInfo,
    Region,
    ReportContent,
    SegmentationResult,
    SourceSeries,
)
from rgcds.results.sr.items import _Group
from rgcds.results.sr.regions import (
    _coordinates,
    _region,
    _segment_algorithm,
    _segment_lateralities,
    _site,
)


def _rano_groups(
    content: ReportContent,
    key: ResultKey,
    source: SourceSeries | None,
    segmentation: SegmentationResult | None,
    algorithm: AlgorithmInfo | None,
    *,
    placed_only: bool = False,
) -> tuple[list[_Group], list[_Group]]:
    """The RANO lesions, numbered 1..n in report order, and the sum.

    With ``placed_only``, only the lesions found again on their source slice (the groups
    with coordinates), keeping their numbers; the RANO key-measurement SR is made of them.

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
        if placed_only and found is None:
            continue
        source_images = long_at = short_at = None
        if found is not None and source is not None:
            slice_image = source.slice_dataset(found.slice_index)
            frame = source.slice_frame_number(found.slice_index)
            source_images = [
                SourceImageForMeasurementGroup(
                    referenced_sop_class_uid=str(slice_image.SOPClassUID),
                    referenced_sop_instance_uid=str(slice_image.SOPInstanceUID),
                    referenced_frame_numbers=[frame] if frame is not None else None,
                )
            ]
            long_at = [_coordinates(found.long_axis, _region(source, found.slice_index))]
            short_at = [_coordinates(found.short_axis, _region(source, found.slice_index))]
        groups.append(
            MeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking,
                finding_type=finding,
                finding_category=codes.RANO_LESION,
                method=codes.RANO_METHOD,
                algorithm_id=algo,
                finding_sites=site,
                source_images=source_images,
                measurements=[
                    Measurement(
                        codes.LONG_AXIS,
                        float(lesion.longest_diameter_mm),
                        codes.UNIT_MM,
                        referenced_coordinates=long_at,
                    ),
                    Measurement(
                        codes.SHORT_AXIS,
                        float(lesion.perpendicular_diameter_mm),
                        codes.UNIT_MM,
                        referenced_coordinates=short_at,
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
