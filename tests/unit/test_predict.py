"""Predictions: model cards, refusal of unvalidated models, checksums, training pipelines."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import yaml

from rgcds import RESEARCH_USE_ONLY
from rgcds.analysis.cards import UnvalidatedModelError, discover_cards, read_card
from rgcds.analysis.predict import (
    RISK_GROUPS,
    ClassifierModel,
    ClinicalInputs,
    SurvivalModel,
    load_model,
    predict_all,
)
from rgcds.inference.errors import (
    ChecksumMismatchError,
    InferenceInputError,
    ModelCardError,
    ModelNotFoundError,
)

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


def _pipeline(name: str) -> ModuleType:
    path = ROOT / "pipelines" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_rgcds_test_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        rng.normal(size=(n, 6)),
        columns=[f"TC_T1c_firstorder_F{i}" for i in range(6)],
        index=pd.Index([f"case-{i}" for i in range(n)], name="case_id"),
    )
    table["age_years"] = rng.normal(60, 10, n).round()
    table["sex_male"] = rng.integers(0, 2, n)
    table["mgmt_methylated"] = (table.iloc[:, 0] + rng.normal(scale=0.7, size=n) > 0).astype(int)
    risk = 0.9 * table.iloc[:, 1] + 0.03 * (table["age_years"] - 60)
    death = rng.exponential(14 * np.exp(-risk))
    censor = rng.uniform(6, 40, n)
    table["os_months"] = np.minimum(death, censor).round(2)
    table["event"] = (death <= censor).astype(int)
    return table


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    train = _pipeline("train_radiogenomics")
    out = tmp_path_factory.mktemp("models") / "mgmt-test"
    train.train_classifier(
        _table(),
        target="mgmt_methylated",
        out_dir=out,
        model_id="mgmt-test",
        outer_folds=3,
        inner_folds=2,
        k_grid=(2, 4),
        c_grid=(0.1, 1.0),
        n_bootstrap=100,
        synthetic=True,
    )
    return out


@pytest.fixture(scope="module")
def survival_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    train = _pipeline("train_survival")
    out = tmp_path_factory.mktemp("models") / "survival-test"
    train.train_cox(
        _table(),
        out_dir=out,
        model_id="survival-test",
        outer_folds=3,
        inner_folds=2,
        k_grid=(1, 2),
        penalizer_grid=(0.1,),
        n_bootstrap=100,
        synthetic=True,
    )
    return out


def _features(card_features: tuple[str, ...]) -> dict[str, float]:
    return {name: 0.3 for name in card_features if name not in ("age_years", "sex_male")}


def test_classifier_pipeline_writes_card_with_auc_and_ci(classifier_dir: Path) -> None:
    card = read_card(classifier_dir)
    assert card.task == "classification" and card.synthetic_training_data
    assert card.validation is not None and card.validation.metric == "AUC"
    low, high = card.validation.ci95
    assert 0.0 <= low <= card.validation.value <= high <= 1.0
    assert "synthetic" in card.intended_use.lower() or "phantom" in card.intended_use.lower()


def test_classifier_predicts_probability_with_provenance(classifier_dir: Path) -> None:
    model = load_model(classifier_dir)
    assert isinstance(model, ClassifierModel)
    result = model.predict(_features(model.card.features), ClinicalInputs(age_years=55, sex="F"))
    assert 0.0 <= result.probability <= 1.0
    assert result.marker == "mgmt_methylated"
    prov = result.provenance
    assert prov.model_id == "mgmt-test" and prov.version == "0.1.0"
    assert prov.metric == "AUC" and prov.ci95 is not None
    assert prov.research_use_only == RESEARCH_USE_ONLY


def test_missing_input_is_a_clear_error(classifier_dir: Path) -> None:
    model = load_model(classifier_dir)
    with pytest.raises(InferenceInputError, match="not given"):
        model.predict({}, ClinicalInputs(55, "F"))


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_unvalidated_card_refused_unless_research_mode(
    classifier_dir: Path, tmp_path: Path
) -> None:
    folder = _copy(classifier_dir, tmp_path)
    card = yaml.safe_load((folder / "model.yaml").read_text())
    del card["validation"]
    (folder / "model.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(UnvalidatedModelError, match="no validation metrics"):
        load_model(folder)
    model = load_model(folder, research_mode=True)
    result = model.predict(_features(model.card.features), ClinicalInputs(60, "M"))
    assert isinstance(result.probability, float)
    assert result.provenance.metric is None


def test_sha256_mismatch_is_refused(classifier_dir: Path, tmp_path: Path) -> None:
    folder = _copy(classifier_dir, tmp_path)
    with (folder / "model.skops").open("ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        load_model(folder)


def test_untrusted_types_are_refused(classifier_dir: Path, tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    from rgcds.analysis.cards import sha256_of

    folder = _copy(classifier_dir, tmp_path)
    tree = DecisionTreeClassifier().fit(np.zeros((4, 1)), [0, 1, 0, 1])
    sio.dump(tree, folder / "model.skops")
    card = yaml.safe_load((folder / "model.yaml").read_text())
    card["weights"]["sha256"] = sha256_of(folder / "model.skops")
    (folder / "model.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(ModelCardError, match="does not trust"):
        load_model(folder)


def test_missing_card(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        load_model(tmp_path)


def test_survival_pipeline_and_prediction(survival_dir: Path) -> None:
    card = read_card(survival_dir)
    assert card.validation is not None and card.validation.metric == "C-index"
    assert card.validation.ci95[0] <= card.validation.value <= card.validation.ci95[1]
    model = load_model(survival_dir)
    assert isinstance(model, SurvivalModel)
    result = model.predict(_features(card.features), ClinicalInputs(70, "M"))
    assert result.risk_group in RISK_GROUPS
    assert result.relative_risk > 0
    curve = np.asarray(result.curve_survival)
    assert curve[0] == 1.0 and np.all(np.diff(curve) <= 1e-12)
    if result.median_os_months is not None:
        assert result.median_os_months > 0
    assert result.provenance.research_use_only == RESEARCH_USE_ONLY


def test_cox_json_matches_lifelines() -> None:
    train = _pipeline("train_survival")
    table = _table(80, seed=3)
    time = table["os_months"].to_numpy(float)
    event = table["event"].to_numpy(float)
    radiomic = [c for c in table.columns if c.startswith("TC_")]
    fitted = train._fit(table, time, event, radiomic, ["age_years", "sex_male"], 2, 0.1)
    z = (table[list(fitted.features)].to_numpy(float) - fitted.means) / fitted.scales
    frame = pd.DataFrame(z[:3], columns=[f"x{i}" for i in range(len(fitted.features))])
    expected = fitted.cph.predict_survival_function(frame).to_numpy()
    s0 = fitted.cph.baseline_survival_.to_numpy()[:, 0]
    lp = fitted.lp(table.iloc[:3])
    ours = np.power(s0[:, None], np.exp(lp)[None, :])
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9)


DEMO = [p for p in sorted(MODELS.glob("*-phantom-demo")) if (p / "model.yaml").is_file()]


@pytest.mark.skipif(not DEMO, reason="demo models not built (pipelines/make_phantom_cohort.py)")
def test_demo_models_load_and_predict() -> None:
    cards = discover_cards(MODELS)
    ids = {c.id for c in cards}
    assert {
        "mgmt-phantom-demo",
        "idh-phantom-demo",
        "egfr-phantom-demo",
        "survival-phantom-demo",
    } <= ids
    features: dict[str, float] = {}
    for card in cards:
        assert card.synthetic_training_data and card.validation is not None
        features.update({f: 0.0 for f in card.features})
    results = predict_all(MODELS, features, ClinicalInputs(58, "M"), model_ids=sorted(ids))
    assert len(results.markers) >= 3 and len(results.survival) >= 1
    for marker in results.markers:
        assert 0.0 <= marker.probability <= 1.0
        assert marker.provenance.synthetic_training_data
        assert marker.provenance.research_use_only == RESEARCH_USE_ONLY
