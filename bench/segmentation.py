"""Tumour segmentation scored by the BraTS organisers' ``brats-evaluation`` (issue 17).

Sets (each case one the models never trained on):

- ``synth``: held-out domain-randomised samples (``rgcds.phantom.synth``, seeds 900000..),
  on the model grid, normalised as the card says;
- ``phantom``: full-head ``rgcds.phantom`` studies (seeds 700000..) written as DICOM and read
  back through the pipeline's own stages (index, classify, convert, preprocess with brain
  extraction, segmentation, quality gate), labels on the native T1c grid against the truth
  written there; the study has a 3D sagittal T1, thick 2D axial T2 (5 mm) and FLAIR (4 mm)
  and a 3D axial T1c, each in its own head pose;
- ``enhanced``: the same with the T1c as one Legacy Converted Enhanced MR object;
- ``jpeg2000``: the same with every MR instance re-encoded JPEG 2000 (lossless);
- ``ge``: the same with GE-style series descriptions and equipment.

The scores are the peer's: ``brats-evaluation`` (BraTS 2024 glioma config ``gli``; Panoptica
underneath) reads the prediction and reference NIfTI files and reports global Dice, HD95,
lesion-wise Dice and the false-positive lesions per region; this script only gathers its CSV.
It runs in its own environment (``make bench-extra`` → ``.venv-bench``). Its HD95 is in voxels
(it does not pass the voxel spacing on); the table converts with the grid's isotropic spacing.

Per set and model the table gives medians (Dice WT/TC/ET, HD95 WT in mm, lesion-wise Dice WT,
false-positive WT lesions per study), the quality gate's passes and seconds per case; with two
models, the second is the baseline and the ratio of median Dice WT is printed.

    .venv/bin/python bench/segmentation.py --model brats-unet-synth --model brats-unet-phantom \\
        --sets synth,phantom,enhanced,jpeg2000,ge --n 10 --json docs/results/segmentation.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETS = ("synth", "phantom", "enhanced", "jpeg2000", "ge")
SEED_BASE = {"synth": 900_000, "phantom": 700_000, "enhanced": 710_000, "jpeg2000": 720_000,
             "ge": 730_000}
EVALUATOR = ROOT / ".venv-bench" / "bin" / "python"

#: GE-style protocol names and equipment (SIGNA; BRAVO is GE's 3D IR-prepared T1 GRE).
GE_NAMES = {"T1": "Sag 3D T1 BRAVO", "T2": "Ax T2 FRFSE", "FLAIR": "Ax T2 FLAIR",
            "T1c": "Ax 3D T1 BRAVO +C"}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


#: (model, set, seed) -> the axial slice through the truth's centre: T1c, FLAIR, truth, prediction.
SLICES: dict[tuple[str, str, int], tuple[np.ndarray, ...]] = {}


def _slices(t1c: np.ndarray, flair: np.ndarray, truth: np.ndarray,
            predicted: np.ndarray) -> tuple[np.ndarray, ...]:
    z = round(float(np.argwhere(truth > 0)[:, 0].mean())) if truth.any() else \
        truth.shape[0] // 2
    return tuple(np.asarray(a[z], dtype=np.float32) for a in (t1c, flair, truth, predicted))


def montage(rows: list[dict[str, Any]], model: str, path: Path) -> None:
    """Best, median and worst two cases of ``model`` (by Dice WT): T1c and FLAIR, truth
    outline green, prediction outline red."""
    from PIL import Image, ImageDraw
    from scipy.ndimage import binary_erosion

    scored = sorted((r for r in rows if r["model"] == model and r.get("dice_wt") is not None),
                    key=lambda r: r["dice_wt"], reverse=True)
    if not scored:
        return
    mid = len(scored) // 2
    picks = list({id(r): r for r in (*scored[:2], *scored[max(0, mid - 1):mid + 1],
                                       *scored[-2:])}.values())
    size = 224
    sheet = Image.new("RGB", (2 * size * 3, (size + 18) * 2), "black")
    draw = ImageDraw.Draw(sheet)
    for n, row in enumerate(picks[:6]):
        t1c, flair, truth, predicted = SLICES[(model, row["set"], row["seed"])]
        for k, grey in enumerate((t1c, flair)):
            lo, hi = np.percentile(grey, (1, 99.5))
            g = np.clip((grey - lo) / max(hi - lo, 1e-6), 0, 1) * 255
            rgb = np.repeat(g[..., None], 3, axis=2).astype(np.uint8)
            for mask, colour in ((truth > 0, (0, 255, 0)), (predicted > 0, (255, 0, 0))):
                rgb[mask & ~binary_erosion(mask)] = colour
            tile = Image.fromarray(rgb).resize((size, size), Image.NEAREST)
            x, y = (n % 3) * 2 * size + k * size, (n // 3) * (size + 18)
            sheet.paste(tile, (x, y + 18))
        draw.text(((n % 3) * 2 * size + 4, (n // 3) * (size + 18) + 3),
                  f"{row['set']} seed {row['seed']}: Dice WT {row['dice_wt']:.3f} "
                  f"(truth {row['truth_wt_ml']} ml)", fill="white")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def _write(array: np.ndarray, like: sitk.Image, path: Path) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(like)
    sitk.WriteImage(image, str(path))


def synth_case(seed: int, model: str, models_root: Path, tmp: Path) -> tuple[
    np.ndarray, np.ndarray, sitk.Image, dict[str, Any]
]:
    """A held-out domain-randomised sample segmented on the model grid."""
    from rgcds.analysis.qc import check_segmentation, whole_tumour_dice
    from rgcds.config import ProcessingSettings
    from rgcds.inference import ModelRegistry, segment, select_backend
    from rgcds.pipeline.stages import clean_labels
    from rgcds.settings import QcSettings
    from rgcds.training.segmentation.data import read_case, write_phantom_case

    case = read_case(write_phantom_case(seed, tmp / "synth", kind="synth"))
    card = ModelRegistry(models_root).get(model)
    backend = select_backend(card, "onnxruntime")
    x = case.images  # segment() normalises as the card says (z-score in the brain)
    start = time.perf_counter()
    margin = ProcessingSettings().tumour_brain_margin_mm

    def clean(labels: np.ndarray, brain: np.ndarray) -> np.ndarray:
        return clean_labels(labels, brain, (2.0,) * 3, margin)[0]  # as the pipeline's stage

    labels = clean(segment(x, card, backend, brain_mask=case.brain), case.brain)
    flipped = np.ascontiguousarray(case.brain[..., ::-1])
    mirrored = clean(segment(np.ascontiguousarray(x[..., ::-1]), card, backend,
                             brain_mask=flipped), flipped)[..., ::-1]
    seconds = time.perf_counter() - start
    verdict = check_segmentation(labels, case.brain, (2.0,) * 3, QcSettings(),
                                 flip_dice=whole_tumour_dice(labels, mirrored))
    grid = sitk.GetImageFromArray(case.labels.astype(np.uint8))
    grid.SetSpacing((2.0,) * 3)
    SLICES[(model, "synth", seed)] = _slices(case.images[1], case.images[3], case.labels, labels)
    return labels, case.labels, grid, {"qc_passed": verdict.passed, "qc_reason": verdict.reason,
                                       "seconds": round(seconds, 1)}


def _jpeg2000(folder: Path) -> None:
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        if ds.Modality != "MR":
            continue
        ds.compress(JPEG2000Lossless)
        ds.save_as(path, enforce_file_format=True)


def _ge(folder: Path) -> None:
    import pydicom

    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        if ds.Modality != "MR":
            continue
        role = next((r for r, name in _siemens_roles().items()
                     if ds.SeriesDescription == name), None)
        if role is not None:
            ds.SeriesDescription = GE_NAMES[role]
            ds.ProtocolName = GE_NAMES[role]
        ds.Manufacturer = "GE MEDICAL SYSTEMS"
        ds.ManufacturerModelName = "SIGNA Premier"
        if "SequenceName" in ds:
            del ds.SequenceName
        ds.save_as(path, enforce_file_format=True)


def _siemens_roles() -> dict[str, str]:
    from rgcds.phantom._series import PROTOCOLS

    return {role: p.description for role, p in PROTOCOLS.items() if role != "PET"}


def dicom_case(kind: str, seed: int, model: str, models_root: Path, tmp: Path) -> tuple[
    np.ndarray, np.ndarray, sitk.Image, dict[str, Any]
]:
    """A full-head phantom study through the pipeline's stages, scored on the native grid."""
    from rgcds.config import Settings, load_settings
    from rgcds.exceptions import SegmentationQualityError
    from rgcds.phantom import write_study
    from rgcds.pipeline import StudyContext, stages
    from rgcds.results.testing import write_enhanced_series
    from rgcds.study import SeriesRole

    folder = tmp / f"{kind}-{seed}"
    shutil.rmtree(folder, ignore_errors=True)  # a previous model's run converted its T1c
    study = write_study(folder, seed=seed, size="small", with_pet=False)
    if kind == "enhanced":
        write_enhanced_series(study.series_by_role("T1c").directory, shuffle_seed=seed)
    elif kind == "jpeg2000":
        _jpeg2000(study.out_dir / "dicom")
    elif kind == "ge":
        _ge(study.out_dir / "dicom")
    truth_image = sitk.ReadImage(str(study.labels_native_path))
    data = load_settings(None).model_dump()
    data["inference"]["models_root"] = str(models_root)
    data["processing"]["segmentation_model"] = model
    data["research_mode"] = True
    settings = Settings(**data)
    ctx = StudyContext(inputs=(study.out_dir / "dicom",), work_dir=tmp / f"work-{model}-{seed}",
                       settings=settings)
    start = time.perf_counter()
    selection = stages.classify(ctx, stages.index(ctx))
    converted = stages.convert(ctx, selection)
    card = stages.segmentation_card(ctx)
    pre, to_mni = stages.preprocess(ctx, converted, card)
    seg = stages.run_segmentation(ctx, pre, to_mni, card)
    seconds = time.perf_counter() - start
    try:
        stages.quality_control(ctx, seg)
        passed, reason = True, ""
    except SegmentationQualityError as exc:
        passed, reason = False, str(exc)
    predicted = sitk.GetArrayFromImage(seg.labels_native)
    truth = sitk.GetArrayFromImage(truth_image)
    # The model grid lies in the T1c's physical frame (every series registered to it).
    t1c = converted.volumes[SeriesRole.T1C].image
    flair = seg.model_images.get("FLAIR")
    flair_on_t1c = t1c if flair is None else sitk.Resample(flair, t1c, sitk.Transform(),
                                                           sitk.sitkLinear, 0.0)
    SLICES[(model, kind, seed)] = _slices(sitk.GetArrayFromImage(t1c),
                                          sitk.GetArrayFromImage(flair_on_t1c), truth, predicted)
    roles = sorted(r.value for r in converted.volumes)
    return predicted, truth, truth_image, {"qc_passed": passed, "qc_reason": reason,
                                           "seconds": round(seconds, 1), "roles": roles}


def evaluate(folder: Path, evaluator: Path) -> dict[str, dict[str, float]]:
    """Run brats-evaluation on ``folder/ref`` and ``folder/pred``; its CSV row per subject."""
    summary = folder / "summary.json"
    subprocess.run([str(evaluator), "-m", "brats_evaluation.evaluation", "--ref_path",
                    str(folder / "ref"), "--pred_path", str(folder / "pred"), "--config", "gli",
                    "--summary_json", str(summary)], check=True, capture_output=True)
    table = folder / "metrics.csv"
    subprocess.run([str(evaluator), "-c", "import sys; from brats_evaluation import "
                    "parse_seg_results; parse_seg_results(sys.argv[1], sys.argv[2])",
                    str(summary), str(table)], check=True, capture_output=True)
    with table.open() as f:
        return {row["subject_id"]: {k: float(v) for k, v in row.items()
                                    if k != "subject_id" and v not in ("", "nan")}
                for row in csv.DictReader(f)}


def run_set(kind: str, model: str, n: int, models_root: Path, tmp: Path,
            evaluator: Path) -> list[dict[str, Any]]:
    folder = tmp / f"{model}-{kind}"
    (folder / "ref").mkdir(parents=True)
    (folder / "pred").mkdir()
    rows: list[dict[str, Any]] = []
    for i in range(n):
        seed = SEED_BASE[kind] + i
        if kind == "synth":
            pred, ref, grid, extra = synth_case(seed, model, models_root, tmp)
        else:
            pred, ref, grid, extra = dicom_case(kind, seed, model, models_root, tmp)
        name = f"BraTS-GLI-{i:05d}-000.nii.gz"
        _write(ref, grid, folder / "ref" / name)
        _write(pred, grid, folder / "pred" / name)
        rows.append({"set": kind, "model": model, "seed": seed, "file": name,
                     "spacing_mm": round(float(grid.GetSpacing()[0]), 3),
                     "truth_wt_ml": round(float((ref > 0).sum()) * float(np.prod(
                         grid.GetSpacing())) / 1000.0, 1), **extra})
        print(json.dumps(rows[-1]), flush=True)
    scores = evaluate(folder, evaluator)
    for row in rows:
        s = scores.get(row["file"], {})
        spacing = row["spacing_mm"]
        row.update({
            "dice_wt": s.get("global_dsc_wt"), "dice_tc": s.get("global_dsc_tc"),
            "dice_et": s.get("global_dsc_et"),
            "hd95_wt_mm": None if s.get("global_hd95_wt") is None
            else round(s["global_hd95_wt"] * spacing, 1),
            "lesionwise_dice_wt": s.get("lesionwise_dsc_mean_wt"),
            "fp_lesions_wt": s.get("all_instance_fp_wt"),
        })
    return rows


def _median(rows: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(statistics.median(values)) if values else float("nan")


def table(rows: list[dict[str, Any]], models: list[str]) -> list[str]:
    lines = ["| model | set | n | Dice WT | TC | ET | HD95 WT mm | lesion-wise Dice WT | "
             "FP lesions / study | QC passed | s / case |", "|" + "---|" * 11]
    base = models[-1] if len(models) > 1 else None
    ratios = []
    for kind in SETS:
        for model in models:
            sel = [r for r in rows if r["set"] == kind and r["model"] == model]
            if not sel:
                continue
            fp = statistics.mean(r["fp_lesions_wt"] or 0.0 for r in sel)
            lines.append(
                f"| {model} | {kind} | {len(sel)} | {_median(sel, 'dice_wt'):.3f} | "
                f"{_median(sel, 'dice_tc'):.3f} | {_median(sel, 'dice_et'):.3f} | "
                f"{_median(sel, 'hd95_wt_mm'):.1f} | {_median(sel, 'lesionwise_dice_wt'):.3f} | "
                f"{fp:.2f} | {sum(r['qc_passed'] for r in sel)}/{len(sel)} | "
                f"{_median(sel, 'seconds'):.1f} |")
        if base is not None:
            new = [r for r in rows if r["set"] == kind and r["model"] == models[0]]
            old = [r for r in rows if r["set"] == kind and r["model"] == base]
            if new and old:
                ratios.append(f"{kind}: median Dice WT {models[0]} / {base} = "
                              f"{_median(new, 'dice_wt') / max(_median(old, 'dice_wt'), 1e-6):.2f}")
    return lines + ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model id (repeat; the last is the "
                        "baseline)")
    parser.add_argument("--models-root", type=Path, default=ROOT / "models")
    parser.add_argument("--sets", default="synth,phantom")
    parser.add_argument("--n", type=int, default=10, help="cases per set")
    parser.add_argument("--evaluator", type=Path, default=EVALUATOR,
                        help="python of the environment holding brats-evaluation")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--montage", type=Path, help="PNG of the first model's best, median "
                        "and worst two cases (T1c, FLAIR; truth green, prediction red)")
    args = parser.parse_args()
    models = args.model or ["brats-unet-phantom"]
    kinds = [k for k in args.sets.split(",") if k]
    unknown = sorted(set(kinds) - set(SETS))
    if unknown:
        parser.error(f"unknown sets {unknown}; choose from {', '.join(SETS)}")
    if not args.evaluator.is_file():
        parser.error(f"{args.evaluator} not found: run `make bench-extra` (brats-evaluation)")
    print(f"load before: {load()}", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rgcds-bench-seg-") as tmp:
        for kind in kinds:
            for model in models:
                rows += run_set(kind, model, args.n, args.models_root, Path(tmp) / kind,
                                args.evaluator)
                if args.json:  # kept as it goes: a late failure loses nothing scored
                    args.json.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    lines = table(rows, models)
    print("\n".join(lines))
    if args.montage:
        montage(rows, models[0], args.montage)
    print(f"load after: {load()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": lines}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
