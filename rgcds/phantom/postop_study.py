# (SimpleITK and rt-utils ship no type information.)
"""The post-operative phantom written as DICOM: the MR study (with an optional RT Structure Set
of the CTV) and, 1-10 days later, the [11C]methionine PET/CT study of the same patient, with
their ground truth (see :mod:`rgcds.phantom.postop` for the simulation)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
import structlog
from pydicom.uid import ExplicitVRLittleEndian
from scipy import ndimage

from rgcds.phantom import _dicom, _dicom_petct
from rgcds.phantom._postop_model import STREAM_DICOM, STREAM_GEOMETRY, STREAM_NOISE
from rgcds.phantom._roles import folder_name, image_on, write_mr_role, write_pet_role
from rgcds.phantom._series import PROTOCOLS, Protocol, draw_poses, resample, series_geometry
from rgcds.phantom._template import BoolArray
from rgcds.phantom.postop import (
    LABEL_CAVITY,
    LABEL_RESIDUAL_ENHANCING,
    PostopClinical,
    postop_clean,
)
from rgcds.phantom.simulate import (
    MR_ROLES,
    check_args,
    rng_stream,
)
from rgcds.phantom.study import study_info

logger = structlog.get_logger(__name__)


#: Low-dose CT of the PET/CT (attenuation correction), axial, no gantry tilt.
CT_PROTOCOL = Protocol(
    "CT", 2, "CT LowDose Kopf 3.0 Hr38", "tra", "3D",
    {"full": (256, 256, 90), "small": (128, 128, 60)},
    {"full": 0.9375, "small": 1.875}, {"full": 2.0, "small": 3.0}, {"full": 2.0, "small": 3.0},
    6.0, 0.0,
)  # fmt: skip


@dataclass(frozen=True)
class PostopStudies:
    """The two written post-operative studies of one phantom patient and their ground truth.

    Attributes
    ----------
    out_dir : pathlib.Path
        Root folder.
    seed : int
        Phantom seed.
    size : str
        ``"small"`` or ``"full"``.
    patient_id, patient_name : str
        Shared by both studies (the pre-operative phantom's patient of the same seed).
    mr_study_uid : str
        StudyInstanceUID of the post-operative MR study.
    mr_dir : pathlib.Path
        Folder holding the MR study's series folders (T1, T2, FLAIR, T1c, RTSTRUCT).
    petct_study_uid : str
        StudyInstanceUID of the PET/CT study.
    petct_dir : pathlib.Path
        Folder holding the PET/CT study's series folders (CT, PET).
    mr_date, pet_date : datetime.date
        Study dates; the PET/CT is 1-10 days after the MR.
    rtstruct_path : pathlib.Path or None
        RT Structure Set (ROIs "CTV" and "GTV"), when asked for.
    labels_t1c_native_path : pathlib.Path
        Post-operative labels on the T1c DICOM grid (ImageSeriesReader geometry).
    ctv_t1c_native_path : pathlib.Path
        Truth CTV on the T1c DICOM grid.
    residual_pet_native_path : pathlib.Path
        Biological residual tumour on the PET DICOM grid.
    pet_suv_native_path : pathlib.Path
        Noise-free SUVbw on the PET DICOM grid.
    clinical_json_path : pathlib.Path
        Clinical variables and outcome as JSON.
    clinical : PostopClinical
        The clinical variables.
    """

    out_dir: Path
    seed: int
    size: str
    patient_id: str
    patient_name: str
    mr_study_uid: str
    mr_dir: Path
    petct_study_uid: str
    petct_dir: Path
    mr_date: dt.date
    pet_date: dt.date
    rtstruct_path: Path | None
    labels_t1c_native_path: Path
    ctv_t1c_native_path: Path
    residual_pet_native_path: Path
    pet_suv_native_path: Path
    clinical_json_path: Path
    clinical: PostopClinical


def _drop_specks(mask: BoolArray, min_pixels: int = 3) -> BoolArray:
    """Remove in-slice islands smaller than ``min_pixels`` (rt-utils cannot fill 1-point
    contours)."""
    out = mask.copy()
    eight = np.ones((3, 3), dtype=bool)
    for k in range(out.shape[0]):
        if not out[k].any():
            continue
        lab, n = ndimage.label(out[k], structure=eight)
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        small = np.nonzero(sizes < min_pixels)[0]
        small = small[small > 0]
        if small.size:
            out[k][np.isin(lab, small)] = False
    return out


def _write_rtstruct(
    folder: Path,
    t1c_dir: Path,
    info: _dicom.StudyInfo,
    masks: dict[str, npt.NDArray[np.uint8]],
) -> Path:
    """Write an RT Structure Set on the T1c series with rt-utils; return its path."""
    from rt_utils import RTStructBuilder  # heavy import (OpenCV): only when asked for

    with warnings.catch_warnings():
        # rt-utils sets FileDataset.is_little_endian/is_implicit_VR (deprecated in pydicom 3).
        warnings.simplefilter("ignore", DeprecationWarning)
        rt = RTStructBuilder.create_new(dicom_series_path=str(t1c_dir))
    colours = {"CTV": [255, 128, 0], "GTV": [255, 0, 0]}
    for name, arr in masks.items():
        # rt-utils masks are (rows, columns, slices), slices sorted along the normal.
        mask = np.ascontiguousarray(_drop_specks(arr.astype(bool)).transpose(1, 2, 0))
        if mask.any():
            rt.add_roi(mask=mask, name=name, color=colours.get(name), approximate_contours=False)
    ds = rt.ds
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            contour.ContourData = [_dicom.ds_str(round(float(v), 4)) for v in contour.ContourData]
    sop_uid = info.uid("rtstruct", "instance")
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = info.uid("rtstruct", "series")
    ds.SeriesNumber = 200
    ds.SeriesDescription = "CTV ESTRO-EANO 15 mm (PHANTOM, research use only)"
    ds.StructureSetLabel = "CTV"
    ds.StructureSetName = "Phantom truth"
    when = info.study_start + dt.timedelta(hours=2)
    for attr in ("InstanceCreation", "StructureSet", "Series"):
        setattr(ds, f"{attr}Date", when.strftime("%Y%m%d"))
        setattr(ds, f"{attr}Time", when.strftime("%H%M%S"))
    ds.Manufacturer = "RGCDS"
    ds.ManufacturerModelName = "rgcds.phantom (rt-utils)"
    ds.InstitutionName = "RGCDS PHANTOM HOSPITAL"
    ds.ReferringPhysicianName = "PHANTOM^REFERRER"
    ds.AccessionNumber = info.accession
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = info.mr_frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientIdentityRemoved = "NO"
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    for obs in ds.RTROIObservationsSequence:
        name = names.get(int(obs.ReferencedROINumber), "")
        obs.RTROIInterpretedType = "CTV" if name == "CTV" else "GTV"
        obs.ROIObservationLabel = name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "RS0001.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_postop_study(
    out_dir: Path, seed: int = 1, *, size: str = "small", rtstruct: bool = False
) -> PostopStudies:
    """Simulate a post-operative patient and write an MR study and a MET-PET/CT study.

    Layout under ``out_dir``::

        mr/<NNN>_<SeriesDescription>/IM0001.dcm ...   T1, T2, FLAIR, T1c (+ RTSTRUCT)
        petct/<NNN>_<SeriesDescription>/IM0001.dcm ...  CT, PET
        truth/labels_t1c_native.nii.gz, ctv_t1c_native.nii.gz, residual_pet_native.nii.gz,
        truth/pet_suv_native.nii.gz, clinical.json

    The MR series share one FrameOfReferenceUID; CT and PET share another (same scanner and
    table position; PET and CT poses are identical), so PET must be registered to MR.

    Parameters
    ----------
    out_dir : pathlib.Path
        Output folder (created; files with the same names are overwritten).
    seed : int, optional
        Non-negative seed.
    size : {"small", "full"}, optional
        Simulation grid and matrices (see :func:`rgcds.phantom.write_study`).
    rtstruct : bool, optional
        Also write an RT Structure Set (ROIs "CTV" and "GTV") referencing the T1c series.

    Returns
    -------
    PostopStudies
        Where everything is and what it contains.

    Raises
    ------
    PhantomError
        If the seed or size is invalid.
    """
    check_args(seed, size)
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    clean = postop_clean(seed, size)
    grid = clean.grid
    base = study_info(seed, size, clean.preop)
    rng_dicom = rng_stream(seed, STREAM_DICOM)
    mr_day = base.study_start.date() + dt.timedelta(days=int(rng_dicom.integers(3, 7)))
    mr_start = dt.datetime.combine(mr_day, dt.time(7, 30)) + dt.timedelta(
        minutes=int(rng_dicom.integers(0, 8 * 60))
    )
    pet_day = mr_day + dt.timedelta(days=int(rng_dicom.integers(1, 11)))
    pet_start = dt.datetime.combine(pet_day, dt.time(7, 30)) + dt.timedelta(
        minutes=int(rng_dicom.integers(0, 6 * 60))
    )
    info_mr = dataclasses.replace(
        base,
        study_uid=_dicom.make_uid(seed, size, "postop", "study", "MR"),
        study_id=f"PO{seed % 10**8}",
        accession=f"POM{seed % 10**9:09d}",
        study_start=mr_start,
        mr_frame_of_reference_uid=_dicom.make_uid(seed, size, "postop", "for", "MR"),
        pet_frame_of_reference_uid=_dicom.make_uid(seed, size, "postop", "for", "PETCT"),
        study_description="MR Kopf postoperativ mit KM^Glioblastom (PHANTOM)",
        uid_namespace=("postop", "MR"),
    )
    info_pet = dataclasses.replace(
        info_mr,
        study_uid=_dicom.make_uid(seed, size, "postop", "study", "PETCT"),
        study_id=f"PP{seed % 10**8}",
        accession=f"POP{seed % 10**9:09d}",
        study_start=pet_start,
        study_description="PET/CT Hirn [11C]Methionin postoperativ (PHANTOM)",
        uid_namespace=("postop", "PETCT"),
    )
    rng_geom = rng_stream(seed, STREAM_GEOMETRY)
    poses = draw_poses(rng_geom)
    geometries = {
        role: series_geometry(PROTOCOLS[role], size, poses[role], rng_geom)
        for role in (*MR_ROLES, "PET")
    }
    ct_geometry = series_geometry(CT_PROTOCOL, size, poses["PET"], rng_geom)
    rng_noise = rng_stream(seed, STREAM_NOISE)
    mr_dir = out_dir / "mr"
    petct_dir = out_dir / "petct"
    truth_dir = out_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    n_instances = 0
    folders: dict[str, Path] = {}
    for role in MR_ROLES:
        protocol = PROTOCOLS[role]
        folder = mr_dir / folder_name(protocol.series_number, protocol.description)
        source = grid.to_image(clean.images[role])
        _, n = write_mr_role(
            folder, info_mr, role, geometries[role], poses[role], source, grid.spacing, rng_noise
        )
        folders[role] = folder
        n_instances += n

    # PET/CT: the CT first (attenuation correction), then the PET.
    ct_hu = resample(grid.to_image(clean.images["CT"]), ct_geometry, poses["PET"])
    ct_hu = ct_hu + rng_noise.normal(0.0, 8.0, ct_hu.shape).astype(np.float32)
    ct_folder = petct_dir / folder_name(CT_PROTOCOL.series_number, CT_PROTOCOL.description)
    _, n = _dicom_petct.write_ct_series(
        ct_folder, info_pet, CT_PROTOCOL, ct_geometry, ct_hu, pet_start + dt.timedelta(minutes=40)
    )
    n_instances += n
    pet_protocol = PROTOCOLS["PET"]
    pet_folder = petct_dir / folder_name(pet_protocol.series_number, pet_protocol.description)
    _, n, _, suv_clean = write_pet_role(
        pet_folder,
        info_pet,
        geometries["PET"],
        poses["PET"],
        grid.to_image(clean.images["PET"]),
        grid.spacing,
        rng_noise,
        rng_stream(seed, STREAM_DICOM + 100),
    )
    n_instances += n

    # Ground truth.
    def native(array: npt.NDArray[np.generic], role: str) -> npt.NDArray[np.uint8]:
        out = resample(
            grid.to_image(array),
            geometries[role],
            poses[role],
            interpolator=sitk.sitkNearestNeighbor,
        )
        return np.rint(out).astype(np.uint8)

    labels_native = native(clean.labels, "T1c")
    ctv_native = native(clean.ctv, "T1c")
    residual_native = native(clean.residual.astype(np.uint8), "PET")
    paths = {
        "labels": truth_dir / "labels_t1c_native.nii.gz",
        "ctv": truth_dir / "ctv_t1c_native.nii.gz",
        "residual": truth_dir / "residual_pet_native.nii.gz",
        "pet": truth_dir / "pet_suv_native.nii.gz",
    }
    for key, arr, role in (
        ("labels", labels_native, "T1c"),
        ("ctv", ctv_native, "T1c"),
        ("residual", residual_native, "PET"),
        ("pet", suv_clean, "PET"),
    ):
        sitk.WriteImage(image_on(geometries[role], arr), str(paths[key]), useCompression=True)

    rt_path: Path | None = None
    if rtstruct:
        gtv = (labels_native == LABEL_CAVITY) | (labels_native == LABEL_RESIDUAL_ENHANCING)
        rt_path = _write_rtstruct(
            mr_dir / "200_RTSTRUCT_CTV",
            folders["T1c"],
            info_mr,
            {"CTV": ctv_native, "GTV": gtv.astype(np.uint8)},
        )
        n_instances += 1

    clinical_path = truth_dir / "clinical.json"
    payload = {
        "schema": "rgcds.phantom.postop/1",
        "size": size,
        "label_values": {"resection_cavity": 1, "oedema": 2, "residual_enhancing_tumour": 3},
        "mr_date": mr_day.isoformat(),
        "pet_date": pet_day.isoformat(),
        "reference_suv_template": round(clean.reference_suv, 4),
        **clean.clinical.to_dict(),
    }
    clinical_path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    logger.info(
        "phantom.postop_written",
        mr_study_uid=str(info_mr.study_uid),
        petct_study_uid=str(info_pet.study_uid),
        seed=seed,
        size=size,
        n_instances=n_instances,
        seconds=round(time.perf_counter() - t0, 2),
    )
    return PostopStudies(
        out_dir=out_dir,
        seed=seed,
        size=size,
        patient_id=base.patient_id,
        patient_name=base.patient_name,
        mr_study_uid=str(info_mr.study_uid),
        mr_dir=mr_dir,
        petct_study_uid=str(info_pet.study_uid),
        petct_dir=petct_dir,
        mr_date=mr_day,
        pet_date=pet_day,
        rtstruct_path=rt_path,
        labels_t1c_native_path=paths["labels"],
        ctv_t1c_native_path=paths["ctv"],
        residual_pet_native_path=paths["residual"],
        pet_suv_native_path=paths["pet"],
        clinical_json_path=clinical_path,
        clinical=clean.clinical,
    )
