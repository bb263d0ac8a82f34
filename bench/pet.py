"""Benchmark of the post-operative amino-acid PET read on phantoms (prints figures; no asserts).

For each seed (70000.., never used in training), :func:`rgcds.phantom.simulate_postop` gives a
post-operative subject in template space: MR, the [11C]MET PET (SUVbw, PSF-blurred, noisy,
with physiological extra-cerebral uptake and sub-threshold surgical-margin uptake), the
resection cavity / oedema / residual-enhancement labels, the biological residual tumour
and the ESTRO-EANO CTV. The PET is moved onto a separate 2.5 mm PET grid with a random
rigid pose (up to 8 degrees and 12 mm), then, as in the pipeline:

1. registered back to the T1 (Mattes MI, rigid) and scored (NMI);
2. analysed on its own grid with the MR masks (brain, cavity + residual enhancement, CTV)
   mapped through the registration: TBRmax, SUV, BTV (EANM/EANO/RANO/SNMMI, MET 1.3);
3. residual-tumour detection: the PET resampled through the registration and the T1c
   inside the CTV go to the shipped models (3D DenseNet on PET, LR on T1c radiomics, mean).

Timed: steps 1-3 per study. Truth: the noise-free PET on the template grid with the same
background VOI definition on the truth masks; truth TBRmax = its max in the CTV / its
background; threshold BTV = CTV voxels >= 1.3 x background of the noise-free PET (it holds
normal grey matter and margin uptake too); residual truth = the phantom's residual tumour
(nodule + infiltrative part). Reported: time per study, median |TBRmax error|, BTV Dice
against the residual truth where it is >= 1 cm3 and the share of residual-free phantoms with
a BTV < 0.5 ml, each for the BTV with the plausibility rules (:mod:`rgcds.analysis.btv`) and,
as the baseline in the same run, for the guideline BTV (every supra-threshold voxel of the
CTV); residual-detection accuracy (sensitivity, specificity) against residual_present.

Caveat: the phantom lives in template space and its grey matter is the template's, so the
grey-matter prior (the template's grey matter, identity transform here) fits it exactly; on
a scanner image it comes through the brain extractor's template registration.

``--pipeline K`` also runs K post-operative pairs through the whole DICOM pipeline
(``write_postop_study`` -> ``run_study`` with the PET/CT study as partner, no RT Structure
Set: post-operative segmentation model, derived CTV) and reports the PET stage time, the
whole run time, the BTV and CTV volumes (and whether the CTV was refused) and residual
detection against the truth.

Run: ``.venv/bin/python bench/pet.py --n 20 [--pipeline 5]``
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import structlog

from rgcds.analysis.pet import (
    PetMeasurements,
    PetSettings,
    analyse_pet,
    contralateral_background,
    register_pet_to_mr,
)
from rgcds.analysis.residual import predict_residual, residual_inputs
from rgcds.exceptions import ModelError
from rgcds.imaging.resample import GridGeometry, resample_onto
from rgcds.inference.registry import DEFAULT_MODELS_ROOT
from rgcds.phantom import simulate_postop
from rgcds.phantom.postop import LABEL_CAVITY, LABEL_RESIDUAL_ENHANCING, _postop_clean
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


def _mask(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(like)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="number of phantoms (default 20)")
    parser.add_argument("--seed0", type=int, default=70_000)
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS_ROOT)
    parser.add_argument("--pipeline", type=int, default=0,
                        help="also run this many pairs through the whole DICOM pipeline")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    settings = PetSettings()
    # The guideline BTV: every rule off (no size, distance, margin, grey-matter, edge rule).
    guideline = PetSettings(btv_min_component_ml=0.0, btv_max_distance_mm=1e9,
                            btv_brain_edge_mm=0.0)
    from rgcds.templates import template_grey_matter

    grey_template = template_grey_matter()
    threshold = settings.tbr_thresholds["MET"]
    suv = SuvResult(PetQuantity.SUVBW, 1.0, "phantom PET is in SUVbw")
    times: list[float] = []
    tbr_err: list[float] = []
    dices: list[float] = []
    dice_rules: list[float] = []
    dice_guideline: list[float] = []
    empty_rules: list[bool] = []
    empty_guideline: list[bool] = []
    calls: list[tuple[bool, bool]] = []
    models_missing = ""
    for seed in range(args.seed0, args.seed0 + args.n):
        subject = simulate_postop(seed, "small")
        clean = _postop_clean(seed, "small")
        rng = np.random.default_rng(1000 + seed)
        mr, brain_img = subject.t1, subject.brain_mask
        labels = sitk.GetArrayFromImage(subject.labels)
        tumour = (labels == LABEL_CAVITY) | (labels == LABEL_RESIDUAL_ENHANCING)
        tumour_img = _mask(tumour, subject.labels)
        centre = mr.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in mr.GetSize()])
        true = _rigid(rng, centre, 8.0, 12.0)  # PET-grid points -> template points
        pet = resample_onto(subject.pet, _pet_grid(mr, 2.5), transform=true)

        start = time.perf_counter()
        reg, quality = register_pet_to_mr(mr, pet, brain_img)
        cavity_img = _mask(labels == LABEL_CAVITY, subject.labels)
        grey_img = sitk.Cast(
            resample_onto(grey_template, GridGeometry.of(mr)) >= 0.5, sitk.sitkUInt8
        )
        result = analyse_pet(
            pet, tracer=PetTracer.MET, suv=suv, brain_mask=brain_img, tumour_mask=tumour_img,
            ctv=subject.ctv, transform=reg.transform, registration=quality, settings=settings,
            cavity_mask=cavity_img, grey_matter=grey_img,
        )
        present: bool | None = None
        try:
            pet_on_mr = resample_onto(pet, GridGeometry.of(mr), transform=reg.transform)
            inputs = residual_inputs(pet_on_mr, subject.t1c, subject.ctv, brain_img,
                                     settings=settings)
            residual = predict_residual(args.models, inputs.pet_input, inputs.t1c_features)
            present = residual.present
        except ModelError as exc:
            models_missing = str(exc)
        times.append(time.perf_counter() - start)
        assert isinstance(result, PetMeasurements)
        plain = analyse_pet(
            pet, tracer=PetTracer.MET, suv=suv, brain_mask=brain_img, tumour_mask=tumour_img,
            ctv=subject.ctv, transform=reg.transform, registration=quality, settings=guideline,
        )
        assert isinstance(plain, PetMeasurements)

        truth = clean.images["PET"].astype(np.float64)
        brain = sitk.GetArrayFromImage(brain_img) > 0
        ctv = (sitk.GetArrayFromImage(subject.ctv) > 0) & brain
        voi = contralateral_background(mr, brain, tumour, settings)
        bg = float(truth[voi.mask].mean())
        truth_tbr = float(truth[ctv].max()) / bg
        truth_btv = ctv & (truth >= threshold * bg)
        tbr_err.append(abs(result.tbr_max - truth_tbr) / truth_tbr)
        spacing = tuple(reversed(mr.GetSpacing()))
        btv_ml = truth_btv.sum() * float(np.prod(spacing)) / 1000.0
        dice = float("nan")
        residual_truth = clean.residual
        dice_r = dice_g = float("nan")
        if subject.clinical.residual_ml >= 1.0 and result.btv_mr is not None:
            dice = _dice(sitk.GetArrayFromImage(result.btv_mr) > 0, truth_btv)
            dices.append(dice)
            dice_r = _dice(sitk.GetArrayFromImage(result.btv_mr) > 0, residual_truth)
            dice_rules.append(dice_r)
            if plain.btv_mr is not None:
                dice_g = _dice(sitk.GetArrayFromImage(plain.btv_mr) > 0, residual_truth)
                dice_guideline.append(dice_g)
        if not subject.clinical.residual_present:
            empty_rules.append(result.btv_ml < 0.5)
            empty_guideline.append(plain.btv_ml < 0.5)
        actual = subject.clinical.residual_present
        if present is not None:
            calls.append((present, actual))
        print(
            f"seed {seed}: {times[-1]:5.2f} s  TBRmax {result.tbr_max:5.2f} "
            f"(truth {truth_tbr:5.2f})  BTV {result.btv_ml:6.1f} ml, guideline "
            f"{plain.btv_ml:6.1f} ml (residual {subject.clinical.residual_ml:5.1f} ml, threshold "
            f"truth {btv_ml:6.1f})  Dice vs residual {dice_r:.3f} (guideline {dice_g:.3f})  "
            f"NMI {quality.nmi:.3f}  residual {actual} -> {present}",
            flush=True,
        )
    med, mx = np.median, np.max
    print(f"\npost-operative phantoms: {args.n} (seeds {args.seed0}-{args.seed0 + args.n - 1})")
    print(
        "PET analysis time per study (registration + QC + analysis + residual models): "
        f"median {med(times):.2f} s, max {mx(times):.2f} s (target <= 15 s on 2 cores)"
    )
    print(
        f"median |TBRmax error|: {100 * med(tbr_err):.1f} % "
        f"(max {100 * mx(tbr_err):.1f} %; target <= 10 %)"
    )
    if dices:
        print(
            f"BTV Dice vs the threshold truth where residual >= 1 cm3 (n={len(dices)}): "
            f"median {med(dices):.3f}, min {np.min(dices):.3f}"
        )
    if dice_rules and dice_guideline:
        print(
            f"BTV Dice vs the residual tumour (n={len(dice_rules)}): with the rules median "
            f"{med(dice_rules):.3f} (min {np.min(dice_rules):.3f}); guideline BTV median "
            f"{med(dice_guideline):.3f}; ratio "
            f"{med(dice_rules) / max(med(dice_guideline), 1e-9):.2f}"
            " (target >= 0.70)"
        )
    if empty_rules:
        print(
            f"residual-free phantoms with BTV < 0.5 ml: with the rules "
            f"{sum(empty_rules)}/{len(empty_rules)}, guideline BTV "
            f"{sum(empty_guideline)}/{len(empty_guideline)} (target >= 90 %)"
        )
    if calls:
        tp = sum(p and a for p, a in calls)
        tn = sum((not p) and (not a) for p, a in calls)
        pos = sum(a for _, a in calls)
        neg = len(calls) - pos
        print(
            f"residual-tumour detection accuracy: {(tp + tn) / len(calls):.2f} "
            f"({tp + tn}/{len(calls)}); sensitivity {tp}/{pos}, specificity {tn}/{neg}"
        )
    else:
        print(f"residual-tumour detection not run: {models_missing}")
    if args.pipeline:
        _through_pipeline(args.seed0 + args.n, args.pipeline, args.models)


def _through_pipeline(seed0: int, k: int, models: Path) -> None:
    import tempfile

    from rgcds.config import Settings
    from rgcds.phantom import write_postop_study
    from rgcds.pipeline import StudyContext, run_study

    settings = Settings(inference={"models_root": models})  # type: ignore[arg-type]
    pet_s: list[float] = []
    total_s: list[float] = []
    calls: list[tuple[bool, bool]] = []
    for seed in range(seed0, seed0 + k):
        with tempfile.TemporaryDirectory() as tmp:
            pair = write_postop_study(Path(tmp) / "pair", seed=seed)
            ctx = StudyContext(inputs=(pair.mr_dir,), work_dir=Path(tmp) / "work",
                               settings=settings, partner_inputs=(pair.petct_dir,))
            start = time.perf_counter()
            outcome = run_study(ctx)
            total_s.append(time.perf_counter() - start)
        pet_s.append(outcome.stage_seconds.get("pet", float("nan")))
        pet_summary = outcome.summary.get("pet")
        btv = pet_summary.get("btv_ml") if isinstance(pet_summary, dict) else None
        btv_all = pet_summary.get("btv_candidate_ml") if isinstance(pet_summary, dict) else None
        residual = outcome.summary.get("residual_tumour")
        present = bool(residual["present"]) if isinstance(residual, dict) else None
        actual = pair.clinical.residual_present
        if present is not None:
            calls.append((present, actual))
        print(f"pipeline seed {seed}: {outcome.status}, run {total_s[-1]:5.1f} s, PET stage "
              f"{pet_s[-1]:4.2f} s, BTV {btv} ml (above threshold {btv_all} ml; residual "
              f"truth {pair.clinical.residual_ml} ml), CTV {outcome.summary.get('ctv_ml')} ml "
              f"refused={outcome.summary.get('ctv_refused')}, residual {actual} -> {present}",
              flush=True)
    right = sum(p == a for p, a in calls)
    print(
        f"\nthrough the DICOM pipeline ({k} pairs): PET stage median {np.median(pet_s):.2f} s, "
        f"whole run median {np.median(total_s):.1f} s; residual detection {right}/{len(calls)}"
    )


if __name__ == "__main__":
    main()
