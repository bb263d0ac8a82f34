# SimpleITK ships no type hints: its calls are untyped and return Any.
"""Tumour measurements on the native reference grid: volumes, RANO, multifocality.

All functions take a SimpleITK label image with BraTS labels (1 necrotic core NCR,
2 peritumoural oedema ED, 3 enhancing tumour ET) on the grid of the reference series, with
its real spacing and direction. Sub-regions follow the BraTS convention: tumour core
TC = NCR + ET and whole tumour WT = NCR + ED + ET.

RANO bidimensional products are measured on axial slices. An image whose direction is a
permutation of the axes (any of the 48 axis-aligned orientations) is only reoriented
(lossless); an oblique image is resampled with nearest-neighbour interpolation onto an
axis-aligned grid with the image's finest spacing first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import structlog
from numpy.typing import NDArray
from scipy import ndimage

from rgcds.analysis.location import LobeAtlas, Location, locate
from rgcds.analysis.measure_axial import bidimensional, to_axial
from rgcds.exceptions import DicomInputError

logger = structlog.get_logger(__name__)

NCR_LABEL = 1
ED_LABEL = 2
ET_LABEL = 3

#: Sub-region name -> the BraTS labels it unites.
REGIONS: dict[str, tuple[int, ...]] = {
    "NCR": (NCR_LABEL,),
    "ED": (ED_LABEL,),
    "ET": (ET_LABEL,),
    "TC": (NCR_LABEL, ET_LABEL),
    "WT": (NCR_LABEL, ED_LABEL, ET_LABEL),
}

#: RANO: both perpendicular diameters at least this long for a lesion to be measurable.
RANO_MIN_DIAMETER_MM = 10.0
#: RANO: at most this many target lesions enter the sum of products.
RANO_MAX_TARGETS = 5


@dataclass(frozen=True)
class RegionMeasurement:
    """Volume and lesion count of one tumour sub-region.

    Attributes
    ----------
    region
        ``NCR``, ``ED``, ``ET``, ``TC`` or ``WT``.
    labels
        The BraTS labels the region unites.
    voxel_count
        Number of voxels in the region.
    volume_cm3
        Volume in cm³ (voxel count x voxel volume).
    n_components
        Number of connected components (26-connectivity).
    """

    region: str
    labels: tuple[int, ...]
    voxel_count: int
    volume_cm3: float
    n_components: int


@dataclass(frozen=True)
class RanoLesion:
    """The bidimensional measurement of one enhancing lesion on its best axial slice.

    Attributes
    ----------
    index
        1-based lesion number, largest product first.
    slice_index
        Index of the axial slice (in the axial, LPS-ordered grid) that was measured.
    longest_diameter_mm
        Longest in-plane diameter (edge to edge).
    perpendicular_diameter_mm
        Longest chord perpendicular to the longest diameter.
    product_mm2
        ``longest_diameter_mm * perpendicular_diameter_mm``.
    measurable
        True when both diameters are at least 10 mm (RANO).
    volume_cm3
        Volume of the 3D lesion.
    """

    index: int
    slice_index: int
    longest_diameter_mm: float
    perpendicular_diameter_mm: float
    product_mm2: float
    measurable: bool
    volume_cm3: float


@dataclass(frozen=True)
class RanoResult:
    """RANO bidimensional assessment of the enhancing tumour.

    Attributes
    ----------
    lesions
        Every enhancing lesion, largest product first.
    target_lesions
        The measurable lesions that enter the sum (at most ``max_targets``).
    sum_of_products_mm2
        Sum of the target lesions' products; 0 when none is measurable.
    n_measurable
        Number of measurable lesions.
    max_targets
        The cap on target lesions that was applied.
    """

    lesions: tuple[RanoLesion, ...]
    target_lesions: tuple[RanoLesion, ...]
    sum_of_products_mm2: float
    n_measurable: int
    max_targets: int


@dataclass(frozen=True)
class Measurements:
    """All measurements of one study.

    Attributes
    ----------
    regions
        One :class:`RegionMeasurement` per sub-region (NCR, ED, ET, TC, WT).
    rano
        The RANO assessment of the enhancing tumour.
    n_lesions_tc
        Connected components of the tumour core.
    n_lesions_et
        Connected components of the enhancing tumour.
    multifocal
        True when the tumour core has more than one component.
    location
        Hemisphere, lobes and midline crossing; ``None`` when no transform to MNI was given.
    """

    regions: tuple[RegionMeasurement, ...]
    rano: RanoResult
    n_lesions_tc: int
    n_lesions_et: int
    multifocal: bool
    location: Location | None

    def region(self, name: str) -> RegionMeasurement:
        """Return the measurement of sub-region ``name`` (NCR, ED, ET, TC or WT)."""
        for item in self.regions:
            if item.region == name:
                return item
        raise KeyError(
            f"No measurement for region {name!r}; known: {[r.region for r in self.regions]}."
        )


def _check_labels(labels: sitk.Image) -> NDArray[np.integer]:
    if labels.GetDimension() != 3:
        raise DicomInputError(
            f"A label map must be a 3D image, got {labels.GetDimension()}D; pass the "
            "segmentation on the reference series' grid."
        )
    array = sitk.GetArrayViewFromImage(labels)
    if not np.issubdtype(array.dtype, np.integer):
        raise DicomInputError(
            f"A label map must have an integer pixel type, got {labels.GetPixelIDTypeAsString()}; "
            "cast it with sitk.Cast(labels, sitk.sitkUInt8)."
        )
    return np.asarray(array)


def region_mask(array: NDArray[np.integer], region: str) -> NDArray[np.bool_]:
    """Boolean mask of sub-region ``region`` in a BraTS label array.

    Raises
    ------
    KeyError
        If ``region`` is not one of ``NCR``, ``ED``, ``ET``, ``TC``, ``WT``.
    """
    try:
        wanted = REGIONS[region]
    except KeyError:
        raise KeyError(f"Unknown region {region!r}; use one of {sorted(REGIONS)}.") from None
    return np.isin(array, wanted)


_STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)


def count_components(mask: NDArray[np.bool_], min_voxels: int = 1) -> int:
    """Number of 26-connected components of ``mask`` with at least ``min_voxels`` voxels."""
    labelled, n = ndimage.label(mask, structure=_STRUCTURE_26)
    if n == 0 or min_voxels <= 1:
        return int(n)
    sizes = np.bincount(labelled.ravel())[1:]
    return int(np.count_nonzero(sizes >= min_voxels))


def measure_volumes(labels: sitk.Image) -> tuple[RegionMeasurement, ...]:
    """Volume (cm³), voxel count and component count of every sub-region.

    Parameters
    ----------
    labels
        BraTS label map on the native reference grid.

    Returns
    -------
    tuple of RegionMeasurement
        In the order NCR, ED, ET, TC, WT.

    Raises
    ------
    DicomInputError
        If the label map is not a 3D integer image.
    """
    array = _check_labels(labels)
    voxel_mm3 = float(np.prod(labels.GetSpacing()))
    out = []
    for name, wanted in REGIONS.items():
        mask = np.isin(array, wanted)
        count = int(np.count_nonzero(mask))
        out.append(
            RegionMeasurement(
                region=name,
                labels=wanted,
                voxel_count=count,
                volume_cm3=count * voxel_mm3 / 1000.0,
                n_components=count_components(mask) if count else 0,
            )
        )
    return tuple(out)


def rano(
    labels: sitk.Image,
    *,
    region: str = "ET",
    max_targets: int = RANO_MAX_TARGETS,
    min_diameter_mm: float = RANO_MIN_DIAMETER_MM,
) -> RanoResult:
    """RANO bidimensional products of the enhancing lesions on axial slices.

    Each 3D connected component of ``region`` is one lesion. On every axial slice the
    lesion's largest in-plane piece is measured (longest diameter x longest perpendicular
    chord); the slice with the largest product represents the lesion. A lesion is
    measurable when both diameters are at least ``min_diameter_mm``. The ``max_targets``
    measurable lesions with the largest products are the targets; their products are summed.

    Parameters
    ----------
    labels
        BraTS label map on the native reference grid.
    region
        Sub-region to assess; RANO uses the enhancing tumour (``ET``).
    max_targets
        Cap on target lesions (RANO: 2 to 5; default 5).
    min_diameter_mm
        Measurability threshold for both diameters (RANO: 10 mm).

    Returns
    -------
    RanoResult
        Per-lesion measurements and the sum of products of the targets.
    """
    _check_labels(labels)
    axial = to_axial(labels)
    array = sitk.GetArrayFromImage(axial)  # z, y, x
    sx, sy, sz = axial.GetSpacing()
    mask = region_mask(array, region)
    labelled, n = ndimage.label(mask, structure=_STRUCTURE_26)
    voxel_cm3 = sx * sy * sz / 1000.0
    found: list[tuple[float, int, float, float, float]] = []
    if n:
        slices = ndimage.find_objects(labelled)
        for comp in range(1, n + 1):
            box = slices[comp - 1]
            if box is None:
                continue
            sub = labelled[box] == comp
            volume = float(np.count_nonzero(sub)) * voxel_cm3
            best = (0.0, box[0].start, 0.0, 0.0)
            for dz in range(sub.shape[0]):
                plane = sub[dz]
                if not plane.any():
                    continue
                pieces, m = ndimage.label(plane)
                if m > 1:
                    sizes = np.bincount(pieces.ravel())[1:]
                    plane = pieces == (int(np.argmax(sizes)) + 1)
                longest, perp = bidimensional(plane, (sy, sx))
                if longest * perp > best[0] or best[2] == 0.0:
                    best = (longest * perp, box[0].start + dz, longest, perp)
            found.append((best[0], best[1], best[2], best[3], volume))
    found.sort(key=lambda item: item[0], reverse=True)
    lesions = tuple(
        RanoLesion(
            index=k + 1,
            slice_index=int(z),
            longest_diameter_mm=round(d1, 3),
            perpendicular_diameter_mm=round(d2, 3),
            product_mm2=round(d1 * d2, 3),
            measurable=d1 >= min_diameter_mm and d2 >= min_diameter_mm,
            volume_cm3=vol,
        )
        for k, (_, z, d1, d2, vol) in enumerate(found)
    )
    measurable = [lesion for lesion in lesions if lesion.measurable]
    targets = tuple(measurable[:max_targets])
    return RanoResult(
        lesions=lesions,
        target_lesions=targets,
        sum_of_products_mm2=round(float(sum(t.product_mm2 for t in targets)), 3),
        n_measurable=len(measurable),
        max_targets=max_targets,
    )


def measure(
    labels: sitk.Image,
    *,
    to_mni: sitk.Transform | Callable[[NDArray[np.float64]], NDArray[np.float64]] | None = None,
    atlas: LobeAtlas | None = None,
    mni_labels: sitk.Image | None = None,
    max_targets: int = RANO_MAX_TARGETS,
) -> Measurements:
    """Measure a segmented tumour: volumes, RANO, multifocality and location.

    Parameters
    ----------
    labels
        BraTS label map on the native reference grid.
    to_mni
        Transform from patient physical space (SimpleITK LPS mm) to MNI physical space
        (LPS mm); a SimpleITK transform or a callable on an ``(N, 3)`` array. With
        ``mni_labels`` instead, or neither, see below.
    atlas
        The lobe atlas; :func:`rgcds.analysis.location.load_lobe_atlas` by default.
    mni_labels
        The label map already in MNI space (phantoms): location uses it directly.
    max_targets
        RANO target-lesion cap.

    Returns
    -------
    Measurements
        ``location`` is ``None`` when neither ``to_mni`` nor ``mni_labels`` is given.
    """
    regions = measure_volumes(labels)
    array = _check_labels(labels)
    n_tc = count_components(region_mask(array, "TC"))
    n_et = count_components(region_mask(array, "ET"))
    result = rano(labels, max_targets=max_targets)
    location: Location | None = None
    if mni_labels is not None:
        location = locate(mni_labels, None, atlas=atlas)
    elif to_mni is not None:
        location = locate(labels, to_mni, atlas=atlas)
    logger.info(
        "tumour_measured",
        wt_cm3=round(regions[-1].volume_cm3, 2),
        rano_mm2=result.sum_of_products_mm2,
        n_lesions_tc=n_tc,
    )
    return Measurements(
        regions=regions,
        rano=result,
        n_lesions_tc=n_tc,
        n_lesions_et=n_et,
        multifocal=n_tc > 1,
        location=location,
    )


__all__ = [
    "ED_LABEL",
    "ET_LABEL",
    "NCR_LABEL",
    "RANO_MAX_TARGETS",
    "RANO_MIN_DIAMETER_MM",
    "REGIONS",
    "Measurements",
    "RanoLesion",
    "RanoResult",
    "RegionMeasurement",
    "bidimensional",
    "count_components",
    "measure",
    "measure_volumes",
    "rano",
    "region_mask",
    "to_axial",
]
