"""Tests of the post-operative glioblastoma phantom (rgcds.phantom.postop)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy import ndimage

from rgcds.phantom import (
    LABEL_CAVITY,
    LABEL_OEDEMA,
    LABEL_RESIDUAL_ENHANCING,
    PostopStudies,
    PostopSubject,
    simulate_postop,
    write_postop_study,
)
from rgcds.phantom.postop import _STREAM_CLINICAL, _draw, _postop_clean
from rgcds.phantom.simulate import rng_stream

#: Seeds with and without residual tumour (checked by a test below).
SEED_RESIDUAL = 3
SEED_NO_RESIDUAL = 2


@pytest.fixture(scope="module")
def with_residual() -> PostopSubject:
    return simulate_postop(SEED_RESIDUAL, "small", augment=False)


@pytest.fixture(scope="module")
def without_residual() -> PostopSubject:
    return simulate_postop(SEED_NO_RESIDUAL, "small", augment=False)


def _arr(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def _reference_suv(subject: PostopSubject) -> float:
    """Mean SUV of the normal contralateral brain (hemisphere without the cavity)."""
    labels = _arr(subject.labels)
    brain = _arr(subject.brain_mask) > 0
    pet = _arr(subject.pet)
    nx = labels.shape[2]
    x_centre = float(np.nonzero(labels == LABEL_CAVITY)[2].mean())
    xs = np.arange(nx).reshape(1, 1, nx)
    mid = nx / 2.0
    other = xs < mid - 3 if x_centre > mid else xs > mid + 3
    return float(pet[brain & other & (labels == 0)].mean())


def test_determinism_per_seed() -> None:
    a = simulate_postop(SEED_RESIDUAL, "small")
    _postop_clean.cache_clear()
    b = simulate_postop(SEED_RESIDUAL, "small")
    assert a.clinical == b.clinical
    for name in ("t1", "t1c", "t2", "flair", "pet", "labels", "residual", "ctv"):
        assert np.array_equal(_arr(getattr(a, name)), _arr(getattr(b, name))), name


def test_residual_present_in_about_half_of_the_seeds() -> None:
    present = [_draw(rng_stream(seed, _STREAM_CLINICAL)).residual_present for seed in range(60)]
    assert 0.3 <= float(np.mean(present)) <= 0.7
    assert present[SEED_RESIDUAL] and not present[SEED_NO_RESIDUAL]


def test_residual_mask_empty_iff_absent(
    with_residual: PostopSubject, without_residual: PostopSubject
) -> None:
    assert with_residual.clinical.residual_present
    assert _arr(with_residual.residual).any()
    assert with_residual.clinical.residual_ml > 0.5
    assert (_arr(with_residual.labels) == LABEL_RESIDUAL_ENHANCING).any()
    assert not without_residual.clinical.residual_present
    assert not _arr(without_residual.residual).any()
    assert without_residual.clinical.residual_ml == 0.0
    assert not (_arr(without_residual.labels) == LABEL_RESIDUAL_ENHANCING).any()


def test_labels(with_residual: PostopSubject) -> None:
    labels = _arr(with_residual.labels)
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, LABEL_CAVITY, LABEL_OEDEMA, LABEL_RESIDUAL_ENHANCING}
    enhancing = labels == LABEL_RESIDUAL_ENHANCING
    nodule_ml = enhancing.sum() * 0.008
    assert 0.3 <= nodule_ml <= 10.0
    # The nodule touches the cavity margin; the residual contains it.
    near_cavity = ndimage.binary_dilation(labels == LABEL_CAVITY, iterations=2)
    assert (enhancing & near_cavity).any()
    assert np.all(_arr(with_residual.residual)[enhancing] == 1)
    cavity_ml = (labels == LABEL_CAVITY).sum() * 0.008
    assert cavity_ml == pytest.approx(with_residual.clinical.cavity_ml, abs=0.01)
    assert with_residual.t1.GetSize() == with_residual.labels.GetSize()


def test_cavity_is_fluid_on_mr(without_residual: PostopSubject) -> None:
    labels = _arr(without_residual.labels)
    cavity = labels == LABEL_CAVITY
    brain = (_arr(without_residual.brain_mask) > 0) & (labels == 0)
    t1, t2 = _arr(without_residual.t1), _arr(without_residual.t2)
    assert t1[cavity].mean() < 0.5 * t1[brain].mean()
    assert t2[cavity].mean() > 1.5 * t2[brain].mean()


def test_pet_margin_residual_and_physiological_uptake(with_residual: PostopSubject) -> None:
    labels = _arr(with_residual.labels)
    pet = _arr(with_residual.pet)
    brain = _arr(with_residual.brain_mask) > 0
    residual = _arr(with_residual.residual) > 0
    reference = _reference_suv(with_residual)
    assert 0.8 < reference < 1.4
    cavity = labels == LABEL_CAVITY
    shell = ndimage.binary_dilation(cavity) & ~cavity & brain
    far_from_residual = ndimage.distance_transform_edt(~residual, sampling=2.0) > 10.0
    margin = shell & far_from_residual
    assert margin.sum() > 20
    assert pet[margin].mean() / reference < 1.3
    assert np.percentile(pet[margin], 95) / reference < 1.3
    assert pet[residual].max() / reference > 1.5
    assert pet[cavity].mean() / reference < 0.7
    # Extra-cerebral physiological uptake (glands, marrow, scalp), well away from the brain.
    away = ~ndimage.binary_dilation(brain, iterations=3)
    assert pet[away].max() > 2.0
    assert pet[away].max() / reference > 1.6


def test_ctv_contains_cavity_and_stays_in_brain(with_residual: PostopSubject) -> None:
    ctv = _arr(with_residual.ctv) > 0
    labels = _arr(with_residual.labels)
    brain = _arr(with_residual.brain_mask) > 0
    assert np.all(ctv[labels == LABEL_CAVITY])
    assert np.all(ctv[labels == LABEL_RESIDUAL_ENHANCING])
    assert not np.any(ctv & ~brain)
    assert ctv.sum() > 3 * (labels == LABEL_CAVITY).sum()


def test_outcome(with_residual: PostopSubject, without_residual: PostopSubject) -> None:
    for subject in (with_residual, without_residual):
        c = subject.clinical
        assert 0 < c.ttr_days <= c.os_days
        assert np.isfinite(c.lp_ttr) and np.isfinite(c.lp_os)
        assert json.loads(json.dumps(c.to_dict()))["seed"] == subject.seed
    # The linear predictors are the documented hazard model.
    c = with_residual.clinical
    pre = _postop_clean(c.seed, "small").preop
    lp_ttr = (
        0.70 * c.residual_present
        + 0.30 * np.log1p(c.residual_ml)
        + 0.20 * (c.age_years - 60.0) / 10.0
        - 0.50 * c.mgmt_methylated
        - 0.60 * pre.idh_mutant
        + 0.10 * pre.egfr_amplified
    )
    assert c.lp_ttr == pytest.approx(lp_ttr, abs=1e-5)


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> PostopStudies:
    return write_postop_study(
        tmp_path_factory.mktemp("postop"), SEED_RESIDUAL, size="small", rtstruct=True
    )


def _first(directory: Path, pattern: str) -> pydicom.Dataset:
    path = sorted(directory.glob(pattern))[0]
    return pydicom.dcmread(path, stop_before_pixels=True)


def _series_dir(root: Path, prefix: str) -> Path:
    return next(p for p in root.iterdir() if p.name.startswith(prefix))


@pytest.mark.slow
def test_two_studies_one_patient(studies: PostopStudies) -> None:
    assert studies.mr_study_uid != studies.petct_study_uid
    t1c = _first(_series_dir(studies.mr_dir, "008_"), "*.dcm")
    ct = _first(_series_dir(studies.petct_dir, "002_"), "*.dcm")
    pet = _first(_series_dir(studies.petct_dir, "101_"), "*.dcm")
    assert ct.Modality == "CT" and pet.Modality == "PT" and t1c.Modality == "MR"
    assert t1c.StudyInstanceUID == studies.mr_study_uid
    assert ct.StudyInstanceUID == pet.StudyInstanceUID == studies.petct_study_uid
    ids = {(d.PatientID, str(d.PatientName), d.PatientBirthDate) for d in (t1c, ct, pet)}
    assert ids == {(studies.patient_id, studies.patient_name, t1c.PatientBirthDate)}
    assert ct.FrameOfReferenceUID == pet.FrameOfReferenceUID != t1c.FrameOfReferenceUID
    assert 1 <= (studies.pet_date - studies.mr_date).days <= 10
    assert pet.StudyDate == studies.pet_date.strftime("%Y%m%d")
    assert t1c.StudyDate == studies.mr_date.strftime("%Y%m%d")
    assert ct.RescaleIntercept == -1024 and ct.KVP > 0
    rp = pet.RadiopharmaceuticalInformationSequence[0]
    assert rp.RadiopharmaceuticalCodeSequence[0].CodeMeaning.startswith("Methionine")
    assert pet.Units == "BQML" and pet.DecayCorrection == "START"
    # Series UIDs differ from the pre-operative study of the same seed.
    assert t1c.SeriesInstanceUID != pet.SeriesInstanceUID


@pytest.mark.slow
def test_ct_hounsfield_units(studies: PostopStudies) -> None:
    reader = sitk.ImageSeriesReader()
    ct_dir = _series_dir(studies.petct_dir, "002_")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_dir)))
    hu = sitk.GetArrayFromImage(reader.Execute()).astype(np.float32)
    assert hu.min() < -900  # air
    assert hu.max() > 500  # bone
    assert np.any((hu > 20) & (hu < 50))  # brain


@pytest.mark.slow
def test_truth_files_on_native_grids(studies: PostopStudies) -> None:
    reader = sitk.ImageSeriesReader()
    t1c_dir = _series_dir(studies.mr_dir, "008_")
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(t1c_dir)))
    t1c = reader.Execute()
    for path in (studies.labels_t1c_native_path, studies.ctv_t1c_native_path):
        truth = sitk.ReadImage(str(path))
        assert truth.GetSize() == t1c.GetSize()
        assert np.allclose(truth.GetOrigin(), t1c.GetOrigin(), atol=1e-3)
        assert np.allclose(truth.GetDirection(), t1c.GetDirection(), atol=1e-6)
    residual = sitk.GetArrayFromImage(sitk.ReadImage(str(studies.residual_pet_native_path)))
    assert residual.any() == studies.clinical.residual_present
    suv = sitk.ReadImage(str(studies.pet_suv_native_path))
    assert suv.GetSize() == sitk.ReadImage(str(studies.residual_pet_native_path)).GetSize()
    payload = json.loads(studies.clinical_json_path.read_text())
    assert payload["residual_present"] == studies.clinical.residual_present


@pytest.mark.slow
def test_rtstruct_ctv_matches_truth(studies: PostopStudies) -> None:
    from rt_utils import RTStructBuilder

    assert studies.rtstruct_path is not None
    t1c_dir = _series_dir(studies.mr_dir, "008_")
    rt = RTStructBuilder.create_from(
        dicom_series_path=str(t1c_dir), rt_struct_path=str(studies.rtstruct_path)
    )
    assert "CTV" in rt.get_roi_names()
    mask = rt.get_roi_mask_by_name("CTV").transpose(2, 0, 1)
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(studies.ctv_t1c_native_path))) > 0
    dice = 2.0 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.9
    ds = pydicom.dcmread(studies.rtstruct_path)
    assert ds.StudyInstanceUID == studies.mr_study_uid
    assert ds.PatientID == studies.patient_id
    assert ds.Modality == "RTSTRUCT"
