"""Four-channel NIfTI cases for the MONAI bundle agreement test and bench (SimpleITK writes them).

Three geometries that take different paths through the bundle's transforms: an axial LPS
volume (``Orientationd(RAS)`` flips two axes, ``Spacingd`` resamples it), thick slices (4 mm:
resampling along z lands on input voxel centres, where MONAI's float64 rounding leaves
residues that its non-zero normalisation counts), and an oblique one (rotated 12 degrees and
tilted 6: ``Spacingd`` keeps the rotation, so every sample is off-grid).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tests.peers.nnunet_cases import make_case


def _rotation(degrees: float) -> tuple[float, ...]:
    a = np.deg2rad(degrees)
    about_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    b = a / 2
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return tuple(float(v) for v in (about_z @ about_x).ravel())


#: name -> (seed, shape Z, Y, X, spacing Z, Y, X in mm, ITK direction)
CASES: dict[str, tuple[int, tuple[int, int, int], tuple[float, float, float],
                       tuple[float, ...]]] = {
    "axial_lps": (7, (40, 44, 40), (1.2, 1.2, 1.2), tuple(np.eye(3).ravel())),
    "thick_slices": (8, (12, 60, 56), (4.0, 0.9, 0.9), tuple(np.eye(3).ravel())),
    "oblique": (9, (44, 40, 36), (1.0, 1.3, 1.1), _rotation(12.0)),
}


def write_cases(root: Path, cases: dict[str, tuple[int, tuple[int, int, int],
                                                   tuple[float, float, float],
                                                   tuple[float, ...]]] = CASES) -> Path:
    """Write ``root/<case>/c0..c3.nii.gz`` (channels T1c, T1, T2, FLAIR); return ``root``."""
    for name, (seed, shape, spacing, direction) in cases.items():
        image, _ = make_case(seed, shape, spacing)
        (root / name).mkdir(parents=True, exist_ok=True)
        for c in range(image.shape[0]):
            img = sitk.GetImageFromArray(image[c])
            img.SetSpacing(tuple(reversed(spacing)))
            img.SetDirection(direction)
            img.SetOrigin((10.0, -20.0, 5.0))
            sitk.WriteImage(img, str(root / name / f"c{c}.nii.gz"))
    return root


def read_case(folder: Path) -> tuple[np.ndarray, sitk.Image, np.ndarray]:
    """``(volume (4, Z, Y, X), first channel's image, the RAS affine nibabel reads)``."""
    import nibabel as nib

    images = [sitk.ReadImage(str(folder / f"c{c}.nii.gz")) for c in range(4)]
    volume = np.stack([sitk.GetArrayFromImage(i) for i in images]).astype(np.float32)
    return volume, images[0], np.asarray(nib.load(str(folder / "c0.nii.gz")).affine)
