"""The post-operative option of pipelines/train_segmentation.py: writer, card and metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
sitk = pytest.importorskip("SimpleITK")

from pipelines import train_segmentation as ts  # noqa: E402
from rgcds.inference.card import parse_card  # noqa: E402


def test_postop_flag_selects_kind_and_model_folder(tmp_path: Path) -> None:
    args = ts.parse_args(["--postop", "--data-dir", str(tmp_path), "--workdir", str(tmp_path)])
    assert args.kind == "postop"
    assert args.out.name == "postop-unet-phantom"
    pre = ts.parse_args(["--data-dir", str(tmp_path), "--workdir", str(tmp_path)])
    assert pre.kind == "preop"
    assert pre.out.name == "brats-unet-phantom"


@pytest.mark.parametrize("kind", ["preop", "postop"])
def test_card_follows_schema(tmp_path: Path, kind: str) -> None:
    args = ts.parse_args(["--kind", kind, "--data-dir", str(tmp_path),
                          "--workdir", str(tmp_path)])
    data = ts.card_dict("0" * 64, args, {"n_train": 3})
    data["validation"] = {"dataset": "d", "n_cases": 2, "metrics": {"dice_whole_mean": 0.5}}
    card = parse_card(data, tmp_path / "model.yaml")
    assert card.id == ts.KINDS[kind].model_id
    assert card.research_use_only
    assert "SYNTHETIC" in card.description and "NOT FOR PATIENTS" in card.description
    assert [c.name for c in card.outputs.classes][1:] == list(ts.KINDS[kind].classes)
    if kind == "postop":
        names = [s.name for s in card.outputs.segments]
        assert names == ["Resection cavity", "Oedema", "Residual enhancing tumour"]
        assert "simulate_postop" in card.training_data
    else:
        assert card.outputs.segments[0].name == "Necrotic core"


def test_postop_metrics_leave_cases_without_residual_out_of_residual_dice() -> None:
    ref = np.zeros((10, 10, 10), dtype=np.uint8)
    ref[2:5, 2:5, 2:5] = 1
    ref[5:7, 2:5, 2:5] = 2
    with_residual = ref.copy()
    with_residual[7:9, 2:5, 2:5] = 3
    pred_missed = ref.copy()  # residual missed entirely
    scores = [
        ts.postop_scores(with_residual, with_residual),  # perfect, residual present
        ts.postop_scores(pred_missed, with_residual),  # residual missed
        ts.postop_scores(ref, ref),  # no residual, none predicted
    ]
    assert scores[2]["residual_ref_ml"] == 0.0
    summary = ts.summarise_postop(scores)
    assert summary["n_with_residual"] == 2.0
    assert summary["n_without_residual"] == 1.0
    assert summary["dice_residual_mean"] == pytest.approx(0.5)  # (1 + 0) / 2, case 3 left out
    assert summary["residual_sensitivity"] == pytest.approx(0.5)
    assert summary["residual_specificity"] == pytest.approx(1.0)
    assert summary["dice_cavity_mean"] == pytest.approx(1.0)
    assert all(isinstance(v, float) for v in summary.values())


@pytest.mark.slow
def test_postop_phantom_written_in_brats_layout(tmp_path: Path) -> None:
    folder = ts.write_phantom_case(1, tmp_path, kind="postop")  # seed 1 has a residual
    name = folder.name
    for channel in ts.CHANNELS:
        assert (folder / f"{name}_{channel}.nii.gz").is_file()
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{name}_seg.nii.gz")))
    assert set(np.unique(seg)) <= {0, 1, 2, 4}
    assert (seg == 4).any() and (seg == 1).any()
    case = ts.read_case(folder)
    assert set(np.unique(case.labels)) == {0, 1, 2, 3}
