"""Residual-tumour detection: input preparation, ONNX inference, cards, training (tiny)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from rgcds.analysis.cards import ModelCard, discover_cards, read_card, sha256_of, write_card
from rgcds.analysis.residual import (
    PET_BOX,
    PET_GRID_MM,
    PET_MODEL_ID,
    T1C_MODEL_ID,
    ResidualPrediction,
    pet_model_input,
    predict_residual,
    residual_inputs,
    t1c_features,
)
from rgcds.inference.errors import ChecksumMismatchError, InferenceInputError

SHAPE = (50, 60, 70)  # z, y, x
CENTRE_MM = np.array([30.0, -10.0, 8.0])  # x, y, z (LPS) of the CTV's centre


def _image(array: np.ndarray, spacing: float = 2.0, flip_x: bool = False) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((spacing,) * 3)
    if flip_x:  # x axis pointing to -x: a different orientation, same physical scene
        image.SetDirection((-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
        image.SetOrigin((70.0, -60.0, -50.0))
    else:
        image.SetOrigin((-70.0, -60.0, -50.0))
    return image


def _scene(spacing: float = 2.0, flip_x: bool = False) -> dict[str, sitk.Image]:
    """Brain ellipsoid, spherical CTV (r 20 mm) around CENTRE_MM, hot core (r 6 mm)."""
    ref = _image(np.zeros(SHAPE, np.float32), spacing, flip_x)
    zz, yy, xx = np.indices(SHAPE).astype(float)
    origin = np.asarray(ref.GetOrigin())
    sx = -spacing if flip_x else spacing
    px, py, pz = origin[0] + sx * xx, origin[1] + spacing * yy, origin[2] + spacing * zz
    r_ctv = np.sqrt((px - CENTRE_MM[0]) ** 2 + (py - CENTRE_MM[1]) ** 2 + (pz - CENTRE_MM[2]) ** 2)
    brain = (px / 65) ** 2 + ((py + 5) / 55) ** 2 + (pz / 45) ** 2 < 1
    rng = np.random.default_rng(0)
    pet = np.where(brain, 2.0, 0.2).astype(np.float32)
    pet[r_ctv < 6] = 6.0
    t1c = np.where(brain, 100.0, 0.0) + rng.normal(0, 5, SHAPE)
    t1c[r_ctv < 6] += 60
    return {
        "pet": _image(pet, spacing, flip_x),
        "t1c": _image(t1c.astype(np.float32), spacing, flip_x),
        "ctv": _image((r_ctv < 20).astype(np.uint8), spacing, flip_x),
        "brain": _image(brain.astype(np.uint8), spacing, flip_x),
    }


def test_pet_model_input_shape_centre_and_normalisation() -> None:
    scene = _scene()
    x = pet_model_input(scene["pet"], scene["ctv"], background_mean=2.0)
    assert x.shape == (1, 1, PET_BOX, PET_BOX, PET_BOX) and x.dtype == np.float32
    inside = x[0, 0] > 0
    centre = np.argwhere(inside).mean(axis=0)
    np.testing.assert_allclose(centre, (PET_BOX - 1) / 2, atol=0.6)
    # CTV radius 20 mm on a 3 mm grid: about 4/3 pi (20/3)^3 voxels
    assert abs(inside.sum() - 4 / 3 * math.pi * (20 / PET_GRID_MM) ** 3) < 150
    assert x.max() == pytest.approx(3.0, rel=1e-3)  # 6 / 2 in the hot core
    assert float(np.median(x[0, 0][inside])) == pytest.approx(1.0, abs=1e-3)  # brain: TBR 1
    assert (x[0, 0][~inside] == 0).all()


def test_pet_model_input_is_physical_not_index_based() -> None:
    a = pet_model_input(_scene()["pet"], _scene()["ctv"], 2.0)
    flipped = _scene(flip_x=True)
    b = pet_model_input(flipped["pet"], flipped["ctv"], 2.0)
    np.testing.assert_allclose(a, b, atol=1e-4)
    fine = _scene(spacing=1.5)
    c = pet_model_input(fine["pet"], fine["ctv"], 2.0)
    assert c.shape == a.shape
    centre = np.argwhere(c[0, 0] > 0).mean(axis=0)
    np.testing.assert_allclose(centre, (PET_BOX - 1) / 2, atol=0.6)


def test_pet_model_input_refuses_bad_inputs() -> None:
    scene = _scene()
    with pytest.raises(InferenceInputError):
        pet_model_input(scene["pet"], scene["ctv"], 0.0)
    empty = sitk.Image(scene["ctv"].GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(scene["ctv"])
    with pytest.raises(InferenceInputError):
        pet_model_input(scene["pet"], empty, 1.0)


def test_residual_inputs_background_and_t1c_zscore_invariance() -> None:
    scene = _scene()
    inputs = residual_inputs(scene["pet"], scene["t1c"], scene["ctv"], scene["brain"])
    assert inputs.background_mean == pytest.approx(2.0, rel=1e-3)
    assert inputs.tbr_max == pytest.approx(3.0, rel=1e-3)
    assert inputs.btv_ml is not None and 0.3 < inputs.btv_ml < 3.0  # r 6 mm sphere: 0.9 ml
    assert inputs.t1c_features and all(k.startswith("CTV_T1c_") for k in inputs.t1c_features)
    assert all(math.isfinite(v) for v in inputs.t1c_features.values())
    scaled = sitk.Cast(scene["t1c"], sitk.sitkFloat32) * 3.0 + 50.0
    again = t1c_features(scaled, scene["ctv"], scene["brain"])
    for key in ("CTV_T1c_firstorder_Mean", "CTV_T1c_firstorder_90Percentile"):
        assert again[key] == pytest.approx(inputs.t1c_features[key], rel=0.03, abs=0.01)
    none = residual_inputs(None, None, scene["ctv"], scene["brain"])
    assert none.pet_input is None and none.t1c_features is None and len(none.notes) == 2


# --- models written by hand (no torch) ----------------------------------------------------


def _validation(value: float) -> dict[str, object]:
    return {"metric": "AUC", "value": value, "ci95": [value - 0.1, value + 0.05], "n": 100}


def _onnx_model(path: Path) -> None:
    """A tiny ONNX 'network': logit = max(TBR) - 2 per case, shape (N, 1)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("ReduceMax", ["pet_tbr"], ["m"], axes=[1, 2, 3, 4], keepdims=0),
            helper.make_node("Sub", ["m", "two"], ["d"]),
            helper.make_node("Unsqueeze", ["d", "one"], ["logit"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("pet_tbr", TensorProto.FLOAT, ["N", 1, 40, 40, 40])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])],
        [
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
            helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _write_models(root: Path) -> list[str]:
    import skops.io as sio
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pet = root / PET_MODEL_ID
    pet.mkdir(parents=True)
    _onnx_model(pet / "model.onnx")
    write_card(
        pet,
        {
            "id": PET_MODEL_ID,
            "version": "0.0.1",
            "task": "classification",
            "family": "residual",
            "target": "residual_tumour_in_ctv",
            "intended_use": "tests",
            "training_data": "none",
            "synthetic_training_data": True,
            "research_use_only": True,
            "validation": _validation(0.9),
            "weights": {
                "file": "model.onnx",
                "sha256": sha256_of(pet / "model.onnx"),
                "format": "onnx",
            },
            "threshold": 0.6,
            "input": {"grid_mm": PET_GRID_MM, "box": PET_BOX},
            "combined": {**_validation(0.92), "threshold": 0.4},
            "features": ["pet_tbr_in_ctv"],
        },
    )
    names = ["CTV_T1c_firstorder_Mean", "CTV_T1c_firstorder_Maximum"]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2))
    y = (x[:, 0] > 0).astype(int)
    clf = Pipeline(
        [("impute", SimpleImputer()), ("scale", StandardScaler()), ("clf", LogisticRegression())]
    ).fit(x, y)
    t1c = root / T1C_MODEL_ID
    t1c.mkdir()
    sio.dump(clf, t1c / "model.skops")
    write_card(
        t1c,
        {
            "id": T1C_MODEL_ID,
            "version": "0.0.1",
            "task": "classification",
            "family": "residual",
            "target": "residual_tumour_in_ctv",
            "intended_use": "tests",
            "training_data": "none",
            "synthetic_training_data": True,
            "research_use_only": True,
            "validation": _validation(0.75),
            "weights": {
                "file": "model.skops",
                "sha256": sha256_of(t1c / "model.skops"),
                "format": "skops",
            },
            "threshold": 0.5,
            "features": names,
        },
    )
    return names


def test_predict_residual_with_both_one_or_none(tmp_path: Path) -> None:
    names = _write_models(tmp_path)
    x = np.zeros((1, 1, PET_BOX, PET_BOX, PET_BOX), np.float32)
    x[0, 0, 20, 20, 20] = 3.0  # logit 1
    feats = {names[0]: 2.0, names[1]: 0.0}
    both = predict_residual(tmp_path, x, feats)
    assert both.probability_pet == pytest.approx(1 / (1 + math.exp(-1.0)), abs=1e-6)
    assert both.probability_radiomics is not None and both.probability_radiomics > 0.5
    assert both.probability_combined == pytest.approx(
        0.5 * (both.probability_pet + both.probability_radiomics)
    )
    assert both.decided_by == "combined" and both.threshold == 0.4 and both.present
    assert both.combined_validation is not None and both.combined_validation.value == 0.92
    assert set(both.models_used) == {PET_MODEL_ID, T1C_MODEL_ID}
    assert [p.value for p in both.provenance] == [0.9, 0.75]

    pet_only = predict_residual(tmp_path, x, None)
    assert pet_only.decided_by == "pet" and pet_only.threshold == 0.6
    assert pet_only.probability_radiomics is None and pet_only.present  # 0.73 >= 0.6
    assert any("T1c" in n for n in pet_only.notes)
    cov = pet_only.covariates()
    assert cov["residual_logit_pet"] == pytest.approx(1.0, abs=1e-5)
    assert math.isnan(cov["ctv_tbr_max"])

    t1c_only = predict_residual(tmp_path, None, {names[0]: -2.0, names[1]: 0.0})
    assert t1c_only.decided_by == "radiomics" and not t1c_only.present
    assert any("No PET" in n for n in t1c_only.notes)
    with pytest.raises(InferenceInputError):
        predict_residual(tmp_path, None, None)
    with pytest.raises(InferenceInputError):
        predict_residual(tmp_path, np.zeros((1, 1, 8, 8, 8), np.float32), None)


def test_card_loading_refuses_bad_sha256(tmp_path: Path) -> None:
    _write_models(tmp_path)
    onnx_file = tmp_path / PET_MODEL_ID / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    x = np.zeros((1, 1, PET_BOX, PET_BOX, PET_BOX), np.float32)
    with pytest.raises(ChecksumMismatchError):
        predict_residual(tmp_path, x, None)


def test_residual_cards_are_not_run_by_predict_all(tmp_path: Path) -> None:
    _write_models(tmp_path)
    assert discover_cards(tmp_path) == []
    cards: list[ModelCard] = discover_cards(tmp_path, family="residual")
    assert {c.id for c in cards} == {PET_MODEL_ID, T1C_MODEL_ID}
    assert read_card(tmp_path / PET_MODEL_ID).weights_format == "onnx"


# --- training (tiny network, synthetic cases) ----------------------------------------------


@pytest.mark.slow
def test_training_pipeline_tiny(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    from pipelines import train_residual as tr

    rng = np.random.default_rng(0)
    cases = []
    for i in range(24):
        residual = i % 2
        x = np.zeros((1, 1, PET_BOX, PET_BOX, PET_BOX), np.float32)
        x[0, 0, 10:30, 10:30, 10:30] = rng.normal(1.0, 0.05, (20, 20, 20))
        if residual:
            x[0, 0, 18:23, 18:23, 18:23] = 2.5
        risk = 0.8 * residual + rng.normal(0, 0.3)
        cases.append(
            tr.Case(
                case_id=f"c{i}",
                pet_input=x,
                t1c={
                    "CTV_T1c_firstorder_Mean": residual + rng.normal(0, 0.7),
                    "CTV_T1c_firstorder_Maximum": rng.normal(),
                },
                tbr_max=float(x.max()),
                btv_ml=float((x >= 1.3).sum()) * 0.027,
                age_years=float(rng.uniform(40, 80)),
                mgmt=float(i % 3 == 0),
                residual=residual,
                ttr_days=float(300 * math.exp(-risk) * rng.uniform(0.5, 1.5)),
                ttr_event=1.0,
                os_days=float(600 * math.exp(-risk) * rng.uniform(0.5, 1.5)),
                os_event=float(i % 4 != 0),
                lp_ttr=risk,
                lp_os=risk,
            )
        )
    path = tmp_path / "case.npz"
    tr._save_case(path, cases[0])
    back = tr._load_case(path)
    assert back.case_id == "c0" and back.pet_input is not None
    np.testing.assert_array_equal(back.pet_input, cases[0].pet_input)
    args = argparse.Namespace(
        seed=0,
        threads=1,
        arch="small",
        epochs=2,
        batch=4,
        lr=1e-3,
        val_fraction=0.25,
        penalizer=0.1,
    )
    fitted = tr.fit_models(cases[:16], args, tmp_path, "t")
    assert fitted.onnx_diff <= 1e-4 and fitted.onnx_path is not None
    ev = tr.Evaluation()
    tr.evaluate(fitted, cases[16:], ev)
    scores = tr.metrics(ev, 50, 0, "test split")
    assert scores["pet"]["n"] == 8 and scores["oracle_ttr"] is not None
    out = tmp_path / "models"
    written = tr.write_cards(fitted, scores, out, args, {"synthetic": True, "text": "24 cases"})
    assert len(written) >= 2
    card = read_card(out / PET_MODEL_ID)
    assert card.synthetic_training_data and "phantoms are not patients" in card.intended_use
    x = cases[20].pet_input
    assert x is not None
    result: ResidualPrediction = predict_residual(out, x, cases[20].t1c, research_mode=True)
    assert result.probability_pet is not None and 0 <= result.probability_pet <= 1
    if (out / "ttr-cox-postop-nomgmt-phantom").is_dir():
        from rgcds.analysis.prognosis import predict_prognosis

        prog = predict_prognosis(out, result.covariates(), 60.0, None, research_mode=True)
        assert not prog.mgmt_used
