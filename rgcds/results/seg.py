"""DICOM Segmentation (SEG) of the tumour sub-regions on the reference series' grid."""

from __future__ import annotations

from datetime import datetime

import highdicom as hd
import numpy as np
import structlog
from highdicom.seg import (
    SegmentAlgorithmTypeValues,
    Segmentation,
    SegmentationTypeValues,
    SegmentDescription,
)

from rgcds import __version__
from rgcds.exceptions import DicomInputError
from rgcds.results import codes
from rgcds.results._common import (
    CONTENT_CREATOR,
    DEVICE_SERIAL,
    MANUFACTURER,
    MODEL_NAME,
    REGION_COLOURS,
    SERIES_NUMBER,
    ObjectKind,
    ResultKey,
    contributing_equipment,
    display_colour,
    series_description,
    stamp,
)
from rgcds.results.content import (
    SEGMENT_REGIONS,
    AlgorithmInfo,
    Region,
    SegmentationResult,
    SourceSeries,
)

logger = structlog.get_logger(__name__)

SEGMENT_NUMBER: dict[Region, int] = {region: i + 1 for i, region in enumerate(SEGMENT_REGIONS)}
"""Fixed segment numbers: 1 necrotic core, 2 enhancing tumour, 3 oedema."""


def result_key(source: SourceSeries, algorithm: AlgorithmInfo) -> ResultKey:
    """The :class:`ResultKey` of an analysis of ``source`` by ``algorithm``."""
    return ResultKey(
        study_instance_uid=source.study_instance_uid,
        reference_series_uid=source.series_instance_uid,
        model_id=algorithm.model_id,
        model_version=algorithm.version,
    )


def algorithm_identification(algorithm: AlgorithmInfo) -> hd.AlgorithmIdentificationSequence:
    """A SEG segment's algorithm identification: the model's name, family, version, id."""
    return hd.AlgorithmIdentificationSequence(
        name=algorithm.display_name,
        family=codes.algorithm_family(algorithm.family),
        version=algorithm.version,
        source=MANUFACTURER,
        parameters={"model_id": algorithm.model_id},
    )


def segment_descriptions(
    algorithm: AlgorithmInfo, key: ResultKey, postoperative: bool = False
) -> list[SegmentDescription]:
    """The three segment descriptions, with coded types and algorithm identification.

    ``postoperative`` names and codes the segments resection cavity, residual enhancing
    tumour and oedema instead of necrotic core, enhancing tumour and oedema.
    """
    algo = algorithm_identification(algorithm)
    return [
        SegmentDescription(
            segment_number=SEGMENT_NUMBER[region],
            segment_label=codes.region_label(region, postoperative),
            segmented_property_category=codes.MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
            segmented_property_type=codes.segment_type(region, postoperative),
            algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo,
            tracking_uid=key.uid("tracking", SEGMENT_NUMBER[region]),
            tracking_id=codes.region_tag(region, postoperative),
            anatomic_regions=[codes.BRAIN],
            display_color=display_colour(REGION_COLOURS[region]),
        )
        for region in SEGMENT_REGIONS
    ]


def binary_segmentation(
    source: SourceSeries,
    masks: np.ndarray,
    descriptions: list[SegmentDescription],
    key: ResultKey,
    kind: ObjectKind,
    *,
    content_description: str,
    content_label: str,
    series_description: str,
    dimension_organization: str,
    analysed_at: datetime | None,
) -> Segmentation:
    """The one SEG builder: a binary SEG of ``masks`` (``(slices, rows, cols, segments)`` on
    ``source``'s grid, one segment per description) in a new series of ``source``'s study.

    Frames without any voxel of a segment are omitted. UIDs derive from ``key`` and ``kind``,
    the Dimension Organization UID (which highdicom draws at random) from
    ``dimension_organization``, so that a re-export is byte-identical once stamped.
    """
    seg = Segmentation(
        # One multi-frame source image: frames in its frame order, so highdicom copies each
        # frame's plane position and references the frame (Referenced Frame Number).
        source_images=list(source.datasets),
        pixel_array=source.to_source_order(masks),
        segmentation_type=SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=key.series_uid(kind),
        series_number=SERIES_NUMBER[kind],
        sop_instance_uid=key.instance_uid(kind),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=__version__,
        device_serial_number=DEVICE_SERIAL,
        content_description=content_description,
        content_label=content_label,
        content_creator_name=CONTENT_CREATOR,
        series_description=series_description,
        contributing_equipment=contributing_equipment(analysed_at),
        omit_empty_frames=True,
    )
    dimension_uid = key.uid(dimension_organization)
    for item in seg.get("DimensionOrganizationSequence", []):
        item.DimensionOrganizationUID = dimension_uid
    for item in seg.get("DimensionIndexSequence", []):
        item.DimensionOrganizationUID = dimension_uid
    return seg


def build_segmentation(
    source: SourceSeries,
    segmentation: SegmentationResult,
    *,
    analysed_at: datetime | None = None,
) -> Segmentation:
    """Build the SEG of the tumour sub-regions.

    Parameters
    ----------
    source
        The reference (T1c) series: single-frame instances in slice order, or one
        multi-frame (Enhanced or Legacy Converted Enhanced) instance and its frame order.
    segmentation
        BraTS labels on that grid (``labels[k]`` belongs to ``source.slice_dataset(k)``,
        frame ``source.slice_frame_number(k)`` if multi-frame) and the segmentation model's
        identification.
    analysed_at
        Stamped as series/content date and time (so re-exports are byte-identical);
        ``None`` keeps highdicom's "now".

    Returns
    -------
    highdicom.seg.Segmentation
        A binary SEG in the source study, new series, with segments 1 necrotic core,
        2 enhancing tumour, 3 oedema, derived from the source instances (or the one
        multi-frame source image, each frame referencing its source frame and carrying its
        plane position). All three segments are always described (so the SR's
        segment references are stable); frames without any voxel of a segment are omitted,
        so an empty segment has no frames. UIDs derive from :class:`ResultKey`.

    Raises
    ------
    DicomInputError
        If the labels do not match the reference series' grid.
    """
    if segmentation.labels.shape != source.shape:
        raise DicomInputError(
            f"The label array has shape {segmentation.labels.shape} but the reference series "
            f"is {source.shape} (slices, rows, cols); resample the labels to the native grid."
        )
    key = result_key(source, segmentation.algorithm)
    masks = np.stack([segmentation.mask(region) for region in SEGMENT_REGIONS], axis=-1).astype(
        np.uint8
    )
    if not masks.any():
        # highdicom needs at least one frame: keep the first slice (all zero) for an empty SEG.
        logger.info("seg_all_segments_empty", study_uid=key.study_instance_uid)
    seg = binary_segmentation(
        source,
        masks,
        segment_descriptions(segmentation.algorithm, key, segmentation.postoperative),
        key,
        ObjectKind.SEG,
        content_description=(
            "Post-operative glioblastoma regions. Research use only."
            if segmentation.postoperative
            else "Glioblastoma sub-regions. Research use only."
        ),
        content_label="TUMOUR",
        series_description=series_description(ObjectKind.SEG, segmentation.postoperative),
        dimension_organization="seg-dimension-organization",
        analysed_at=analysed_at,
    )
    stamp(seg, analysed_at)
    logger.info(
        "seg_built",
        study_uid=key.study_instance_uid,
        sop_instance_uid=seg.SOPInstanceUID,
        frames=int(seg.NumberOfFrames),
        voxels={r.value: int(segmentation.mask(r).sum()) for r in SEGMENT_REGIONS},
    )
    return seg


__all__ = [
    "SEGMENT_NUMBER",
    "algorithm_identification",
    "binary_segmentation",
    "build_segmentation",
    "result_key",
    "segment_descriptions",
]
