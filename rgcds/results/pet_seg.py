"""DICOM Segmentation (SEG) of the PET segments: BTV, residual tumour and CTV.

The same builder writes the SEG on the PET grid (a new series of the PET study, which
usually differs from the MR study) and, when the PET was registered to the MR, on the MR
reference (T1c) grid (a new series of the MR study). Segments without any voxel are not
written; segment numbers are consecutive in :class:`~rgcds.results.content.PetSegment` order
over the non-empty segments (:func:`pet_segment_numbers` reads them back).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pydicom
import structlog
from highdicom.seg import (
    SegmentAlgorithmTypeValues,
    Segmentation,
    SegmentDescription,
)

from rgcds.exceptions import DicomInputError
from rgcds.results import codes
from rgcds.results._common import (
    PET_COLOURS,
    SERIES_DESCRIPTION,
    ObjectKind,
    ResultKey,
    declare_private_scheme,
    display_colour,
    stamp,
)
from rgcds.results.content import (
    AlgorithmInfo,
    PetMasks,
    PetSegment,
    SourceSeries,
    pet_masks_by_segment,
)
from rgcds.results.seg import algorithm_identification, binary_segmentation, result_key

logger = structlog.get_logger(__name__)


def _description(
    segment: PetSegment, number: int, algorithm: AlgorithmInfo, key: ResultKey
) -> SegmentDescription:
    algo = algorithm_identification(algorithm)
    ident = codes.PET_SEGMENT_ID[segment]
    return SegmentDescription(
        segment_number=number,
        segment_label=segment.value,
        segmented_property_category=codes.PET_SEGMENT_CATEGORY[segment],
        segmented_property_type=codes.PET_SEGMENT_TYPE[segment],
        algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algo,
        tracking_uid=key.uid(f"tracking-pet-{ident}"),
        tracking_id=f"{segment.value} ({ident})",
        anatomic_regions=[codes.BRAIN],
        display_color=display_colour(PET_COLOURS[segment]),
    )


def build_pet_segmentation(
    source: SourceSeries,
    masks: PetMasks,
    *,
    algorithm: AlgorithmInfo,
    analysed_at: datetime | None = None,
) -> Segmentation | None:
    """Build the SEG of the PET segments on ``source``'s grid.

    Parameters
    ----------
    source
        The series the masks are defined on: the PET series (SEG in the PET study) or the MR
        reference series (SEG in the MR study): single-frame instances in slice order, or
        one multi-frame instance and its frame order.
    masks
        Segment -> boolean mask ``(slices, rows, cols)``; ``masks[s][k]`` belongs to
        slice ``k`` of ``source`` (``source.slice_dataset(k)``). Keys: :class:`PetSegment`
        members or ``"BTV"``, ``"RESIDUAL"``, ``"CTV"`` (or the labels).
    algorithm
        The PET analysis' identification (algorithm identification; UIDs derive from it and
        from ``source``).
    analysed_at
        Stamped as series/content date and time (re-exports are identical).

    Returns
    -------
    highdicom.seg.Segmentation or None
        A binary SEG in ``source``'s study, new series 9905 ("research use only"), one
        segment per non-empty mask in :class:`PetSegment` order; ``None`` when every mask is
        empty (a SEG needs at least one segment with pixels).

    Raises
    ------
    DicomInputError
        If a mask does not have the source grid's shape.
    ValueError
        If a key names no PET segment.
    """
    by_segment = pet_masks_by_segment(masks)
    present: list[PetSegment] = []
    for segment in PetSegment:
        mask = by_segment.get(segment)
        if mask is None:
            continue
        if mask.shape != source.shape:
            raise DicomInputError(
                f"The {segment.value} mask has shape {mask.shape} but the series it is defined "
                f"on is {source.shape} (slices, rows, cols); resample it onto that grid."
            )
        if np.any(mask):
            present.append(segment)
    key = result_key(source, algorithm)
    if not present:
        logger.info("pet_seg_skipped_all_empty", study_uid=key.study_instance_uid)
        return None
    pixels = np.stack([np.asarray(by_segment[s], dtype=bool) for s in present], axis=-1).astype(
        np.uint8
    )
    seg = binary_segmentation(
        source,
        pixels,
        [_description(s, i + 1, algorithm, key) for i, s in enumerate(present)],
        key,
        ObjectKind.PET_SEG,
        content_description="PET BTV, residual tumour and CTV. Research use only.",
        content_label="PET",
        series_description=SERIES_DESCRIPTION[ObjectKind.PET_SEG],
        dimension_organization="pet-seg-dimension-organization",
        analysed_at=analysed_at,
    )
    declare_private_scheme(seg)
    stamp(seg, analysed_at)
    logger.info(
        "pet_seg_built",
        study_uid=key.study_instance_uid,
        sop_instance_uid=seg.SOPInstanceUID,
        frames=int(seg.NumberOfFrames),
        segments=[codes.PET_SEGMENT_ID[s] for s in present],
    )
    return seg


def pet_segment_numbers(seg: pydicom.Dataset) -> dict[PetSegment, int]:
    """The segment number of each PET segment present in a PET SEG (by segment label)."""
    labels = {s.value: s for s in PetSegment}
    return {
        labels[str(item.SegmentLabel)]: int(item.SegmentNumber)
        for item in seg.get("SegmentSequence", [])
        if str(item.SegmentLabel) in labels
    }


__all__ = ["build_pet_segmentation", "pet_segment_numbers"]
