"""The nnU-Net side of the agreement test; runs in the nnU-Net venv, imports nothing of rgcds.

``make-model RAW OUT [--regions]``: RAW is an nnU-Net raw dataset folder (``imagesTr``,
``labelsTr``, ``dataset.json``) written by the test. nnunetv2's own command extracts the
fingerprint, plans the experiment and preprocesses (``nnUNetv2_plan_and_preprocess``); the
network is built from the plans by nnunetv2's trainer (``nnUNetTrainer.initialize``) and
saved with its ``save_checkpoint`` as folds 0 and 1 (two seeds), so OUT is a results folder
as ``nnUNetv2_train`` leaves it. Agreement, not accuracy, is under test, so the network is
not trained; the last layer's weights are scaled up so that its logits are not all near
zero.

``predict OUT CASES.npz RESULT.npz [--folds 0 1]``: ``nnUNetPredictor`` (CPU, mirroring on,
the default step 0.5 and Gaussian) on each array of CASES.npz (``<name>`` a ``(C, Z, Y, X)``
array and ``<name>_spacing`` its spacing along Z, Y, X), with ``predict_single_npy_array``;
the labels go to RESULT.npz, and ``seconds`` the time per case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "preprocessed"),
               nnUNet_results=str(root / "results"), nnUNet_n_proc_DA="1",
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"))
    return env


def make_model(raw: Path, out: Path, work: Path) -> None:
    name = raw.name
    number = int(name.removeprefix("Dataset").split("_")[0])
    env = _env(work)
    (work / "raw").mkdir(parents=True, exist_ok=True)
    if not (work / "raw" / name).exists():
        shutil.copytree(raw, work / "raw" / name)
    bindir = Path(sys.executable).parent
    subprocess.run([str(bindir / "nnUNetv2_plan_and_preprocess"), "-d", str(number),
                    "-c", "3d_fullres", "-np", "1", "-npfp", "1"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    os.environ.update(env)
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    plans = json.loads((work / "preprocessed" / name / "nnUNetPlans.json").read_text())
    dataset = json.loads((work / "raw" / name / "dataset.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    for fold in (0, 1):
        torch.manual_seed(fold)
        trainer = nnUNetTrainer(dict(plans, continue_training=False), "3d_fullres", fold,
                                dataset, device=torch.device("cpu"))
        trainer.initialize()
        trainer.output_folder = str(out / f"fold_{fold}")
        Path(trainer.output_folder).mkdir(parents=True, exist_ok=True)
        # What training's start sets: the mirror axes the predictor will use (0, 1, 2 in 3D).
        trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        net = trainer.network
        with torch.no_grad():
            last = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)][-1]
            last.weight.mul_(8.0)
        trainer.save_checkpoint(str(out / f"fold_{fold}" / "checkpoint_final.pth"))
    shutil.copyfile(work / "preprocessed" / name / "nnUNetPlans.json", out / "plans.json")
    shutil.copyfile(work / "raw" / name / "dataset.json", out / "dataset.json")


def predict(model: Path, cases: Path, result: Path, folds: list[str]) -> None:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=True,
                                allow_tqdm=False, verbose=False)
    predictor.initialize_from_trained_model_folder(
        str(model), tuple(int(f) if f != "all" else f for f in folds), "checkpoint_final.pth")
    arrays = np.load(cases)
    out: dict[str, np.ndarray] = {}
    for key in arrays.files:
        if key.endswith("_spacing"):
            continue
        spacing = [float(s) for s in arrays[f"{key}_spacing"]]
        started = time.perf_counter()
        labels = predictor.predict_single_npy_array(arrays[key].astype(np.float32),
                                                    {"spacing": spacing})
        out[f"{key}_seconds"] = np.array(time.perf_counter() - started)
        out[key] = np.asarray(labels, dtype=np.uint8)
    np.savez_compressed(result, **out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-model")
    mk.add_argument("raw", type=Path)
    mk.add_argument("out", type=Path)
    mk.add_argument("--work", type=Path, required=True)
    pr = sub.add_parser("predict")
    pr.add_argument("model", type=Path)
    pr.add_argument("cases", type=Path)
    pr.add_argument("result", type=Path)
    pr.add_argument("--folds", nargs="+", default=["0", "1"])
    args = parser.parse_args()
    if args.cmd == "make-model":
        make_model(args.raw, args.out, args.work)
    else:
        predict(args.model, args.cases, args.result, args.folds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
