"""Benchmark of the amino-acid PET analysis on phantoms (prints figures; no asserts).

For each seed, the phantom's template-space [11C]MET PET (SUVbw, PSF-blurred, noisy) is moved
onto a separate PET grid (2.5 mm, random rigid pose: up to 8 degrees and 12 mm), registered
back to the phantom T1 (Mattes MI, rigid), scored (NMI), and analysed with the truth brain
mask and tumour (ET + NCR) as MR masks. Truth: the noise-free PET on the template grid, with
the same background VOI definition on the truth masks; truth TBRmax = its max in the search
region (tumour + 15 mm within the brain) / its background; truth BTV = its voxels >=
1.3 x background in the search region. Reported: analysis time per study (registration +
quality + analysis), median |TBRmax error|, BTV Dice (truth BTV >= 1 cm3), NMI for correct
and deliberately wrong (15 mm, 10 degrees) transforms.

Run: ``.venv/bin/python bench/pet.py --n 20``
"""

from __future__ import annotations

import argparse
import logging
import math
import time

import numpy as np
import SimpleITK as sitk
import structlog
from scipy import ndimage

from rgcds.analysis.pet import (
    PetMeasurements,
    PetSettings,
    analyse_pet,
    contralateral_background,
    register_pet_to_mr,
    registration_quality,
)
from rgcds.imaging.registration import RegistrationResult
from rgcds.imaging.resample import GridGeometry, resample_onto
from rgcds.phantom import simulate_subject
from rgcds.phantom.simulate import simulate_clean
from rgcds.study.enums import PetQuantity, PetTracer
from rgcds.study.suv import SuvResult


def _pet_grid(reference: sitk.Image, spacing: float) -> GridGeometry:
    size = reference.GetSize()
    old = reference.GetSpacing()
    n = tuple(math.ceil(s * o / spacing) for s, o in zip(size, old, strict=True))
    origin = reference.GetOrigin()
    return GridGeometry(
        size=(n[0], n[1], n[2]),
        spacing=(spacing, spacing, spacing),
        origin=(origin[0] - 3.0, origin[1] + 1.0, origin[2] - 2.0),
        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
    )


def _rigid(
    rng: np.random.Generator, centre: tuple[float, ...], deg: float, mm: float
) -> sitk.Euler3DTransform:
    t = sitk.Euler3DTransform()
    t.SetCenter(centre)
    angles = np.deg2rad(rng.uniform(-deg, deg, 3))
    t.SetRotation(float(angles[0]), float(angles[1]), float(angles[2]))
    t.SetTranslation(tuple(float(v) for v in rng.uniform(-mm, mm, 3)))
    return t


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2.0 * (a & b).sum() / total) if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="number of phantoms (default 20)")
    parser.add_argument("--seed0", type=int, default=0)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    settings = PetSettings()
    threshold = settings.tbr_thresholds["MET"]
    suv = SuvResult(PetQuantity.SUVBW, 1.0, "phantom PET is in SUVbw")
    times: list[float] = []
    tbr_err: list[float] = []
    dices: list[float] = []
    nmi_good: list[float] = []
    nmi_bad: list[float] = []
    reg_err: list[float] = []
    passed = 0
    for seed in range(args.seed0, args.seed0 + args.n):
        subject = simulate_subject(seed, "small")
        clean = simulate_clean(seed, "small")
        rng = np.random.default_rng(1000 + seed)
        mr, brain_img = subject.t1, subject.brain_mask
        labels = sitk.GetArrayFromImage(subject.labels)
        tumour = (labels == 1) | (labels == 3)
        tumour_img = sitk.GetImageFromArray(tumour.astype(np.uint8))
        tumour_img.CopyInformation(subject.labels)
        centre = mr.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in mr.GetSize()])
        true = _rigid(rng, centre, 8.0, 12.0)  # PET-grid points -> template points
        pet = resample_onto(subject.pet, _pet_grid(mr, 2.5), transform=true)

        start = time.perf_counter()
        reg, quality = register_pet_to_mr(mr, pet, brain_img)
        result = analyse_pet(
            pet,
            tracer=PetTracer.MET,
            suv=suv,
            brain_mask=brain_img,
            tumour_mask=tumour_img,
            transform=reg.transform,
            registration=quality,
            settings=settings,
        )
        times.append(time.perf_counter() - start)
        nmi_good.append(quality.nmi)
        corners = [
            (centre[0] + dx, centre[1] + dy, centre[2] + dz)
            for dx in (-60, 60)
            for dy in (-70, 70)
            for dz in (-40, 40)
        ]
        reg_err.append(
            max(
                float(
                    np.linalg.norm(
                        np.subtract(true.TransformPoint(reg.transform.TransformPoint(p)), p)
                    )
                )
                for p in corners
            )
        )
        passed += quality.passed
        wrong = sitk.Euler3DTransform(reg.transform)
        wrong.SetTranslation(
            tuple(v + d for v, d in zip(wrong.GetTranslation(), (15.0, 0, 0), strict=True))
        )
        rx, ry, rz = wrong.GetAngleX(), wrong.GetAngleY(), wrong.GetAngleZ()
        wrong.SetRotation(rx + math.radians(10.0), ry, rz)
        bad = registration_quality(mr, pet, RegistrationResult(wrong, 0.0, "perturbed"), brain_img)
        nmi_bad.append(bad.nmi)

        truth = clean.images["PET"].astype(np.float64)
        brain = sitk.GetArrayFromImage(brain_img) > 0
        spacing = tuple(reversed(mr.GetSpacing()))
        search = (
            ndimage.distance_transform_edt(~tumour, sampling=spacing) <= settings.ctv_margin_mm
        ) & brain
        voi = contralateral_background(mr, brain, tumour, settings)
        bg = float(truth[voi.mask].mean())
        truth_tbr = float(truth[search].max()) / bg
        truth_btv = search & (truth >= threshold * bg)
        assert isinstance(result, PetMeasurements)
        tbr_err.append(abs(result.tbr_max - truth_tbr) / truth_tbr)
        ml = truth_btv.sum() * float(np.prod(spacing)) / 1000.0
        dice = float("nan")
        if ml >= 1.0 and result.btv_mr is not None:
            dice = _dice(sitk.GetArrayFromImage(result.btv_mr) > 0, truth_btv)
            dices.append(dice)
        verdict = "pass" if quality.passed else "FAIL"
        print(
            f"seed {seed:3d}: {times[-1]:5.2f} s  TBRmax {result.tbr_max:5.2f} "
            f"(truth {truth_tbr:5.2f})  BTV {result.btv_ml:6.1f} ml (truth {ml:6.1f})  "
            f"Dice {dice:.3f}  reg error {reg_err[-1]:.2f} mm  NMI {quality.nmi:.3f} "
            f"(wrong {bad.nmi:.3f}) {verdict}",
            flush=True,
        )
    med, mx = np.median, np.max
    print(f"\nphantoms: {args.n}")
    print(
        "analysis time per study (registration + QC + analysis): "
        f"median {med(times):.2f} s, max {mx(times):.2f} s (target <= 15 s on 2 cores)"
    )
    print(
        f"median |TBRmax error|: {100 * med(tbr_err):.1f} % "
        f"(max {100 * mx(tbr_err):.1f} %; target <= 10 %)"
    )
    if dices:
        print(
            f"BTV Dice (truth BTV >= 1 cm3, n={len(dices)}): median {med(dices):.3f}, "
            f"min {np.min(dices):.3f} (target >= 0.75)"
        )
    print(
        f"NMI correct: median {med(nmi_good):.3f}, min {np.min(nmi_good):.3f}; "
        f"wrong (15 mm, 10 deg): median {med(nmi_bad):.3f}, max {mx(nmi_bad):.3f}; "
        f"threshold {settings.nmi_threshold}"
    )
    print(f"registrations passing QC: {passed}/{args.n}")
    print(
        "registration error (max over brain-box corners): "
        f"median {med(reg_err):.2f} mm, max {mx(reg_err):.2f} mm"
    )


if __name__ == "__main__":
    main()
