# (SimpleITK ships no type information.)
"""The MNI ICBM152 2009a brain template and its brain mask, for production and the phantom.

The template is the MNI ICBM152 2009a nonlinear symmetric average brain (T1 and grey/white
matter probability maps at 1 mm) that the ``nilearn`` wheel bundles under
``nilearn/datasets/data/``; nothing is downloaded at run time. The files are RAS-oriented NIfTI;
everything here is converted to DICOM/ITK patient coordinates (LPS) with an identity direction:
array axis order is ``(z, y, x)`` as :func:`SimpleITK.GetArrayFromImage` returns it, index ``x``
increases towards the patient's left, ``y`` towards posterior, ``z`` towards superior.

Brain extraction (:mod:`rgcds.imaging.brain`) registers :func:`template_t1` and
:func:`template_brain_mask` to the subject; the phantom (:mod:`rgcds.phantom`) builds its
anatomy on the same maps.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

_TEMPLATE_FILES: dict[str, str] = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}

#: The full-head (not skull-stripped) T1 and T2 of the same template, on the same 1 mm grid,
#: as the ``raidionicsrads`` wheel bundles them (BSD-2-Clause, SINTEF).
_FULL_HEAD_DIR = "raidionicsrads/Atlases/mni_icbm152_nlin_sym_09a"
_FULL_HEAD_FILES: dict[str, str] = {
    "head_t1": "mni_icbm152_t1_tal_nlin_sym_09a.nii",
    "head_t2": "mni_icbm152_t2_tal_nlin_sym_09a.nii",
    "head_mask": "mni_icbm152_t1_tal_nlin_sym_09a_mask.nii",
}


@dataclass(frozen=True)
class Grid:
    """A regular grid with identity direction in LPS patient coordinates.

    Attributes
    ----------
    origin : tuple of float
        Physical position (mm) of voxel index ``(0, 0, 0)`` as ``(x, y, z)``.
    spacing : float
        Isotropic voxel size in mm.
    shape : tuple of int
        Array shape ``(z, y, x)``.
    """

    origin: tuple[float, float, float]
    spacing: float
    shape: tuple[int, int, int]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (cm3)."""
        return float(self.spacing**3 / 1000.0)

    def axes(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Return the physical coordinates along each axis, broadcastable to ``shape``.

        Returns
        -------
        tuple of numpy.ndarray
            ``(z, y, x)`` coordinate arrays of shapes ``(nz,1,1)``, ``(1,ny,1)``, ``(1,1,nx)``.
        """
        nz, ny, nx = self.shape
        z = (self.origin[2] + self.spacing * np.arange(nz, dtype=np.float32)).reshape(nz, 1, 1)
        y = (self.origin[1] + self.spacing * np.arange(ny, dtype=np.float32)).reshape(1, ny, 1)
        x = (self.origin[0] + self.spacing * np.arange(nx, dtype=np.float32)).reshape(1, 1, nx)
        return z.astype(np.float32), y.astype(np.float32), x.astype(np.float32)

    def to_image(self, array: npt.NDArray[np.generic]) -> sitk.Image:
        """Wrap a ``(z, y, x)`` array as a SimpleITK image on this grid.

        Parameters
        ----------
        array : numpy.ndarray
            Array with shape equal to :attr:`shape`.

        Returns
        -------
        SimpleITK.Image
            Image with this grid's origin and spacing and identity direction.
        """
        if tuple(array.shape) != self.shape:
            raise ValueError(f"Array shape {array.shape} does not match grid shape {self.shape}.")
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        image.SetOrigin(self.origin)
        image.SetSpacing((self.spacing,) * 3)
        image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        return image


def _template_file(name: str) -> Path:
    """Locate a bundled template file inside the installed nilearn package.

    ``importlib.resources.files("nilearn.datasets")`` would import ``nilearn.datasets`` (and
    scikit-learn with it, about 3 s); the package directory found by
    :func:`importlib.util.find_spec` is the same place without the import. The resources API is
    the fallback for packages that are not plain directories.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "datasets" / "data" / _TEMPLATE_FILES[name]
            if candidate.is_file():
                return candidate
    ref = resources.files("nilearn.datasets") / "data" / _TEMPLATE_FILES[name]
    with resources.as_file(ref) as path:
        return Path(path)


def _full_head_file(name: str) -> Path:
    """Locate a full-head template file in the installed ``raidionicsrads`` distribution.

    Found through the distribution's metadata, without importing the package (its import pulls
    in a segmentation toolkit rgcds does not use).
    """
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        located = distribution("raidionicsrads").locate_file(
            f"{_FULL_HEAD_DIR}/{_FULL_HEAD_FILES[name]}"
        )
    except PackageNotFoundError as exc:
        raise FileNotFoundError(
            "The full-head MNI ICBM152 2009a template comes from the raidionicsrads wheel, "
            "which is not installed (make install installs it)."
        ) from exc
    path = Path(str(located))
    if not path.is_file():
        raise FileNotFoundError(f"raidionicsrads has no {_FULL_HEAD_FILES[name]} at {path}.")
    return path


def _load_lps(name: str) -> tuple[FloatArray, tuple[float, float, float]]:
    """Load one template file as an LPS ``(z, y, x)`` float32 array and its origin."""
    source = _full_head_file(name) if name in _FULL_HEAD_FILES else _template_file(name)
    img = nib.as_closest_canonical(nib.load(source))  # type: ignore[no-untyped-call]
    data = np.asarray(img.dataobj, dtype=np.float32)
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3]))):
        raise ValueError(f"Template {name} is not axis-aligned; cannot convert it.")
    sp = np.diag(affine)[:3]
    ni, nj, _ = data.shape
    # RAS+ -> LPS: flip the i (R->L) and j (A->P) axes so that the direction stays identity.
    data = data[::-1, ::-1, :]
    origin = (
        float(-(affine[0, 3] + (ni - 1) * sp[0])),
        float(-(affine[1, 3] + (nj - 1) * sp[1])),
        float(affine[2, 3]),
    )
    return np.ascontiguousarray(data.transpose(2, 1, 0)), origin


@functools.lru_cache(maxsize=6)
def _template_array(name: str) -> tuple[FloatArray, tuple[float, float, float]]:
    """Return one template map (probabilities scaled to 0-1 for GM/WM) and its origin."""
    data, origin = _load_lps(name)
    if name in ("gm", "wm") and data.max() > 1.5:
        data = data / np.float32(255.0)
    return data, origin


def signed_distance(mask: BoolArray, spacing: float) -> FloatArray:
    """Signed Euclidean distance (mm) to the mask boundary: positive outside, negative inside.

    Uses SimpleITK's multi-threaded Maurer distance map (distances between voxel centres).
    """
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing((spacing,) * 3)
    dist = sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.GetArrayFromImage(dist).astype(np.float32, copy=False)


def _closing_mm(mask: BoolArray, radius_mm: float, spacing: float) -> BoolArray:
    """Morphological closing with a ball, via two distance transforms (fast)."""
    dilated = signed_distance(mask, spacing) <= radius_mm
    # Maurer distances are 0 on the inner boundary voxels: one voxel less than the EDT.
    return np.asarray(signed_distance(dilated, spacing) < -(radius_mm - spacing) + 1e-3)


def fill_holes(mask: BoolArray) -> BoolArray:
    """Fill enclosed background (3D, 6-connected background), faster than scipy's version."""
    background, _ = ndimage.label(~mask)
    faces = np.concatenate(
        [
            background[0].ravel(),
            background[-1].ravel(),
            background[:, 0].ravel(),
            background[:, -1].ravel(),
            background[:, :, 0].ravel(),
            background[:, :, -1].ravel(),
        ]
    )
    outside = np.isin(background, np.unique(faces[faces > 0]))
    return np.asarray(~outside, dtype=bool)


def _mask_from_tissue(tissue: FloatArray, spacing: float) -> BoolArray:
    """Brain mask from GM+WM: threshold, close (3 mm), fill holes, keep the largest part."""
    mask = _closing_mm(tissue > 0.3, 3.0, spacing)
    mask = fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    return np.asarray(mask, dtype=bool)


def _shape3(array: npt.NDArray[np.generic]) -> tuple[int, int, int]:
    return (int(array.shape[0]), int(array.shape[1]), int(array.shape[2]))


@functools.lru_cache(maxsize=1)
def _template_t1_image() -> sitk.Image:
    t1, origin = _template_array("t1")
    return Grid(origin, 1.0, _shape3(t1)).to_image(t1)


@functools.lru_cache(maxsize=1)
def _template_mask_image() -> sitk.Image:
    gm, origin = _template_array("gm")
    wm, _ = _template_array("wm")
    mask = _mask_from_tissue(gm + wm, 1.0)
    return Grid(origin, 1.0, _shape3(gm)).to_image(mask.astype(np.uint8))


@functools.lru_cache(maxsize=1)
def _template_gm_image() -> sitk.Image:
    gm, origin = _template_array("gm")
    return Grid(origin, 1.0, _shape3(gm)).to_image(gm.astype(np.float32))


@functools.lru_cache(maxsize=1)
def _head_t1_image() -> sitk.Image:
    t1, origin = _template_array("head_t1")
    return Grid(origin, 1.0, _shape3(t1)).to_image(t1)


def template_head_t1() -> sitk.Image:
    """Return the full-head (scalp, skull, face, upper neck) T1 of the same template.

    Same 1 mm grid as :func:`template_t1`, so :func:`template_brain_mask` is its brain mask.
    Cached; each call returns a copy.

    Returns
    -------
    SimpleITK.Image
        Float32 image, intensities as in the raidionicsrads file (white matter about 84).
    """
    return sitk.Image(_head_t1_image())


def template_t1() -> sitk.Image:
    """Return the MNI ICBM152 2009a T1 template (1 mm, LPS, identity direction).

    The template is skull-stripped (as nilearn ships it). The image is loaded once and cached;
    each call returns a copy, so callers may modify it.

    Returns
    -------
    SimpleITK.Image
        Float32 image, intensities 0-255 as in the template file.
    """
    return sitk.Image(_template_t1_image())


def template_brain_mask() -> sitk.Image:
    """Return the brain mask of :func:`template_t1` on the same grid.

    Derived from the template's GM and WM probability maps: ``GM + WM > 0.3``, closed with a
    3 mm ball and hole-filled, so that ventricles and enclosed CSF are inside. Cached; each call
    returns a copy.

    Returns
    -------
    SimpleITK.Image
        UInt8 image, 1 inside the brain, 0 outside.
    """
    return sitk.Image(_template_mask_image())


def template_grey_matter() -> sitk.Image:
    """Return the template's grey-matter probability map (0-1, float32) on its grid.

    The ICBM152 2009a GM map, cortex and deep grey nuclei; with the subject-to-template
    transform of brain extraction it becomes a grey-matter prior on the subject (the PET
    BTV's normal-grey-matter rule, :mod:`rgcds.analysis.btv`). Cached; each call returns a
    copy.
    """
    return sitk.Image(_template_gm_image())


__all__ = [
    "BoolArray",
    "FloatArray",
    "Grid",
    "fill_holes",
    "signed_distance",
    "template_brain_mask",
    "template_grey_matter",
    "template_head_t1",
    "template_t1",
]
