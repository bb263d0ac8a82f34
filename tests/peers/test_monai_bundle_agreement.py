"""An imported MONAI bundle gives what MONAI's own bundle runner gives (issue 20).

The peer runs in the nnU-Net venv (MONAI 1.6.1, PyTorch): ``tests/peers/monai_peer.py`` writes
two small bundles shaped like the Model Zoo's ``brats_mri_segmentation`` (Orientationd RAS,
Spacingd bilinear, NormalizeIntensityd non-zero channel-wise, Gaussian sliding window;
sigmoid regions TC/WT/ET with Invertd and a 0.5 threshold, and a 4-class softmax/argmax
variant) with seeded SegResNet weights, and ``python -m monai.bundle run`` predicts three
NIfTI cases (axial LPS, thick slices, oblique). ``python -m rgcds.inference.import_monai``
(same venv) translates each bundle and exports it to ONNX; rgcds then predicts the same
files in this process with ONNX Runtime and :mod:`rgcds.inference.monai_bundle`, with the
affine nibabel reads (the one MONAI sees).

Target (issue 20): at least 99.5 % of voxels equal and Dice >= 0.99 per label.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rgcds.inference.backends import select_backend
from rgcds.inference.card import load_card
from rgcds.inference.errors import ChecksumMismatchError
from rgcds.inference.monai_bundle import predict_monai, to_labels
from tests.peers.monai_cases import CASES, read_case, write_cases
from tests.peers.peer_venv import check, peer_python, run_peer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEER = str(HERE / "monai_peer.py")

pytestmark = pytest.mark.timeout(1800)


def _import(python: str, bundle: Path, out: Path, model_id: str, *extra: str) -> Any:
    return run_peer(python, "-m", "rgcds.inference.import_monai", str(bundle), "--id", model_id,
                    "--out", str(out), *extra)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    python = peer_python()
    root = tmp_path_factory.mktemp("monai")
    cases = write_cases(root / "cases")
    out: dict[str, Any] = {"python": python, "root": root, "cases": cases}
    for kind, flag in (("regions", []), ("softmax", ["--softmax"])):
        bundle = root / f"bundle_{kind}"
        check(run_peer(python, PEER, "make-bundle", str(bundle), *flag))
        check(run_peer(python, PEER, "run", str(bundle), str(cases), str(root / f"{kind}.npz")))
        model = root / f"model_{kind}"
        check(_import(python, bundle, model, f"site-monai-{kind}", "--license",
                      "CC-BY-4.0 (test)", "--training-data", "none: seeded weights (test)"))
        out[kind] = {"bundle": bundle, "model": model,
                     "reference": dict(np.load(root / f"{kind}.npz"))}
    return out


def _agreement(bundles: dict[str, Any], kind: str, case: str) -> tuple[float, dict[int, float]]:
    card = load_card(bundles[kind]["model"])
    volume, image, affine = read_case(bundles["cases"] / case)
    ours = predict_monai(volume, image.GetSpacing(), image.GetDirection(), image.GetOrigin(),
                         card, select_backend(card, "onnxruntime"), affine=affine)
    theirs = bundles[kind]["reference"][case].transpose(0, 3, 2, 1)  # (C, i, j, k) -> ZYX
    assert ours.shape == theirs.shape
    a_labels, b_labels = to_labels(ours, card), to_labels(theirs, card)
    equal = float((a_labels == b_labels).mean())
    dice = {}
    for label in (1, 2, 3):
        a, b = a_labels == label, b_labels == label
        if a.sum() + b.sum() >= 200:
            dice[label] = float(2 * (a & b).sum() / (a.sum() + b.sum()))
    assert len(dice) >= 2, f"MONAI's output has too few labels to compare: {dice}"
    print(f"{kind} {case}: {equal:.6f} of voxels equal, Dice {dice}")
    return equal, dice


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", ["regions", "softmax"])
def test_imported_bundle_agrees_with_monai_bundle_run(bundles: dict[str, Any], kind: str,
                                                       case: str) -> None:
    equal, dice = _agreement(bundles, kind, case)
    assert equal >= 0.995, (equal, dice)
    assert all(d >= 0.99 for d in dice.values()), dice


def test_card_says_what_the_bundle_says(bundles: dict[str, Any]) -> None:
    card = load_card(bundles["regions"]["model"])
    spec = card.monai
    assert spec is not None and card.research_use_only and not card.validated
    assert card.inputs.channels == ["T1c", "T1", "T2", "FLAIR"]
    assert [s.transform for s in spec.preprocessing] == [
        "Orientationd", "Spacingd", "NormalizeIntensityd"]
    assert spec.roi_size == (32, 32, 24) and spec.blend == "gaussian" and spec.overlap == 0.5
    assert spec.postprocessing == ["sigmoid", "invert", "threshold"]
    # Nested BraTS regions are painted whole tumour, then core, then enhancing.
    assert [(r.name, r.label) for r in card.outputs.regions] == [
        ("Whole tumor", 2), ("Tumor core", 1), ("Enhancing tumor", 3)]
    assert "SaveImaged" in spec.transforms_read
    soft = load_card(bundles["softmax"]["model"])
    assert [c.label for c in soft.outputs.classes] == [0, 1, 2, 3]


def test_a_changed_weights_file_is_refused(bundles: dict[str, Any], tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(bundles["regions"]["model"], model)
    with (model / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ChecksumMismatchError):
        load_card(model)


def test_import_refuses_what_rgcds_cannot_run(bundles: dict[str, Any], tmp_path: Path) -> None:
    python = bundles["python"]
    source = bundles["regions"]["bundle"]
    no_licence = _import(python, source, tmp_path / "a", "x", "--training-data", "t")
    assert no_licence.returncode == 1 and "--license is required" in no_licence.stderr
    cropped = tmp_path / "cropped"
    shutil.copytree(source, cropped)
    config = json.loads((cropped / "configs" / "inference.json").read_text())
    config["preprocessing"]["transforms"].insert(
        3, {"_target_": "CropForegroundd", "keys": "image", "source_key": "image"})
    (cropped / "configs" / "inference.json").write_text(json.dumps(config))
    refused = _import(python, cropped, tmp_path / "b", "x", "--license", "l",
                      "--training-data", "t")
    assert refused.returncode == 1 and "CropForegroundd" in refused.stderr, refused.stderr
    assert not (tmp_path / "b").exists()
    uninverted = tmp_path / "uninverted"
    shutil.copytree(source, uninverted)
    config = json.loads((uninverted / "configs" / "inference.json").read_text())
    config["postprocessing"]["transforms"] = [
        t for t in config["postprocessing"]["transforms"] if t["_target_"] != "Invertd"]
    (uninverted / "configs" / "inference.json").write_text(json.dumps(config))
    refused = _import(python, uninverted, tmp_path / "c", "x", "--license", "l",
                      "--training-data", "t")
    assert refused.returncode == 1 and "Invertd" in refused.stderr, refused.stderr


def test_the_pipeline_runs_an_imported_bundle_on_a_dicom_study(bundles: dict[str, Any],
                                                               tmp_path: Path) -> None:
    """``[processing] segmentation_model`` names the imported bundle; the study goes through.

    The network is untrained, so the result is noise: the study must come out complete or
    "not analysed" with a reason, never a crash, with the segmentation stage timed.
    """
    from rgcds.config import Settings, load_settings
    from rgcds.phantom import write_study
    from rgcds.pipeline import StudyContext, run_study

    models = tmp_path / "models"
    models.mkdir()
    for folder in (ROOT / "models").iterdir():
        (models / folder.name).symlink_to(folder)
    (models / "site-monai-regions").symlink_to(bundles["regions"]["model"])
    data = load_settings(None).model_dump()
    data["storage"]["root"] = str(tmp_path / "storage")
    data["storage"]["min_free_bytes"] = 0
    data["inference"]["models_root"] = str(models)
    data["inference"]["research_mode"] = True  # the imported card has no validation
    data["research_mode"] = True
    data["processing"]["segmentation_model"] = "site-monai-regions"
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
def test_build_engine_works_on_an_imported_bundle(bundles: dict[str, Any],
                                                  tmp_path: Path) -> None:
    from rgcds.inference.backends import tensorrt_import_error

    problem = tensorrt_import_error()
    if problem is not None:
        pytest.skip(problem)
    from rgcds.cli import main

    models = tmp_path / "models"
    models.mkdir()
    (models / "site-monai-regions").symlink_to(bundles["regions"]["model"])
    assert main(["models", "--models-root", str(models), "build-engine", "site-monai-regions",
                 "--engine-cache", str(tmp_path / "engines")]) == 0
    assert len(list((tmp_path / "engines").glob("*.engine"))) == 1
