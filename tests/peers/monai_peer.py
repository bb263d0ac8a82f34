"""The MONAI side of the bundle agreement test; runs in the nnU-Net venv (MONAI, PyTorch).

``make-bundle OUT [--softmax]``: writes a small bundle shaped like the Model Zoo's
``brats_mri_segmentation`` (``configs/metadata.json``, ``configs/inference.json`` with
``LoadImaged``, ``EnsureChannelFirstd``, ``Orientationd(RAS)``, ``Spacingd(bilinear)``,
``NormalizeIntensityd(nonzero, channel_wise)``, a Gaussian ``SlidingWindowInferer``,
``Activationsd``, ``Invertd``, ``AsDiscreted`` and ``SaveImaged`` run by a
``SupervisedEvaluator``; ``models/model.pt``): a MONAI ``SegResNet`` with seeded weights (not
trained: agreement, not accuracy, is under test; the last layer is scaled so its outputs are
not all near the threshold). ``--softmax`` makes a 4-class softmax/argmax variant.

``time BUNDLE CASE_DIR RESULT.npz``: the same transforms, inferer and network in this
process, loaded once, timed per case (for ``bench/imported_models.py --monai``).

``run BUNDLE CASE_DIR RESULT.npz``: ``python -m monai.bundle run`` (MONAI's own runner) on
each case folder's ``c0..c3.nii.gz``; the saved predictions, read with nibabel, go to
RESULT.npz as ``(C, i, j, k)`` arrays.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def make_bundle(out: Path, softmax: bool, roi: tuple[int, int, int] = (32, 32, 24),
                brats_net: bool = False) -> None:
    import torch
    from monai.networks.nets import SegResNet

    n_out = 4 if softmax else 3
    (out / "configs").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(parents=True, exist_ok=True)
    outputs = ({"0": "background", "1": "necrotic core", "2": "edema", "3": "enhancing tumor"}
               if softmax else {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"})
    meta = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/"
                  "0.8.1/meta_schema_20220324.json",
        "version": "0.1.0", "name": "rgcds test bundle (BraTS-shaped)",
        "monai_version": "1.6.1", "authors": "rgcds tests",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR",
                                 "num_channels": 4, "spatial_shape": list(roi),
                                 "channel_def": {"0": "T1c", "1": "T1", "2": "T2",
                                                 "3": "FLAIR"}}},
            "outputs": {"pred": {"type": "image", "format": "segmentation",
                                 "num_channels": n_out, "channel_def": outputs}},
        },
    }
    (out / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2))
    # brats_mri_segmentation's own SegResNet, or a small one for the test.
    net_def = ({"_target_": "SegResNet", "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1],
                "init_filters": 16, "in_channels": 4, "out_channels": n_out} if brats_net else
               {"_target_": "SegResNet", "blocks_down": [1, 1, 1], "blocks_up": [1, 1],
                "init_filters": 8, "in_channels": 4, "out_channels": n_out})
    post = ([{"_target_": "Activationsd", "keys": "pred", "softmax": True},
             {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing",
              "orig_keys": "image", "nearest_interp": False, "to_tensor": True},
             {"_target_": "AsDiscreted", "keys": "pred", "argmax": True}] if softmax else
            [{"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
             {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing",
              "orig_keys": "image", "nearest_interp": False, "to_tensor": True},
             {"_target_": "AsDiscreted", "keys": "pred", "threshold": 0.5}])
    post.append({"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir",
                 "output_postfix": "seg", "output_dtype": "$numpy.float32", "resample": False,
                 "separate_folder": True, "squeeze_end_dims": True})
    config = {
        "imports": ["$import numpy", "$import torch"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "datalist": [],
        "device": "$torch.device('cpu')",
        "network_def": net_def,
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
            {"_target_": "Spacingd", "keys": "image",
             "pixdim": [1.0] * 3 if brats_net else [1.5] * 3, "mode": "bilinear"},
            {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True,
             "channel_wise": True},
            {"_target_": "EnsureTyped", "keys": "image"},
        ]},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1,
                       "shuffle": False, "num_workers": 0},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": list(roi),
                    "sw_batch_size": 2, "overlap": 0.5, "mode": "gaussian"},
        "postprocessing": {"_target_": "Compose", "transforms": post},
        "handlers": [{"_target_": "CheckpointLoader", "load_path":
                      "$@bundle_root + '/models/model.pt'", "load_dict": {"model": "@network"}}],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device",
                      "val_data_loader": "@dataloader", "network": "@network",
                      "inferer": "@inferer", "postprocessing": "@postprocessing",
                      "val_handlers": "@handlers", "amp": False},
        "run": ["$@evaluator.run()"],
    }
    (out / "configs" / "inference.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(5 if softmax else 4)
    net = SegResNet(**{k: v for k, v in net_def.items() if k != "_target_"})
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    with torch.no_grad():
        last.weight.mul_(12.0)
        if last.bias is not None:
            last.bias.copy_(torch.linspace(-1.0, 1.0, last.bias.numel()))
    torch.save(net.state_dict(), out / "models" / "model.pt")


def run(bundle: Path, cases: Path, result: Path) -> None:
    import nibabel as nib

    arrays: dict[str, np.ndarray] = {}
    for case in sorted(p for p in cases.iterdir() if p.is_dir()):
        files = [str(case / f"c{c}.nii.gz") for c in range(4)]
        out = bundle / "eval" / case.name
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "monai.bundle", "run", "--config_file",
             str(bundle / "configs" / "inference.json"), "--meta_file",
             str(bundle / "configs" / "metadata.json"), "--bundle_root", str(bundle),
             "--output_dir", str(out), "--datalist", json.dumps([{"image": files}])],
            capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"monai.bundle run failed:\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-3000:]}")
        arrays[f"{case.name}_seconds"] = np.asarray(time.perf_counter() - started)
        saved = sorted(out.rglob("*_seg.nii.gz"))
        if len(saved) != 1:
            raise SystemExit(f"expected one saved prediction under {out}, found {saved}")
        data = np.asarray(nib.load(str(saved[0])).dataobj)
        data = data.reshape(*data.shape[:3], -1)  # (i, j, k, C), squeezed end dims restored
        arrays[case.name] = np.moveaxis(data, -1, 0).astype(np.float32)
    np.savez(result, **arrays)


def time_cases(bundle: Path, cases: Path, result: Path) -> None:
    """In-process timing: the bundle's transforms, inferer and network, loaded once.

    What the bundle's evaluator runs per case (load, preprocess, sliding window, postprocess
    including Invertd and SaveImaged), without ignite's engine; one warm-up case first.
    """
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    parser["output_dir"] = str(bundle / "eval_timed")
    network = parser.get_parsed_content("network")
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", weights_only=True))
    network.eval()
    pre = parser.get_parsed_content("preprocessing")
    inferer = parser.get_parsed_content("inferer")
    post = parser.get_parsed_content("postprocessing")
    folders = sorted(p for p in cases.iterdir() if p.is_dir())
    seconds: dict[str, np.ndarray] = {}
    for warm, case in [(True, folders[0])] + [(False, f) for f in folders]:
        files = [str(case / f"c{c}.nii.gz") for c in range(4)]
        started = time.perf_counter()
        data = pre({"image": files})
        with torch.no_grad():
            data["pred"] = inferer(data["image"][None], network)[0]
        post(data)
        if not warm:
            seconds[f"{case.name}_seconds"] = np.asarray(time.perf_counter() - started)
    np.savez(result, **seconds)


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    make = sub.add_parser("make-bundle")
    make.add_argument("out", type=Path)
    make.add_argument("--softmax", action="store_true")
    make.add_argument("--roi", type=int, nargs=3, default=[32, 32, 24])
    make.add_argument("--brats-net", action="store_true",
                      help="brats_mri_segmentation's SegResNet (blocks 1,2,2,4; 16 filters)")
    timed = sub.add_parser("time")
    timed.add_argument("bundle", type=Path)
    timed.add_argument("cases", type=Path)
    timed.add_argument("result", type=Path)
    go = sub.add_parser("run")
    go.add_argument("bundle", type=Path)
    go.add_argument("cases", type=Path)
    go.add_argument("result", type=Path)
    args = parser.parse_args()
    if args.cmd == "make-bundle":
        make_bundle(args.out, args.softmax, tuple(args.roi), args.brats_net)
    elif args.cmd == "time":
        time_cases(args.bundle, args.cases, args.result)
    else:
        run(args.bundle, args.cases, args.result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
