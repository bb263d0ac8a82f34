"""Secondary Capture overlays: the segmentation burned into key slices, for any viewer.

Each image is an RGB rendering of one axial slice of a background (the T1c reference series,
and optional extra backgrounds such as FLAIR already resampled on the reference grid) with
the sub-regions filled semi-transparently, a legend, and "RESEARCH USE ONLY" burned in.

:func:`build_pet_fusion` renders the amino-acid PET: the tumour-to-background ratio (TBR) as
a colour map over the T1c (fused PET/MR, in the MR study) or alone (PET-only, in the PET
study), with the BTV and CTV contours, a colour bar with the BTV threshold marked, the key
figures and "RESEARCH USE ONLY" burned in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import structlog
from highdicom.sc import SCImage

from rgcds import __version__
from rgcds.exceptions import DicomInputError
from rgcds.results import codes
from rgcds.results._common import (
    MANUFACTURER,
    REGION_COLOURS,
    SERIES_DESCRIPTION,
    SERIES_NUMBER,
    ObjectKind,
    contributing_equipment,
    series_description,
    stamp,
)
from rgcds.results.capture_render import (
    BANNER,
    _orientation,
    _window,
    key_slices,
    pet_key_slices,
    render_pet_slice,
    render_slice,
    side_letters,
)
from rgcds.results.capture_render import BTV_COLOUR as BTV_COLOUR
from rgcds.results.capture_render import CTV_COLOUR as CTV_COLOUR
from rgcds.results.capture_render import FUSION_MAX_ALPHA as FUSION_MAX_ALPHA
from rgcds.results.capture_render import MIN_OUTPUT_SIZE as MIN_OUTPUT_SIZE
from rgcds.results.capture_render import OVERLAY_ALPHA as OVERLAY_ALPHA
from rgcds.results.capture_render import PET_COLOURMAP as PET_COLOURMAP
from rgcds.results.capture_render import THRESHOLD_COLOUR as THRESHOLD_COLOUR
from rgcds.results.content import (
    AlgorithmInfo,
    PetReport,
    SegmentationResult,
    SourceSeries,
)
from rgcds.results.seg import result_key

logger = structlog.get_logger(__name__)


def source_image_reference(source: SourceSeries, k: int) -> pydicom.Dataset:
    """An item of the Source Image Sequence for slice ``k`` of ``source``: its instance and,
    for a multi-frame instance, its frame (Referenced Frame Number)."""
    ref = source.slice_dataset(k)
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = ref.SOPClassUID
    item.ReferencedSOPInstanceUID = ref.SOPInstanceUID
    frame = source.slice_frame_number(k)
    if frame is not None:
        item.ReferencedFrameNumber = frame
    item.PurposeOfReferenceCodeSequence = [codes.SOURCE_IMAGE_FOR_PROCESSING]
    return item


def _capture(
    source: SourceSeries,
    k: int,
    pixels: npt.NDArray[np.uint8],
    kind: ObjectKind,
    index: int,
    key: Any,
    series_uid: str,
    analysed_at: datetime | None,
    description: str,
    *,
    comments: str,
    derivation: str,
) -> SCImage:
    """One burned-in RGB Secondary Capture of a rendered slice ``k`` of ``source``, which
    it references (Source Image Sequence)."""
    ref = source.slice_dataset(k)
    pixel_spacing, orientation = source.slice_geometry(k)
    factor = pixels.shape[0] / float(ref.Rows)
    spacing = tuple(v / factor for v in pixel_spacing)
    sc = SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=series_uid,
        series_number=SERIES_NUMBER[kind],
        sop_instance_uid=key.instance_uid(kind, index),
        instance_number=index + 1,
        manufacturer=MANUFACTURER,
        pixel_spacing=spacing,
        patient_orientation=_orientation(orientation),
        contributing_equipment=contributing_equipment(analysed_at),
        series_description=description,
    )
    sc.BurnedInAnnotation = "YES"
    # The brain is unpaired: with BodyPartExamined, Laterality (2C) must be absent.
    sc.BodyPartExamined = str(ref.get("BodyPartExamined") or "BRAIN")
    sc.ImageComments = comments
    sc.DerivationDescription = derivation
    sc.SourceImageSequence = [source_image_reference(source, k)]
    stamp(sc, analysed_at)
    return sc


def build_overlays(
    source: SourceSeries,
    segmentation: SegmentationResult,
    *,
    backgrounds: Mapping[str, npt.NDArray[np.floating]] | None = None,
    slices: Sequence[int] | None = None,
    analysed_at: datetime | None = None,
) -> list[SCImage]:
    """Build the Secondary Capture series of overlays.

    Parameters
    ----------
    source
        The reference (T1c) series; its pixels are the first background.
    segmentation
        The labels on the reference grid.
    backgrounds
        Extra backgrounds by name (e.g. ``{"FLAIR": array}``), each already resampled to
        the reference grid, shape ``(slices, rows, cols)``.
    slices
        Slice indices to render; by default :func:`key_slices`.
    analysed_at
        Stamped as series/content date and time.

    Returns
    -------
    list of highdicom.sc.SCImage
        RGB images (T1c first, then each extra background, per key slice) in one new
        series of the source study, with BurnedInAnnotation YES and "research use only".

    Raises
    ------
    DicomInputError
        If a background does not have the reference grid's shape.
    """
    key = result_key(source, segmentation.algorithm)
    layers: dict[str, npt.NDArray[np.floating]] = {"T1c": source.pixel_volume()}
    for name, volume in (backgrounds or {}).items():
        if volume.shape != source.shape:
            raise DicomInputError(
                f"The {name} background has shape {volume.shape}, not the reference grid "
                f"{source.shape}; resample it onto the T1c grid first."
            )
        layers[name] = volume
    chosen = list(slices) if slices is not None else key_slices(segmentation.labels)
    images: list[SCImage] = []
    series_uid = key.series_uid(ObjectKind.SC)
    for name, volume in layers.items():
        window = _window(volume)
        for k in chosen:
            caption = f"{name} slice {k + 1}/{source.shape[0]}  rgcds {__version__}"
            pixels = render_slice(
                volume[k], segmentation.labels[k], window, caption, segmentation.postoperative,
                sides=side_letters(source.slice_geometry(k)[1]),
            )
            images.append(_capture(
                source, k, pixels, ObjectKind.SC, len(images), key, series_uid, analysed_at,
                series_description(ObjectKind.SC, segmentation.postoperative),
                comments=f"{name} with tumour overlay. {BANNER}.",
                derivation="Segmentation overlay rendered by rgcds. Research use only.",
            ))
    logger.info(
        "overlays_built", study_uid=key.study_instance_uid, images=len(images), slices=chosen
    )
    return images


def build_pet_fusion(
    reference: SourceSeries,
    pet: PetReport,
    tbr: npt.NDArray[np.floating],
    *,
    algorithm: AlgorithmInfo,
    btv: npt.NDArray[np.bool_] | None = None,
    ctv: npt.NDArray[np.bool_] | None = None,
    slices: Sequence[int] | None = None,
    analysed_at: datetime | None = None,
) -> list[SCImage]:
    """Build the fused PET/MR (or PET-only) Secondary Capture series.

    Parameters
    ----------
    reference
        The grid of ``tbr`` and the masks, and the series the images are placed in: the MR
        reference (T1c) series for a fused PET/MR rendering (in the MR study), or the PET
        series (``Modality`` PT) for a PET-only rendering (in the PET study).
    pet
        The PET report (tracer, threshold, key figures for the caption).
    tbr
        Tumour-to-background ratio on ``reference``'s grid, ``(slices, rows, cols)``.
    algorithm
        The PET analysis' identification (UIDs derive from it and ``reference``).
    btv, ctv
        BTV and CTV masks on ``reference``'s grid (contours).
    slices
        Slice indices to render; by default :func:`pet_key_slices`.
    analysed_at
        Stamped as series/content date and time.

    Returns
    -------
    list of highdicom.sc.SCImage
        RGB images in one new series (9906) of ``reference``'s study, BurnedInAnnotation
        YES, "research use only" in the series description and burned in.

    Raises
    ------
    DicomInputError
        If ``tbr`` or a mask does not have ``reference``'s shape.
    """
    for name, array in (("TBR map", tbr), ("BTV mask", btv), ("CTV mask", ctv)):
        if array is not None and array.shape != reference.shape:
            raise DicomInputError(
                f"The {name} has shape {array.shape} but the overlay grid is "
                f"{reference.shape}; resample it onto the reference series first."
            )
    fused = str(reference.datasets[0].get("Modality", "")) != "PT"
    key = result_key(reference, algorithm)
    background = reference.pixel_volume() if fused else None
    window = _window(background) if background is not None else (0.0, 1.0)
    top = max(float(np.percentile(tbr, 99.9)), pet.threshold_tbr * 1.5, pet.tbr_max)
    chosen = list(slices) if slices is not None else pet_key_slices(tbr, btv)
    mode = "PET/MR fusion" if fused else "PET only (no MR)"
    figures = f"TBRmax {pet.tbr_max:.2f}  BTV {pet.btv_ml:.1f} ml at TBR >= {pet.threshold_tbr:g}"
    series_uid = key.series_uid(ObjectKind.PET_SC)
    images: list[SCImage] = []
    for index, k in enumerate(chosen):
        caption = [
            f"{pet.tracer} {mode}  slice {k + 1}/{reference.shape[0]}",
            figures,
            f"rgcds {__version__}",
        ]
        pixels = render_pet_slice(
            tbr[k],
            threshold_tbr=pet.threshold_tbr,
            tbr_top=top,
            background=background[k] if background is not None else None,
            window=window,
            btv=btv[k] if btv is not None else None,
            ctv=ctv[k] if ctv is not None else None,
            caption=caption,
            sides=side_letters(reference.slice_geometry(k)[1]),
        )
        images.append(_capture(
            reference, k, pixels, ObjectKind.PET_SC, index, key, series_uid, analysed_at,
            SERIES_DESCRIPTION[ObjectKind.PET_SC],
            comments=f"{pet.tracer} {mode}, TBR colour map, BTV and CTV contours. {BANNER}.",
            derivation="PET TBR overlay rendered by rgcds. Research use only.",
        ))
    logger.info(
        "pet_fusion_built",
        study_uid=key.study_instance_uid,
        images=len(images),
        slices=chosen,
        fused=fused,
    )
    return images


__all__ = [
    "BANNER",
    "REGION_COLOURS",
    "build_overlays",
    "build_pet_fusion",
    "key_slices",
    "pet_key_slices",
    "render_pet_slice",
    "render_slice",
    "source_image_reference",
]
