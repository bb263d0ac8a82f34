# (SimpleITK ships no type information.)
"""Write a complete phantom study: DICOM series plus ground truth.

Layout under ``out_dir``::

    dicom/<NNN>_<SeriesDescription>/IM0001.dcm ...   one folder per series
    truth/labels_t1c_native.nii.gz   BraTS labels on the T1c DICOM grid (uint8)
    truth/labels_template.nii.gz     BraTS labels on the simulation grid (template space)
    truth/brain_mask_t1c_native.nii.gz  the subject's brain mask on the T1c DICOM grid (uint8)
    truth/pet_suv_native.nii.gz      simulated SUVbw on the PET DICOM grid (float32)
    truth/clinical.json              clinical variables, markers, outcome, tumour parameters
    truth/transforms/<role>_template_to_scanner.tfm   head pose of each series

Frames of reference: the four MR series share one FrameOfReferenceUID (one MR session; the
head moves slightly between series, as in real life, so their grids differ and the anatomy
is not exactly aligned). The PET series has its own FrameOfReferenceUID (another scanner and
session, with a different head position and table height). Registration is therefore
required to fuse PET with MR and advisable between MR series.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import structlog

from rgcds.phantom import _dicom
from rgcds.phantom._roles import folder_name, image_on, write_mr_role, write_pet_role
from rgcds.phantom._series import (
    PROTOCOLS,
    draw_poses,
    resample,
    series_geometry,
)
from rgcds.phantom.clinical import ClinicalVariables
from rgcds.phantom.simulate import (
    MR_ROLES,
    check_args,
    rng_stream,
    simulate_clean,
)

logger = structlog.get_logger(__name__)

_STREAM_GEOMETRY = 6
_STREAM_DICOM = 7
_STREAM_NOISE = 8


@dataclass(frozen=True)
class PhantomSeries:
    """One written series.

    Attributes
    ----------
    role : str
        ``"T1"``, ``"T1c"``, ``"T2"``, ``"FLAIR"`` or ``"PET"``.
    series_instance_uid : str
        SeriesInstanceUID.
    series_description : str
        SeriesDescription (vendor-like protocol name).
    directory : pathlib.Path
        Folder holding the series' ``.dcm`` files.
    n_instances : int
        Number of instances (slices).
    """

    role: str
    series_instance_uid: str
    series_description: str
    directory: Path
    n_instances: int


@dataclass(frozen=True)
class PhantomStudy:
    """A written phantom study and its ground truth.

    Attributes
    ----------
    out_dir : pathlib.Path
        Root folder.
    seed : int
        Phantom seed.
    size : str
        ``"small"`` or ``"full"``.
    study_instance_uid : str
        StudyInstanceUID shared by all series.
    patient_name : str
        Synthetic PatientName, ``PHANTOM^GBM<seed>``.
    patient_id : str
        Synthetic PatientID, ``PHGBM-<seed:06d>``.
    series : tuple of PhantomSeries
        Series in acquisition order (T1, T2, FLAIR, T1c, then PET if written).
    labels_native_path : pathlib.Path
        BraTS labels on the T1c DICOM grid.
    labels_template_path : pathlib.Path
        BraTS labels in template space.
    clinical_json_path : pathlib.Path
        Clinical variables as JSON.
    pet_suv_native_path : pathlib.Path or None
        Simulated SUVbw on the PET grid (None without PET).
    transforms_dir : pathlib.Path
        Template -> scanner rigid transforms (``.tfm``), one per series role.
    clinical : ClinicalVariables
        The clinical variables.
    brain_mask_native_path : pathlib.Path or None
        The subject's brain mask (tumour included) on the T1c DICOM grid.
    """

    out_dir: Path
    seed: int
    size: str
    study_instance_uid: str
    patient_name: str
    patient_id: str
    series: tuple[PhantomSeries, ...]
    labels_native_path: Path
    labels_template_path: Path
    clinical_json_path: Path
    pet_suv_native_path: Path | None
    transforms_dir: Path
    clinical: ClinicalVariables
    brain_mask_native_path: Path | None = None

    def series_by_role(self, role: str) -> PhantomSeries:
        """Return the series with the given role.

        Raises
        ------
        KeyError
            If the study has no such series.
        """
        for s in self.series:
            if s.role == role:
                return s
        raise KeyError(f"The phantom study has no {role} series.")


def study_info(seed: int, size: str, clinical: ClinicalVariables) -> _dicom.StudyInfo:
    """Patient and study attributes of the pre-operative study of ``seed``."""
    rng = rng_stream(seed, _STREAM_DICOM)
    study_date = dt.date(2021, 1, 4) + dt.timedelta(days=int(rng.integers(0, 1400)))
    start = dt.datetime.combine(study_date, dt.time(7, 30)) + dt.timedelta(
        minutes=int(rng.integers(0, 8 * 60))
    )
    day = min(study_date.day, 28)
    anniversary = study_date.replace(year=study_date.year - clinical.age_years, day=day)
    birth = anniversary - dt.timedelta(days=int(rng.integers(1, 360)))
    return _dicom.StudyInfo(
        seed=seed,
        size=size,
        patient_name=f"PHANTOM^GBM{seed}",
        patient_id=f"PHGBM-{seed:06d}",
        birth_date=birth,
        sex=clinical.sex,
        age_years=clinical.age_years,
        weight_kg=clinical.weight_kg,
        height_m=clinical.height_m,
        accession=f"PHA{seed % 10**10:010d}",
        study_uid=_dicom.make_uid(seed, size, "study"),
        study_id=f"PH{seed % 10**8}",
        study_start=start,
        mr_frame_of_reference_uid=_dicom.make_uid(seed, size, "for", "MR"),
        pet_frame_of_reference_uid=_dicom.make_uid(seed, size, "for", "PET"),
    )


def write_study(
    out_dir: Path, seed: int = 1, *, size: str = "small", with_pet: bool = True
) -> PhantomStudy:
    """Simulate a glioblastoma patient and write one DICOM study with ground truth.

    Parameters
    ----------
    out_dir : pathlib.Path
        Output folder (created; existing files with the same names are overwritten).
    seed : int, optional
        Non-negative seed. Same seed and size give identical pixel data and UIDs.
    size : {"small", "full"}, optional
        ``"small"``: 2 mm simulation and coarse matrices (a few seconds); ``"full"``: 1 mm
        3D series (demo quality).
    with_pet : bool, optional
        Also write the [11C]methionine PET series.

    Returns
    -------
    PhantomStudy
        Where everything is and what it contains.

    Raises
    ------
    PhantomError
        If the seed or size is invalid.
    """
    check_args(seed, size)
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    clean = simulate_clean(seed, size)
    grid = clean.grid
    info = study_info(seed, size, clean.clinical)
    rng_geom = rng_stream(seed, _STREAM_GEOMETRY)
    poses = draw_poses(rng_geom)
    roles = (*MR_ROLES, "PET") if with_pet else MR_ROLES
    geometries = {
        role: series_geometry(PROTOCOLS[role], size, poses[role], rng_geom)
        for role in (*MR_ROLES, "PET")
    }
    rng_noise = rng_stream(seed, _STREAM_NOISE)
    dicom_dir = out_dir / "dicom"
    truth_dir = out_dir / "truth"
    transforms_dir = truth_dir / "transforms"
    transforms_dir.mkdir(parents=True, exist_ok=True)
    written: list[PhantomSeries] = []
    pet_path: Path | None = None

    for role in roles:
        protocol = PROTOCOLS[role]
        geometry = geometries[role]
        pose = poses[role]
        folder = dicom_dir / folder_name(protocol.series_number, protocol.description)
        tfm_path = transforms_dir / f"{role}_template_to_scanner.tfm"
        sitk.WriteTransform(pose.transform(), str(tfm_path))
        source = grid.to_image(clean.images[role])
        if role == "PET":
            uid, n, suv, _ = write_pet_role(
                folder,
                info,
                geometry,
                pose,
                source,
                grid.spacing,
                rng_noise,
                rng_stream(seed, _STREAM_DICOM + 100),
            )
            pet_path = truth_dir / "pet_suv_native.nii.gz"
            sitk.WriteImage(image_on(geometry, suv), str(pet_path), useCompression=True)
        else:
            uid, n = write_mr_role(
                folder, info, role, geometry, pose, source, grid.spacing, rng_noise
            )
        written.append(PhantomSeries(role, str(uid), protocol.description, folder, n))

    # Ground truth.
    labels_template = grid.to_image(clean.labels)
    labels_native_arr = resample(
        labels_template, geometries["T1c"], poses["T1c"], interpolator=sitk.sitkNearestNeighbor
    )
    labels_native = image_on(geometries["T1c"], np.rint(labels_native_arr).astype(np.uint8))
    native_path = truth_dir / "labels_t1c_native.nii.gz"
    template_path = truth_dir / "labels_template.nii.gz"
    brain_native_arr = resample(
        grid.to_image(clean.tumour.brain_mask.astype(np.float32)), geometries["T1c"],
        poses["T1c"],
    )
    brain_path = truth_dir / "brain_mask_t1c_native.nii.gz"
    sitk.WriteImage(image_on(geometries["T1c"], (brain_native_arr >= 0.5).astype(np.uint8)),
                    str(brain_path), useCompression=True)
    sitk.WriteImage(labels_native, str(native_path), useCompression=True)
    sitk.WriteImage(labels_template, str(template_path), useCompression=True)
    clinical_path = truth_dir / "clinical.json"
    payload = {
        "schema": "rgcds.phantom.clinical/1",
        "size": size,
        "label_values": {"necrotic_core": 1, "oedema": 2, "enhancing_tumour": 3},
        **clean.clinical.to_dict(),
    }
    clinical_path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    logger.info(
        "phantom.study_written",
        study_uid=str(info.study_uid),
        seed=seed,
        size=size,
        n_series=len(written),
        n_instances=sum(s.n_instances for s in written),
        seconds=round(time.perf_counter() - t0, 2),
    )
    return PhantomStudy(
        out_dir=out_dir,
        seed=seed,
        size=size,
        study_instance_uid=str(info.study_uid),
        patient_name=info.patient_name,
        patient_id=info.patient_id,
        series=tuple(written),
        labels_native_path=native_path,
        labels_template_path=template_path,
        clinical_json_path=clinical_path,
        pet_suv_native_path=pet_path,
        transforms_dir=transforms_dir,
        clinical=clean.clinical,
        brain_mask_native_path=brain_path,
    )
