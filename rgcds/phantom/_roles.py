# (SimpleITK ships no type information.)
"""Write one series role of a phantom study: resample a template-space image into the series
grid, add the acquisition effects, encode it as DICOM.

Shared by the pre-operative study (:mod:`rgcds.phantom.study`) and the post-operative studies
(:mod:`rgcds.phantom.postop_study`), together with the series folder names and the NIfTI
images of the ground truth on a series grid.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage

from rgcds.phantom import _dicom, _dicom_petct
from rgcds.phantom._series import PROTOCOLS, Pose, SeriesGeometry, resample
from rgcds.phantom._template import FloatArray
from rgcds.phantom.simulate import NOISE_FRACTION, bias_field, rician


def folder_name(number: int, description: str) -> str:
    """Series folder name: ``<NNN>_<SeriesDescription>`` with unsafe characters as ``_``."""
    return f"{number:03d}_" + re.sub(r"[^A-Za-z0-9_+-]+", "_", description)


def _scanner_points(geometry: SeriesGeometry) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Physical (z, y, x) coordinates of every voxel of a series grid."""
    cols, rows, slices = geometry.size
    m = geometry.matrix
    k = np.arange(slices, dtype=np.float32).reshape(slices, 1, 1) * geometry.spacing[2]
    j = np.arange(rows, dtype=np.float32).reshape(1, rows, 1) * geometry.spacing[1]
    i = np.arange(cols, dtype=np.float32).reshape(1, 1, cols) * geometry.spacing[0]
    out = []
    for axis in (2, 1, 0):
        out.append(
            np.float32(geometry.origin[axis])
            + np.float32(m[axis, 0]) * i
            + np.float32(m[axis, 1]) * j
            + np.float32(m[axis, 2]) * k
        )
    return out[0], out[1], out[2]


def image_on(geometry: SeriesGeometry, array: npt.NDArray[np.generic]) -> sitk.Image:
    """``array`` as a SimpleITK image with the geometry of the series grid."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    ref = geometry.reference()
    image.SetOrigin(ref.GetOrigin())
    image.SetSpacing(ref.GetSpacing())
    image.SetDirection(ref.GetDirection())
    return image


def _window(stored: npt.NDArray[np.uint16], floor: float) -> tuple[float, float]:
    values = stored[stored > floor]
    if values.size == 0:
        return 2048.0, 4096.0
    lo, hi = np.percentile(values, [1.0, 99.5])
    return float(round((lo + hi) / 2.0)), float(round(max(hi - lo, 1.0)))


def write_mr_role(
    folder: Path,
    info: _dicom.StudyInfo,
    role: str,
    geometry: SeriesGeometry,
    pose: Pose,
    source: sitk.Image,
    sim_spacing: float,
    rng_noise: np.random.Generator,
) -> tuple[str, int]:
    """Resample a template-space MR image into its series grid, add bias and noise, write it.

    Parameters
    ----------
    folder : pathlib.Path
        Series folder.
    info : StudyInfo
        Patient/study attributes.
    role : str
        ``"T1"``, ``"T2"``, ``"FLAIR"`` or ``"T1c"``.
    geometry : SeriesGeometry
        Series grid.
    pose : Pose
        Template -> scanner pose of the series.
    source : SimpleITK.Image
        Clean template-space image.
    sim_spacing : float
        Simulation grid spacing (mm).
    rng_noise : numpy.random.Generator
        Noise stream (bias field, then Rician noise).

    Returns
    -------
    tuple
        SeriesInstanceUID and number of instances.
    """
    protocol = PROTOCOLS[role]
    params = _dicom.MR_PARAMETERS[role]
    thick = protocol.acquisition_type == "2D"
    signal = resample(source, geometry, pose, sim_spacing=sim_spacing, thick=thick)
    signal = signal * bias_field(rng_noise, _scanner_points(geometry), 0.08)
    signal = rician(rng_noise, signal, NOISE_FRACTION[role])
    stored = np.clip(np.rint(signal * params.gain), 0, 4095).astype(np.uint16)
    series_time = info.study_start + dt.timedelta(minutes=protocol.minutes)
    uid, n = _dicom.write_mr_series(
        folder, info, protocol, geometry, stored, series_time, _window(stored, 0.15 * params.gain)
    )
    return str(uid), n


def write_pet_role(
    folder: Path,
    info: _dicom.StudyInfo,
    geometry: SeriesGeometry,
    pose: Pose,
    source: sitk.Image,
    sim_spacing: float,
    rng_noise: np.random.Generator,
    rng_dicom: np.random.Generator,
) -> tuple[str, int, FloatArray, FloatArray]:
    """Resample the template-space SUV into the PET grid, add noise, write Bq/ml.

    The injection is 45-60 min after ``info.study_start`` and the scan 10-20 min later.

    Parameters
    ----------
    folder : pathlib.Path
        Series folder.
    info : StudyInfo
        Patient/study attributes (weight for SUVbw, PET frame of reference).
    geometry : SeriesGeometry
        PET grid.
    pose : Pose
        Template -> scanner pose of the PET.
    source : SimpleITK.Image
        Noise-free template-space SUV.
    sim_spacing : float
        Simulation grid spacing (mm).
    rng_noise : numpy.random.Generator
        Noise stream.
    rng_dicom : numpy.random.Generator
        Stream for dose and timing.

    Returns
    -------
    tuple
        SeriesInstanceUID, number of instances, the written (noisy) SUV and the noise-free
        SUV on the PET grid.
    """
    protocol = PROTOCOLS["PET"]
    signal = resample(source, geometry, pose, sim_spacing=sim_spacing, thick=False)
    noise = rng_noise.standard_normal(signal.shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, 0.6) * np.float32(1.0 / 0.35)
    suv = np.clip(signal + 0.05 * np.sqrt(signal) * noise, 0.0, None).astype(np.float32)
    injection = info.study_start + dt.timedelta(minutes=float(rng_dicom.uniform(45, 60)))
    injection = injection.replace(microsecond=0)
    dose = _dicom_petct.PetDose(
        injected_bq=float(round(np.clip(rng_dicom.normal(550e6, 60e6), 370e6, 740e6))),
        injection_time=injection,
        series_time=injection + dt.timedelta(minutes=int(rng_dicom.integers(10, 21))),
        frame_duration_s=1200.0,
    )
    bq_per_suv = dose.injected_bq * dose.decay_to_series_start / (info.weight_kg * 1000.0)
    bqml = (suv * np.float32(bq_per_suv)).astype(np.float32)
    uid, n, _ = _dicom_petct.write_pet_series(
        folder, info, protocol, geometry, bqml, dose, (2.5 * bq_per_suv, 5.0 * bq_per_suv)
    )
    return str(uid), n, suv, signal
