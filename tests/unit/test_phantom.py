"""Tests of the synthetic glioblastoma study generator (rgcds.phantom)."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import structlog
import structlog.testing
from scipy import ndimage

from rgcds.phantom import (
    PhantomError,
    PhantomStudy,
    simulate_subject,
    template_brain_mask,
    template_t1,
    write_montage,
    write_study,
)
from rgcds.phantom.clinical import draw_baseline, draw_survival
from rgcds.phantom.simulate import rng_stream, simulate_clean

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> PhantomStudy:
    return write_study(tmp_path_factory.mktemp("phantom") / "seed1", seed=1, size="small")


@pytest.fixture(scope="module")
def study_again(tmp_path_factory: pytest.TempPathFactory, study: PhantomStudy) -> PhantomStudy:
    simulate_clean.cache_clear()  # recompute from scratch, not from the cache
    return write_study(tmp_path_factory.mktemp("phantom") / "seed1b", seed=1, size="small")


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.dcm"))


def _read_series(directory: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(directory)))
    return reader.Execute()


def _all_datasets(study: PhantomStudy) -> Iterator[tuple[str, pydicom.Dataset]]:
    for series in study.series:
        for path in _files(series.directory):
            yield series.role, pydicom.dcmread(path, stop_before_pixels=True)


# --- template ---------------------------------------------------------------------------


def test_template_is_lps_1mm_with_plausible_brain_mask() -> None:
    t1 = template_t1()
    mask = template_brain_mask()
    assert t1.GetSize() == (197, 233, 189)
    assert t1.GetSpacing() == (1.0, 1.0, 1.0)
    assert t1.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert t1.GetOrigin() == (-98.0, -98.0, -72.0)
    assert mask.GetSize() == t1.GetSize() and mask.GetOrigin() == t1.GetOrigin()
    m = sitk.GetArrayFromImage(mask)
    assert set(np.unique(m)) == {0, 1}
    assert 1400 < m.sum() / 1000 < 2100  # ml; the MNI brain is larger than average
    # Ventricles are inside the mask (hole filled): the centre of the brain is in the mask.
    centre = mask.TransformPhysicalPointToIndex((0.0, 10.0, 15.0))
    assert m[centre[2], centre[1], centre[0]] == 1
    # Patient left (+x in LPS) is the left hemisphere: both sides carry brain.
    t1_arr = sitk.GetArrayFromImage(t1)
    assert t1_arr[:, :, :90].sum() > 0 and t1_arr[:, :, 110:].sum() > 0
    # Cached copies: modifying one does not change the next.
    mask[0, 0, 0] = 7
    assert template_brain_mask()[0, 0, 0] == 0


# --- determinism ------------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_gives_identical_files(study: PhantomStudy, study_again: PhantomStudy) -> None:
    assert study.study_instance_uid == study_again.study_instance_uid
    for a, b in zip(study.series, study_again.series, strict=True):
        assert a.series_instance_uid == b.series_instance_uid
        files_a, files_b = _files(a.directory), _files(b.directory)
        assert [f.name for f in files_a] == [f.name for f in files_b]
        for fa, fb in zip(files_a, files_b, strict=True):
            assert fa.read_bytes() == fb.read_bytes()
    for name in ("labels_t1c_native.nii.gz", "labels_template.nii.gz", "clinical.json"):
        ia = study.out_dir / "truth" / name
        ib = study_again.out_dir / "truth" / name
        if name.endswith(".json"):
            assert ia.read_text() == ib.read_text()
        else:
            arr_a = sitk.GetArrayFromImage(sitk.ReadImage(str(ia)))
            arr_b = sitk.GetArrayFromImage(sitk.ReadImage(str(ib)))
            assert np.array_equal(arr_a, arr_b)


@pytest.mark.slow
def test_simulate_subject_is_deterministic_and_seed_dependent() -> None:
    a = simulate_subject(1)
    simulate_clean.cache_clear()
    b = simulate_subject(1)
    c = simulate_subject(2)
    la, lb, lc = (sitk.GetArrayFromImage(s.labels) for s in (a, b, c))
    assert np.array_equal(la, lb)
    assert np.array_equal(sitk.GetArrayFromImage(a.t1c), sitk.GetArrayFromImage(b.t1c))
    assert a.clinical == b.clinical
    assert not np.array_equal(la, lc)
    assert a.clinical.tumour.centre_template_mm != c.clinical.tumour.centre_template_mm


def test_invalid_arguments_raise_phantom_error(tmp_path: Path) -> None:
    with pytest.raises(PhantomError, match="size"):
        simulate_subject(1, size="huge")
    with pytest.raises(PhantomError, match="seed"):
        write_study(tmp_path, seed=-1)


# --- labels and volumes -----------------------------------------------------------------


def test_label_values_and_types(study: PhantomStudy) -> None:
    for path in (study.labels_native_path, study.labels_template_path):
        image = sitk.ReadImage(str(path))
        assert image.GetPixelID() == sitk.sitkUInt8
        values = set(np.unique(sitk.GetArrayFromImage(image)).tolist())
        assert values == {0, 1, 2, 3}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_tumour_volume_in_range_and_matches_labels(seed: int) -> None:
    subject = simulate_subject(seed, augment=False)
    t = subject.clinical.tumour
    assert 19.0 <= t.whole_tumour_ml <= 151.0
    assert abs(t.whole_tumour_ml - t.target_whole_tumour_ml) < 0.1 * t.target_whole_tumour_ml
    labels = sitk.GetArrayFromImage(subject.labels)
    ml = math.prod(subject.labels.GetSpacing()) / 1000.0
    assert np.count_nonzero(labels == 1) * ml == pytest.approx(t.necrosis_ml, abs=1e-2)
    assert np.count_nonzero(labels == 2) * ml == pytest.approx(t.oedema_ml, abs=1e-2)
    assert np.count_nonzero(labels == 3) * ml == pytest.approx(t.enhancing_ml, abs=1e-2)
    # The tumour stays in one piece of brain and out of the CSF.
    csf = sitk.GetArrayFromImage(subject.csf)
    assert np.mean(csf[labels > 0] > 0.5) == 0.0
    brain = sitk.GetArrayFromImage(subject.brain_mask)
    assert np.all(brain[labels > 0] == 1)
    # Enhancing tumour surrounds the necrosis: no necrotic voxel touches oedema or background.
    ncr = labels == 1
    if ncr.any():
        ring = ndimage.binary_dilation(ncr) & ~ncr
        assert np.all(np.isin(labels[ring], [1, 3]))


# --- geometry ---------------------------------------------------------------------------


def test_native_truth_geometry_equals_t1c_dicom_volume(study: PhantomStudy) -> None:
    t1c = _read_series(study.series_by_role("T1c").directory)
    labels = sitk.ReadImage(str(study.labels_native_path))
    assert labels.GetSize() == t1c.GetSize()
    assert np.allclose(labels.GetOrigin(), t1c.GetOrigin(), atol=1e-3)
    assert np.allclose(labels.GetSpacing(), t1c.GetSpacing(), atol=1e-4)
    assert np.allclose(labels.GetDirection(), t1c.GetDirection(), atol=1e-5)
    pet = _read_series(study.series_by_role("PET").directory)
    assert study.pet_suv_native_path is not None
    suv = sitk.ReadImage(str(study.pet_suv_native_path))
    assert suv.GetSize() == pet.GetSize()
    assert np.allclose(suv.GetOrigin(), pet.GetOrigin(), atol=1e-3)


def test_series_are_on_different_grids_with_expected_orientations(study: PhantomStudy) -> None:
    grids = {}
    for series in study.series:
        image = _read_series(series.directory)
        assert image.GetSize()[2] == series.n_instances
        grids[series.role] = (
            image.GetSize(),
            np.round(image.GetOrigin(), 3),
            np.round(image.GetSpacing(), 4),
            np.round(image.GetDirection(), 5),
        )
    roles = list(grids)
    for i, a in enumerate(roles):
        for b in roles[i + 1 :]:
            ga, gb = grids[a], grids[b]
            same = (
                ga[0] == gb[0]
                and np.array_equal(ga[1], gb[1])
                and np.array_equal(ga[2], gb[2])
                and np.array_equal(ga[3], gb[3])
            )
            assert not same, f"{a} and {b} share a grid"
    # T1 is sagittal 3D with isotropic voxels; T2 axial 2D with thick slices.
    t1 = pydicom.dcmread(_files(study.series_by_role("T1").directory)[0])
    row, col = np.array(t1.ImageOrientationPatient[:3]), np.array(t1.ImageOrientationPatient[3:])
    assert abs(np.cross(row, col)[0]) > 0.95
    assert t1.MRAcquisitionType == "3D"
    assert float(t1.SliceThickness) == pytest.approx(float(t1.PixelSpacing[0]))
    t2 = pydicom.dcmread(_files(study.series_by_role("T2").directory)[0])
    row, col = np.array(t2.ImageOrientationPatient[:3]), np.array(t2.ImageOrientationPatient[3:])
    assert abs(np.cross(row, col)[2]) > 0.9
    assert t2.MRAcquisitionType == "2D"
    assert float(t2.SliceThickness) >= 4.0
    assert float(t2.SpacingBetweenSlices) >= float(t2.SliceThickness)


# --- contrasts --------------------------------------------------------------------------


def test_template_space_contrasts_look_like_gbm() -> None:
    s = simulate_subject(1, augment=False)
    lab = sitk.GetArrayFromImage(s.labels)
    wm = (sitk.GetArrayFromImage(s.wm) > 0.95) & (lab == 0)
    csf = (sitk.GetArrayFromImage(s.csf) > 0.95) & (sitk.GetArrayFromImage(s.brain_mask) > 0)
    gm = (sitk.GetArrayFromImage(s.gm) > 0.8) & (lab == 0)
    et, ncr, ed = lab == 3, lab == 1, lab == 2
    t1, t1c, t2, flair, pet = (
        sitk.GetArrayFromImage(im) for im in (s.t1, s.t1c, s.t2, s.flair, s.pet)
    )
    assert t1c[et].mean() > 1.2 * t1c[ncr].mean()
    assert t1c[et].mean() > 1.2 * t1c[wm].mean()
    assert t1[et].mean() < t1[wm].mean()  # no enhancement without contrast
    assert t1[wm].mean() > t1[gm].mean() > t1[csf].mean()
    assert flair[ed].mean() > 1.5 * flair[wm].mean()
    assert t2[ed].mean() > 1.5 * t2[wm].mean()
    assert t2[csf].mean() > t2[gm].mean() > t2[wm].mean()
    assert flair[csf].mean() < 0.5 * flair[wm].mean()
    normal = (sitk.GetArrayFromImage(s.brain_mask) > 0) & (lab == 0) & ~csf
    tbr = pet[et].mean() / pet[normal].mean()
    assert tbr > 1.5
    assert 0.8 < pet[gm].mean() < 1.6  # background cortex SUV


def test_native_t1c_shows_ring_enhancement(study: PhantomStudy) -> None:
    t1c = sitk.GetArrayFromImage(_read_series(study.series_by_role("T1c").directory))
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(study.labels_native_path)))
    et, ncr = lab == 3, lab == 1
    whole = lab > 0
    around = ndimage.binary_dilation(whole, iterations=4) & ~whole & (t1c > 0.5 * t1c[et].mean())
    assert t1c[et].mean() > 1.2 * t1c[ncr].mean()
    assert t1c[et].mean() > 1.2 * t1c[around].mean()
    flair_series = study.series_by_role("FLAIR")
    assert flair_series.n_instances > 0


def test_suv_from_header_matches_simulation(study: PhantomStudy) -> None:
    """SUVbw per QIBA from the DICOM header equals the simulated SUV (within 1 %)."""
    files = _files(study.series_by_role("PET").directory)
    datasets = [pydicom.dcmread(f) for f in files]
    first = datasets[0]
    assert first.Modality == "PT" and first.Units == "BQML"
    assert first.DecayCorrection == "START"
    assert "DECY" in first.CorrectedImage and "ATTN" in first.CorrectedImage
    rp = first.RadiopharmaceuticalInformationSequence[0]
    assert rp.RadionuclideCodeSequence[0].CodeMeaning == "^11^Carbon"
    assert float(rp.RadionuclideHalfLife) == pytest.approx(1223.1)
    # QIBA: scan time is the series date/time when it is not after the acquisition time.
    series_dt = dt.datetime.strptime(first.SeriesDate + first.SeriesTime[:6], "%Y%m%d%H%M%S")
    acq_dt = min(
        dt.datetime.strptime(d.AcquisitionDate + d.AcquisitionTime[:6], "%Y%m%d%H%M%S")
        for d in datasets
    )
    assert series_dt <= acq_dt
    start = dt.datetime.strptime(rp.RadiopharmaceuticalStartDateTime[:14], "%Y%m%d%H%M%S")
    decay = math.exp(-math.log(2) * (series_dt - start).total_seconds() / 1223.1)
    factor = float(first.PatientWeight) * 1000.0 / (float(rp.RadionuclideTotalDose) * decay)
    datasets.sort(key=lambda d: int(d.InstanceNumber))
    suv_header = (
        np.stack(
            [
                d.pixel_array.astype(np.float64) * float(d.RescaleSlope) + float(d.RescaleIntercept)
                for d in datasets
            ]
        )
        * factor
    )
    assert study.pet_suv_native_path is not None
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(study.pet_suv_native_path)))
    assert truth.shape == suv_header.shape
    hot = truth > 0.2
    rel = np.abs(suv_header[hot] - truth[hot]) / truth[hot]
    assert rel.max() < 0.01
    assert 2.0 < truth.max() < 8.0  # tumour SUVmax
    assert float(first.PatientWeight) == study.clinical.weight_kg


# --- identifiers and metadata -----------------------------------------------------------


def test_uids_are_valid_and_consistent(study: PhantomStudy) -> None:
    sop_uids: set[str] = set()
    mr_for: set[str] = set()
    pet_for: set[str] = set()
    for role, ds in _all_datasets(study):
        for uid in (
            ds.StudyInstanceUID,
            ds.SeriesInstanceUID,
            ds.SOPInstanceUID,
            ds.FrameOfReferenceUID,
            ds.file_meta.MediaStorageSOPInstanceUID,
        ):
            assert len(uid) <= 64 and UID_RE.match(uid), uid
        assert ds.StudyInstanceUID == study.study_instance_uid
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        sop_uids.add(ds.SOPInstanceUID)
        (pet_for if role == "PET" else mr_for).add(ds.FrameOfReferenceUID)
        assert str(ds.PatientName) == "PHANTOM^GBM1"
        assert ds.PatientID == "PHGBM-000001"
    assert len(sop_uids) == sum(s.n_instances for s in study.series)
    assert len(mr_for) == 1 and len(pet_for) == 1 and mr_for != pet_for
    assert len({s.series_instance_uid for s in study.series}) == len(study.series)


def test_mr_headers_are_vendor_like(study: PhantomStudy) -> None:
    expected = {
        "T1": ("GR", None, 2000, 4),
        "T1c": ("GR", "Gadobutrol", 2000, 4),
        "T2": ("SE", None, 4000, 80),
        "FLAIR": ("SE", None, 8000, 80),
    }
    for role, (seq, agent, min_tr, min_te) in expected.items():
        ds = pydicom.dcmread(_files(study.series_by_role(role).directory)[0])
        assert ds.Modality == "MR"
        value = ds.ScanningSequence
        assert seq in ([value] if isinstance(value, str) else list(value))
        assert float(ds.RepetitionTime) >= min_tr
        assert float(ds.EchoTime) >= min_te if role in ("T2", "FLAIR") else True
        assert ds.get("ContrastBolusAgent") == agent
        assert ds.ImageType[:2] == ["ORIGINAL", "PRIMARY"]
        assert ds.BitsStored == 12 and ds.HighBit == 11 and ds.PixelRepresentation == 0
        assert ds.pixel_array.max() <= 4095
        assert "WindowCenter" in ds and "WindowWidth" in ds
    flair = pydicom.dcmread(_files(study.series_by_role("FLAIR").directory)[0])
    assert list(flair.ScanningSequence) == ["SE", "IR"] and float(flair.InversionTime) > 2000


def test_clinical_json(study: PhantomStudy) -> None:
    data = json.loads(study.clinical_json_path.read_text())
    for key in (
        "seed",
        "age_years",
        "sex",
        "weight_kg",
        "idh_mutant",
        "mgmt_methylated",
        "egfr_amplified",
        "overall_survival_days",
        "death_observed",
        "tumour",
        "label_values",
    ):
        assert key in data
    assert data["seed"] == 1 and data["sex"] in ("M", "F")
    for key in (
        "necrosis_ml",
        "enhancing_ml",
        "oedema_ml",
        "whole_tumour_ml",
        "lobe",
        "hemisphere",
        "centre_template_mm",
    ):
        assert key in data["tumour"]
    assert data["label_values"] == {"necrotic_core": 1, "oedema": 2, "enhancing_tumour": 3}
    assert data == json.loads(
        json.dumps(
            study.clinical.to_dict()
            | {"schema": data["schema"], "size": "small", "label_values": data["label_values"]}
        )
    )


def test_marker_associations_hold_in_the_generative_model() -> None:
    draws = [draw_baseline(rng_stream(s, 1)) for s in range(3000)]
    idh = np.array([d.idh_mutant for d in draws])
    age = np.array([d.age_years for d in draws])
    frontal = np.array([d.lobe == "frontal" for d in draws])
    necrosis = np.array([d.necrosis_fraction for d in draws])
    egfr = np.array([d.egfr_amplified for d in draws])
    oedema = np.array([d.oedema_fraction for d in draws])
    mgmt = np.array([d.mgmt_methylated for d in draws])
    assert 0.10 < idh.mean() < 0.20
    assert age[idh].mean() < age[~idh].mean() - 10
    assert frontal[idh].mean() > frontal[~idh].mean() + 0.15
    assert necrosis[idh].mean() < necrosis[~idh].mean() - 0.1
    assert oedema[egfr].mean() > oedema[~egfr].mean() + 0.05
    # Survival: longer with MGMT methylation, shorter with a bigger core and with age.
    days = np.array([draw_survival(rng_stream(s, 3), d, 30.0)[0] for s, d in enumerate(draws)])
    assert np.median(days[mgmt & ~idh]) > np.median(days[~mgmt & ~idh])
    big = np.array([draw_survival(rng_stream(s, 3), d, 90.0)[0] for s, d in enumerate(draws)])
    assert np.median(big) < np.median(days)
    old = age > 65
    assert np.median(days[old & ~idh]) < np.median(days[~old & ~idh])
    events = [draw_survival(rng_stream(s, 3), d, 30.0)[1] for s, d in enumerate(draws)]
    assert 0.3 < np.mean(events) < 0.98  # some censoring


@pytest.mark.slow
def test_without_pet_and_logs_carry_no_phi(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as events:
        study = write_study(tmp_path, seed=3, with_pet=False)
    assert [s.role for s in study.series] == ["T1", "T2", "FLAIR", "T1c"]
    assert study.pet_suv_native_path is None
    text = repr(events)
    assert study.study_instance_uid in text  # the study was logged ...
    assert "PHANTOM^GBM" not in text and "PHGBM-" not in text  # ... without PHI
    assert "PHA" + "0" * 9 not in text


def test_montage_is_written(study: PhantomStudy, tmp_path: Path) -> None:
    png = tmp_path / "montage.png"
    write_montage(study, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < 600_000
