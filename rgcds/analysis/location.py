# SimpleITK ships no type hints: its calls are untyped and return Any.
"""Tumour location: hemisphere, lobes and midline crossing from an atlas in MNI space.

Coordinates follow SimpleITK: physical points are LPS millimetres (x grows to the patient's
left, y to posterior, z to superior). MNI coordinates reported to people are RAS
(``x_ras = -x_lps``, ``y_ras = -y_lps``): negative x is the left hemisphere.

Atlases, in order of preference (:func:`load_lobe_atlas`):

1. an explicit atlas file (with a ``Label -> lobe, side`` table);
2. the lobe atlas of the ``raidionicsrads`` wheel (``Atlases/mni_icbm152_nlin_sym_09a/
   reduced_lobes_brain.nii.gz``, BSD 2-Clause, SINTEF), when that distribution is installed
   (it is used as data only: none of its code is imported);
3. an approximate lobe map derived from MNI coordinates on the nilearn MNI152 2009a template
   brain mask (see :func:`coordinate_lobe_atlas`; boundaries are documented approximations,
   not anatomy).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import structlog
from numpy.typing import NDArray

from rgcds.exceptions import RgcdsError

logger = structlog.get_logger(__name__)

PointTransform = Callable[[NDArray[np.float64]], NDArray[np.float64]]

#: Labels of the coordinate-derived atlas; side is taken from x.
_COORD_LOBES: dict[int, str] = {
    1: "frontal",
    2: "parietal",
    3: "temporal",
    4: "occipital",
    5: "cerebellum",
    6: "brainstem",
}

#: Structures of the raidionics lobe atlas grouped into coarser names.
_RAIDIONICS_GROUPS: dict[str, str] = {
    "brain_stem": "brainstem",
    "lateral ventricle": "ventricle",
    "3rd ventricle": "ventricle",
    "4th ventricle": "ventricle",
    "extracerebral CSF": "extracerebral",
    "caudate": "deep grey matter",
    "putamen": "deep grey matter",
    "thalamus": "deep grey matter",
    "subthalamic_nucleus": "deep grey matter",
    "globus_pallidus": "deep grey matter",
    "fornix": "deep grey matter",
}

#: A lobe is listed in a location when at least this fraction of the tumour lies in it.
MIN_LOBE_FRACTION = 0.05
#: Midline crossing: this fraction of the region on the smaller side, beyond the margin.
MIDLINE_MIN_FRACTION = 0.02
#: Half-width (mm) of the band around the mid-sagittal plane that counts as midline.
MIDLINE_MARGIN_MM = 2.0


class AtlasError(RgcdsError, ValueError):
    """A lobe atlas file or its label table cannot be used."""


@dataclass(frozen=True)
class LobeAtlas:
    """A label image in MNI space with a name for each label.

    Attributes
    ----------
    image
        Integer label image in MNI physical space (LPS mm).
    names
        Label value -> structure name (``frontal``, ``temporal``, ...).
    source
        Where the atlas came from, for reports and docs.
    approximate
        True for the coordinate-derived atlas.
    """

    image: sitk.Image = field(repr=False)
    names: Mapping[int, str]
    source: str
    approximate: bool


@dataclass(frozen=True)
class Location:
    """Where a tumour lies.

    Attributes
    ----------
    hemisphere
        ``left``, ``right`` or ``bilateral`` (both sides hold at least 2 % of the region
        beyond the midline band).
    midline_crossing
        True when the region extends across the mid-sagittal plane.
    lobes
        Structures holding at least 5 % of the region, largest share first.
    lobe_fractions
        ``(name, fraction)`` for every structure the region touches, largest first.
    left_fraction
        Share of the region left of the mid-sagittal plane.
    centroid_mni_ras_mm
        Region centroid in MNI RAS millimetres.
    atlas_source
        The atlas used (``approximate`` atlases say so).
    """

    hemisphere: str
    midline_crossing: bool
    lobes: tuple[str, ...]
    lobe_fractions: tuple[tuple[str, float], ...]
    left_fraction: float
    centroid_mni_ras_mm: tuple[float, float, float]
    atlas_source: str


def _sitk_from_ras_affine(
    array_xyz: NDArray[np.generic], affine: NDArray[np.float64]
) -> sitk.Image:
    # nibabel array (i, j, k) with a RAS affine -> SimpleITK image in LPS.
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array_xyz, (2, 1, 0))))
    flip = np.diag([-1.0, -1.0, 1.0])
    lin = flip @ affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (lin / spacing).ravel()])
    image.SetOrigin([float(v) for v in flip @ affine[:3, 3]])
    return image


def _central_sulcus_y_ras(z: NDArray[np.float64]) -> NDArray[np.float64]:
    # Approximate y (RAS) of the central sulcus: slants back with height
    # (about -10 mm at z = 15, -30 mm at z = 70).
    return -5.0 - 0.35 * np.clip(z, 0.0, None)


def _sylvian_z_ras(y: NDArray[np.float64]) -> NDArray[np.float64]:
    # Approximate upper edge (z, RAS) of the temporal lobe: rises posteriorly
    # (z = 0 at y = 0, z = 16 at y = -40).
    return 0.4 * np.clip(-y, 0.0, None)


@functools.lru_cache(maxsize=2)
def coordinate_lobe_atlas(resolution_mm: int = 2) -> LobeAtlas:
    """Approximate lobes from MNI coordinates on the nilearn MNI152 2009a brain mask.

    Rules in MNI RAS millimetres, applied in this order inside the template brain mask:

    * brainstem: ``|x| < 12``, ``-45 < y < -10``, ``z < -10``;
    * cerebellum: ``y < -40`` and ``z < -20``;
    * occipital: ``y < -70``;
    * temporal: below a Sylvian line rising posteriorly, ``z < 0.4 * max(-y, 0)``, with
      ``|x| > 10`` and ``y < 25``;
    * frontal: anterior to a slanted central sulcus, ``y > -5 - 0.35 * max(z, 0)``;
    * parietal: everything else.

    The constants were tuned on a small grid to agree with the raidionicsrads MNI lobe atlas
    (87 % of labelled brain voxels at 2 mm: frontal 0.89, parietal 0.84, temporal 0.87,
    occipital 0.89, cerebellum 0.84, brainstem 0.55 recall). These are approximations for a
    coarse report line, not anatomy: deep grey matter, the insula and the corpus callosum are
    folded into the surrounding lobe.

    Parameters
    ----------
    resolution_mm
        Grid of the nilearn template brain mask (1 or 2 mm).

    Returns
    -------
    LobeAtlas
        With ``approximate=True``.
    """
    from nilearn import datasets

    mask_img = datasets.load_mni152_brain_mask(resolution=resolution_mm)
    mask = np.asarray(mask_img.get_fdata()) > 0.5
    affine = np.asarray(mask_img.affine, dtype=float)
    i, j, k = np.indices(mask.shape)
    x = affine[0, 0] * i + affine[0, 1] * j + affine[0, 2] * k + affine[0, 3]
    y = affine[1, 0] * i + affine[1, 1] * j + affine[1, 2] * k + affine[1, 3]
    z = affine[2, 0] * i + affine[2, 1] * j + affine[2, 2] * k + affine[2, 3]
    lobes = np.where(y > _central_sulcus_y_ras(z), 1, 2)
    lobes = np.where((z < _sylvian_z_ras(y)) & (np.abs(x) > 10) & (y < 25), 3, lobes)
    lobes = np.where(y < -70, 4, lobes)
    lobes = np.where((y < -40) & (z < -20), 5, lobes)
    lobes = np.where((np.abs(x) < 12) & (y > -45) & (y < -10) & (z < -10), 6, lobes)
    lobes = np.where(mask, lobes, 0).astype(np.uint8)
    image = _sitk_from_ras_affine(lobes, affine)
    return LobeAtlas(
        image=image,
        names=dict(_COORD_LOBES),
        source=(
            "approximate lobes from MNI coordinates "
            f"(nilearn MNI152 2009a mask, {resolution_mm} mm)"
        ),
        approximate=True,
    )


def _raidionics_atlas_dir() -> Path | None:
    # Locate the installed raidionicsrads distribution without importing it (its
    # dependencies are not installed; only its data is used).
    try:
        spec = importlib.util.find_spec("raidionicsrads")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "Atlases" / "mni_icbm152_nlin_sym_09a"
        if (folder / "reduced_lobes_brain.nii.gz").is_file():
            return folder
    return None


def read_lobe_atlas(image_path: Path, table_path: Path) -> LobeAtlas:
    """Read a lobe atlas image and its ``Region,Laterality,...,Label`` CSV table.

    Structure names are lower-cased; ventricles and deep nuclei are grouped
    (``ventricle``, ``deep grey matter``); laterality is not kept in the name (the
    hemisphere comes from the coordinates).

    Raises
    ------
    AtlasError
        If either file is missing or the table has no ``Region`` and ``Label`` columns.
    """
    if not image_path.is_file() or not table_path.is_file():
        raise AtlasError(
            f"The lobe atlas {image_path} or its table {table_path} does not exist; pass "
            "existing files or use load_lobe_atlas() without arguments."
        )
    names: dict[int, str] = {}
    with table_path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            region = (row.get("Region") or "").strip()
            label = (row.get("Label") or "").strip()
            if not region or not label:
                continue
            names[int(float(label))] = _RAIDIONICS_GROUPS.get(region, region.lower())
    if not names:
        raise AtlasError(f"The atlas table {table_path} has no Region/Label rows.")
    image = sitk.Cast(sitk.ReadImage(str(image_path)), sitk.sitkUInt16)
    return LobeAtlas(image=image, names=names, source=str(image_path.name), approximate=False)


def load_lobe_atlas(image_path: Path | None = None, table_path: Path | None = None) -> LobeAtlas:
    """Load the best lobe atlas available (see the module docstring for the order).

    Parameters
    ----------
    image_path, table_path
        An explicit atlas; both or neither.

    Returns
    -------
    LobeAtlas
    """
    if image_path is not None and table_path is not None:
        return read_lobe_atlas(image_path, table_path)
    folder = _raidionics_atlas_dir()
    if folder is not None:
        atlas = read_lobe_atlas(
            folder / "reduced_lobes_brain.nii.gz", folder / "lobe_labels_description.csv"
        )
        return LobeAtlas(
            image=atlas.image,
            names=atlas.names,
            source="raidionicsrads MNI ICBM152 2009a lobe atlas (BSD 2-Clause, SINTEF)",
            approximate=False,
        )
    return coordinate_lobe_atlas()


def _points_of(labels: sitk.Image, region_labels: tuple[int, ...]) -> NDArray[np.float64]:
    array = sitk.GetArrayViewFromImage(labels)
    zyx = np.argwhere(np.isin(array, region_labels))
    if zyx.size == 0:
        return np.zeros((0, 3))
    ijk = zyx[:, ::-1].astype(float)
    spacing = np.asarray(labels.GetSpacing(), dtype=float)
    direction = np.asarray(labels.GetDirection(), dtype=float).reshape(3, 3)
    origin = np.asarray(labels.GetOrigin(), dtype=float)
    result: NDArray[np.float64] = (ijk * spacing) @ direction.T + origin
    return result


def _apply(
    to_mni: sitk.Transform | PointTransform | None, points: NDArray[np.float64]
) -> NDArray[np.float64]:
    if to_mni is None:
        return points
    if isinstance(to_mni, sitk.Transform):
        return np.asarray([to_mni.TransformPoint(tuple(float(c) for c in p)) for p in points])
    mapped = np.asarray(to_mni(points), dtype=float)
    if mapped.shape != points.shape:
        raise ValueError(
            f"The transform to MNI returned shape {mapped.shape} for {points.shape} points; "
            "it must map an (N, 3) array of LPS points to an (N, 3) array."
        )
    return mapped


def _sample(atlas: sitk.Image, points: NDArray[np.float64]) -> NDArray[np.int64]:
    spacing = np.asarray(atlas.GetSpacing(), dtype=float)
    direction = np.asarray(atlas.GetDirection(), dtype=float).reshape(3, 3)
    origin = np.asarray(atlas.GetOrigin(), dtype=float)
    ijk = np.rint(((points - origin) @ direction) / spacing).astype(int)
    size = np.asarray(atlas.GetSize())
    inside = np.all((ijk >= 0) & (ijk < size), axis=1)
    array = sitk.GetArrayViewFromImage(atlas)
    out = np.zeros(len(points), dtype=np.int64)
    idx = ijk[inside]
    out[inside] = array[idx[:, 2], idx[:, 1], idx[:, 0]]
    return out


def locate(
    labels: sitk.Image,
    to_mni: sitk.Transform | PointTransform | None,
    *,
    atlas: LobeAtlas | None = None,
    region_labels: tuple[int, ...] = (1, 2, 3),
) -> Location:
    """Hemisphere, lobes and midline crossing of a tumour region.

    Parameters
    ----------
    labels
        BraTS label map, on the patient grid (with ``to_mni``) or already in MNI space
        (``to_mni=None``, e.g. phantoms in template space).
    to_mni
        Maps patient physical points (LPS mm) to MNI physical points (LPS mm): a SimpleITK
        transform **in that direction** (a registration with the MNI template as the fixed
        image yields the opposite one: pass its ``GetInverse()``) or a callable on an
        ``(N, 3)`` array. ``None`` when ``labels`` is in MNI space.
    atlas
        The lobe atlas; :func:`load_lobe_atlas` by default.
    region_labels
        Labels of the region to locate; the whole tumour by default.

    Returns
    -------
    Location

    Raises
    ------
    ValueError
        If the region is empty.
    """
    points = _points_of(labels, region_labels)
    if len(points) == 0:
        raise ValueError("The tumour region to locate is empty; there is nothing to place.")
    mni = _apply(to_mni, points)
    atlas = atlas or load_lobe_atlas()
    x_ras = -mni[:, 0]
    left = x_ras < 0
    left_fraction = float(np.mean(left))
    beyond_left = float(np.mean(x_ras < -MIDLINE_MARGIN_MM))
    beyond_right = float(np.mean(x_ras > MIDLINE_MARGIN_MM))
    crossing = min(beyond_left, beyond_right) >= MIDLINE_MIN_FRACTION
    if crossing:
        hemisphere = "bilateral"
    else:
        hemisphere = "left" if left_fraction >= 0.5 else "right"
    values = _sample(atlas.image, mni)
    named = [atlas.names[int(v)] for v in values if int(v) in atlas.names]
    fractions: dict[str, float] = {}
    if named:
        for name in named:
            fractions[name] = fractions.get(name, 0.0) + 1.0
        for key in fractions:
            fractions[key] /= len(named)
    ordered = tuple(sorted(((k, round(v, 4)) for k, v in fractions.items()), key=lambda kv: -kv[1]))
    lobes = tuple(name for name, frac in ordered if frac >= MIN_LOBE_FRACTION)
    centroid = mni.mean(axis=0)
    return Location(
        hemisphere=hemisphere,
        midline_crossing=crossing,
        lobes=lobes,
        lobe_fractions=ordered,
        left_fraction=round(left_fraction, 4),
        centroid_mni_ras_mm=(
            round(float(-centroid[0]), 2),
            round(float(-centroid[1]), 2),
            round(float(centroid[2]), 2),
        ),
        atlas_source=atlas.source + (" [approximate]" if atlas.approximate else ""),
    )


__all__ = [
    "MIDLINE_MARGIN_MM",
    "MIDLINE_MIN_FRACTION",
    "MIN_LOBE_FRACTION",
    "AtlasError",
    "LobeAtlas",
    "Location",
    "PointTransform",
    "coordinate_lobe_atlas",
    "load_lobe_atlas",
    "locate",
    "read_lobe_atlas",
]
