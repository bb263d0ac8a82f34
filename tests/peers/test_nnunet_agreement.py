"""An imported nnU-Net v2 model gives what nnU-Net's own predictor gives (issue 20).

The peer runs in the nnU-Net venv (``make nnunet-extra``; its python is
``RGCDS_NNUNET_PYTHON``): nnunetv2's ``nnUNetv2_plan_and_preprocess`` plans two small
datasets the test writes (labels 1-3 softmax, and BraTS-style regions WT/TC/ET with
``regions_class_order``), nnunetv2's trainer builds each network from its plans and saves
two folds in nnU-Net's checkpoint format, ``nnUNetPredictor`` predicts three cases
(isotropic, a thick-slice anisotropic one that takes nnU-Net's separate-z path, and one
finer than the plans' spacing) with both folds and mirroring. ``rgcds models import-nnunet``
(run in the same venv) exports the folds to ONNX; rgcds then predicts the same arrays with
ONNX Runtime in this process and :mod:`rgcds.inference.nnunet`.

Target (issue 20): at least 99.5 % of voxels equal and Dice >= 0.99 per label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rgcds.inference.card import load_card
from rgcds.inference.errors import ChecksumMismatchError
from rgcds.inference.nnunet import open_folds, segment_nnunet
from tests.peers.nnunet_cases import make_case, write_raw_dataset
from tests.peers.peer_venv import check, peer_python, run_peer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

pytestmark = pytest.mark.timeout(2400)

#: name -> (seed, shape Z, Y, X, spacing Z, Y, X in mm)
CASES = {
    "isotropic": (7, (56, 60, 52), (1.5, 1.5, 1.5)),
    "thick_slices": (8, (12, 84, 76), (5.0, 1.0, 1.0)),
    "finer_grid": (9, (70, 64, 66), (1.0, 1.2, 1.1)),
}
TRAIN_SHAPE = (40, 44, 40)
TRAIN_SPACING = (1.5, 1.5, 1.5)


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    python = peer_python()
    root = tmp_path_factory.mktemp("nnunet")
    cases: dict[str, np.ndarray] = {}
    for name, (seed, shape, spacing) in CASES.items():
        cases[name] = make_case(seed, shape, spacing)[0]
        cases[f"{name}_spacing"] = np.asarray(spacing)
    np.savez(root / "cases.npz", **cases)
    out: dict[str, Any] = {"python": python, "root": root, "cases": cases}
    for kind, number, regions in (("labels", 901, False), ("regions", 902, True)):
        raw = write_raw_dataset(root / f"Dataset{number}_{kind.title()}", 4, TRAIN_SHAPE,
                                TRAIN_SPACING, regions)
        results = root / f"results_{kind}"
        check(run_peer(python, str(HERE / "nnunet_peer.py"), "make-model", str(raw), str(results),
                    "--work", str(root / "work")))
        check(run_peer(python, str(HERE / "nnunet_peer.py"), "predict", str(results),
                    str(root / "cases.npz"), str(root / f"nnunet_{kind}.npz")))
        model = root / f"model_{kind}"
        extra = ["--labels", "1=oedema,2=necrosis,3=enhancing"] if regions else []
        check(run_peer(python, "-m", "rgcds.inference.import_nnunet", str(results),
                    "--id", f"site-nnunet-{kind}", "--out", str(model),
                    "--license", "CC-BY-4.0 (test)", "--training-data",
                    "4 synthetic cases written by the test", *extra))
        out[kind] = {"results": results, "model": model,
                     "reference": dict(np.load(root / f"nnunet_{kind}.npz"))}
    return out


def _nnunet_to_card_labels(card: Any, labels: np.ndarray) -> np.ndarray:
    """nnU-Net's label values to the card's (rgcds) values."""
    lut = np.zeros(256, dtype=np.uint8)
    if card.outputs.mode.value == "softmax":
        for cls in card.outputs.classes:
            lut[cls.index] = cls.label
    else:
        order = json.loads((card.path / "dataset.json").read_text())["regions_class_order"]
        for region, value in zip(card.outputs.regions, order, strict=True):
            lut[value] = region.label
    mapped: np.ndarray = lut[labels]
    return mapped


def _agreement(peers: dict[str, Any], kind: str, case: str) -> tuple[float, dict[int, float]]:
    card = load_card(peers[kind]["model"])
    folds = open_folds(card, "onnxruntime")
    volume = peers["cases"][case]
    ours = segment_nnunet(volume, peers["cases"][f"{case}_spacing"], card, folds)
    theirs = _nnunet_to_card_labels(card, peers[kind]["reference"][case])
    assert ours.shape == theirs.shape == volume.shape[1:]
    equal = float((ours == theirs).mean())
    dice = {}
    for label in (1, 2, 3):
        a, b = ours == label, theirs == label
        if a.sum() + b.sum() >= 200:  # Dice of a label (nearly) absent from both says little
            dice[label] = float(2 * (a & b).sum() / (a.sum() + b.sum()))
    # The untrained network must still paint at least two labels for the test to mean much.
    assert len(dice) >= 2, f"nnU-Net's output has too few labels to compare: {dice}"
    print(f"{kind} {case}: {equal:.6f} of voxels equal, Dice {dice}")
    return equal, dice


@pytest.mark.parametrize("case", ["isotropic", "finer_grid"])
def test_softmax_model_agrees_with_nnunet_predictor(peers: dict[str, Any], case: str) -> None:
    equal, dice = _agreement(peers, "labels", case)
    assert equal >= 0.995 and min(dice.values()) >= 0.99, (equal, dice)


@pytest.mark.parametrize("case", ["isotropic", "finer_grid"])
def test_region_based_model_agrees_with_nnunet_predictor(peers: dict[str, Any],
                                                         case: str) -> None:
    equal, dice = _agreement(peers, "regions", case)
    assert equal >= 0.995 and min(dice.values()) >= 0.99, (equal, dice)


@pytest.mark.parametrize("kind", ["labels", "regions"])
def test_thick_slice_input_takes_the_separate_z_path_and_agrees(peers: dict[str, Any],
                                                                kind: str) -> None:
    from rgcds.inference.nnunet import separate_z

    spec = load_card(peers[kind]["model"]).nnunet
    assert spec is not None
    assert separate_z(spec.resampling_data.force_separate_z, CASES["thick_slices"][2],
                      spec.spacing, spec.anisotropy_threshold) == (True, 0)
    equal, dice = _agreement(peers, kind, "thick_slices")
    assert equal >= 0.995 and min(dice.values()) >= 0.99, (equal, dice)


def test_card_says_what_the_nnunet_folder_says(peers: dict[str, Any]) -> None:
    results = peers["labels"]["results"]
    plans = json.loads((results / "plans.json").read_text())
    config = plans["configurations"]["3d_fullres"]
    card = load_card(peers["labels"]["model"])
    spec = card.nnunet
    assert spec is not None
    assert list(spec.spacing) == config["spacing"]
    assert list(spec.patch_size) == config["patch_size"] == list(card.inputs.patch_size)
    assert spec.normalization_schemes == config["normalization_schemes"]
    assert spec.use_mask_for_norm == config["use_mask_for_norm"]
    assert list(spec.transpose_forward) == plans["transpose_forward"]
    assert spec.resampling_data.order == config["resampling_fn_data_kwargs"]["order"]
    assert (spec.trainer, spec.plans_identifier, spec.configuration) == (
        "nnUNetTrainer", "nnUNetPlans", "3d_fullres")
    assert [f.fold for f in spec.folds] == ["0", "1"]
    assert card.inputs.channels == ["T1", "T1c", "T2", "FLAIR"]  # from the channel names
    assert {c.name: c.label for c in card.outputs.classes} == {
        "background": 0, "oedema": 2, "necrosis": 1, "enhancing": 3}
    assert card.research_use_only and card.license and card.training_data
    assert not card.validated  # no validation/summary.json in the folder: nothing claimed


def test_a_changed_fold_file_is_refused(peers: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(peers["labels"]["model"], copy)
    with (copy / "fold_1.onnx").open("r+b") as handle:
        handle.seek(-64, 2)
        handle.write(b"\0" * 64)
    with pytest.raises(ChecksumMismatchError, match=r"fold_1\.onnx"):
        load_card(copy)


def test_import_refuses_what_the_folder_cannot_say(peers: dict[str, Any],
                                                   tmp_path: Path) -> None:
    python = peers["python"]
    regions = str(peers["regions"]["results"])
    base = ["-m", "rgcds.inference.import_nnunet", regions, "--id", "x"]
    no_licence = run_peer(python, *base, "--out", str(tmp_path / "a"), "--training-data", "t")
    assert no_licence.returncode == 1 and "--license is required" in no_licence.stderr
    no_labels = run_peer(python, *base, "--out", str(tmp_path / "b"), "--license", "l",
                     "--training-data", "t")
    assert no_labels.returncode == 1 and "--labels" in no_labels.stderr
    assert "region-based" in no_labels.stderr
    assert not (tmp_path / "b" / "model.yaml").exists()
    bad_channels = run_peer(python, *base, "--out", str(tmp_path / "c"), "--license", "l",
                        "--training-data", "t", "--channels", "T1,T1c,PD,FLAIR")
    assert bad_channels.returncode == 1 and "--channels must name 4" in bad_channels.stderr


def test_the_pipeline_runs_an_imported_model_on_a_dicom_study(peers: dict[str, Any],
                                                               tmp_path: Path) -> None:
    """``[processing] segmentation_model`` names the imported model; the study goes through.

    The network is untrained, so what it segments is noise: the study must still come out
    either complete or "not analysed" with a reason (the quality gate), never a crash, and
    the segmentation stage must have run the nnU-Net path (its labels saved on the model
    grid).
    """
    from rgcds.config import Settings, load_settings
    from rgcds.phantom import write_study
    from rgcds.pipeline import StudyContext, run_study

    models = tmp_path / "models"
    models.mkdir()
    for folder in (ROOT / "models").iterdir():
        (models / folder.name).symlink_to(folder)
    # One fold and no mirroring (the card says so): the network is untrained and the
    # pipeline's flip check runs it twice; nnU-Net's defaults would cost 16 times more here.
    import shutil

    import yaml

    model = models / "site-nnunet-labels"
    shutil.copytree(peers["labels"]["model"], model)
    card = yaml.safe_load((model / "model.yaml").read_text())
    card["nnunet"]["folds"] = card["nnunet"]["folds"][:1]
    card["nnunet"]["mirror_axes"] = []
    (model / "model.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    data = load_settings(None).model_dump()
    data["storage"]["root"] = str(tmp_path / "storage")
    data["storage"]["min_free_bytes"] = 0
    data["inference"]["models_root"] = str(models)
    data["inference"]["research_mode"] = True  # the imported card has no validation
    data["research_mode"] = True
    data["processing"]["segmentation_model"] = "site-nnunet-labels"
    data["metrics"]["enabled"] = False
    study = write_study(tmp_path / "study", seed=1, size="small", with_pet=False)
    ctx = StudyContext(inputs=(study.out_dir,), work_dir=tmp_path / "work",
                       settings=Settings(**data))
    outcome = run_study(ctx)
    assert outcome.failed_stage is None, (outcome.failed_stage, outcome.error_type,
                                          outcome.reason)
    assert outcome.status == "complete" or "quality control" in (outcome.reason or ""), (
        outcome.status, outcome.reason)
    assert "segment" in " ".join(outcome.stage_seconds), outcome.stage_seconds


@pytest.mark.gpu
def test_build_engine_makes_one_engine_per_fold(peers: dict[str, Any], tmp_path: Path) -> None:
    from rgcds.inference.backends import tensorrt_import_error

    problem = tensorrt_import_error()
    if problem is not None:
        pytest.skip(problem)
    from rgcds.cli import main

    models = tmp_path / "models"
    models.mkdir()
    (models / "site-nnunet-labels").symlink_to(peers["labels"]["model"])
    assert main(["models", "--models-root", str(models), "build-engine", "site-nnunet-labels",
                 "--engine-cache", str(tmp_path / "engines")]) == 0
    assert len(list((tmp_path / "engines").glob("*.engine"))) == 2
