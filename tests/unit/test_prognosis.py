"""Post-operative prognosis: MGMT-aware model choice, outputs, provenance."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rgcds.analysis.cards import discover_cards, sha256_of, write_card
from rgcds.analysis.predict import CoxWeights
from rgcds.analysis.prognosis import (
    DAYS_PER_MONTH,
    ENDPOINT_MODELS,
    PET_COVARIATES,
    predict_prognosis,
)
from rgcds.inference.errors import ChecksumMismatchError, InferenceInputError

FEATURES = {"residual_logit_pet": 2.0, "ctv_tbr_max": 2.4, "ctv_btv_ml": 3.0}


def _write(root: Path, folder: str, target: str, with_mgmt: bool) -> None:
    names = [*PET_COVARIATES, "age_years", *(["mgmt_methylated"] if with_mgmt else [])]
    coefficients = [0.5, 0.2, 0.1, 0.3, *([-0.6] if with_mgmt else [])]
    weights = CoxWeights(
        features=tuple(names),
        means=(0.0, 1.8, 2.0, 60.0, *([0.5] if with_mgmt else [])),
        scales=(1.0, 0.4, 2.0, 10.0, *([0.5] if with_mgmt else [])),
        coefficients=tuple(coefficients),
        baseline_months=(0.0, 6.0, 12.0, 24.0),
        baseline_survival=(1.0, 0.8, 0.55, 0.3),
        risk_tertiles=(-0.3, 0.3),
    )
    path = root / folder
    path.mkdir(parents=True)
    (path / "model.json").write_text(weights.to_json(), encoding="utf-8")
    write_card(
        path,
        {
            "id": folder,
            "version": "0.0.1",
            "task": "survival",
            "family": "prognosis",
            "target": target,
            "intended_use": "tests",
            "training_data": "none",
            "synthetic_training_data": True,
            "research_use_only": True,
            "validation": {"metric": "C-index", "value": 0.66, "ci95": [0.6, 0.7], "n": 100},
            "oracle_c_index": {"metric": "C-index", "value": 0.72, "ci95": [0.68, 0.76]},
            "weights": {
                "file": "model.json",
                "sha256": sha256_of(path / "model.json"),
                "format": "json",
            },
            "features": names,
        },
    )


@pytest.fixture
def models(tmp_path: Path) -> Path:
    for target, (with_mgmt, without) in ENDPOINT_MODELS.items():
        _write(tmp_path, with_mgmt, target, True)
        _write(tmp_path, without, target, False)
    return tmp_path


def test_mgmt_unknown_uses_the_mgmt_free_models_and_says_so(models: Path) -> None:
    result = predict_prognosis(models, FEATURES, 60.0, None)
    assert not result.mgmt_used
    assert any("MGMT status unknown" in n for n in result.notes)
    assert {e.endpoint for e in result.endpoints} == set(ENDPOINT_MODELS)
    for e in result.endpoints:
        assert not e.mgmt_used and "mgmt_methylated" not in e.covariates_used
        assert e.provenance.model_id.endswith("nomgmt-phantom")
        assert e.provenance.value == 0.66 and e.oracle_c_index == 0.72
        # z = (2, 1.5, 0.5, 0): lp = 1 + 0.3 + 0.05 = 1.35
        assert e.linear_predictor == pytest.approx(1.35)
        assert e.relative_risk == pytest.approx(math.exp(1.35))
        assert e.risk_group == "high"
        # S0^exp(1.35) <= 0.5 first at 6 months (0.8^3.86 = 0.42)
        assert e.median_days == pytest.approx(6.0 * DAYS_PER_MONTH)


def test_mgmt_known_uses_it(models: Path) -> None:
    result = predict_prognosis(models, FEATURES, 60.0, True)
    assert result.mgmt_used and any("MGMT status known" in n for n in result.notes)
    for e in result.endpoints:
        assert e.mgmt_used and "mgmt_methylated" in e.covariates_used
        assert e.linear_predictor == pytest.approx(1.35 - 0.6)


def test_unknown_age_counts_as_mean_and_no_pet_is_refused(models: Path) -> None:
    result = predict_prognosis(models, FEATURES, None, None)
    assert any("Age unknown" in n for n in result.notes)
    assert result.endpoints[0].linear_predictor == pytest.approx(1.35)
    with pytest.raises(InferenceInputError):
        predict_prognosis(models, {"ctv_tbr_max": 2.0}, 60.0, None)


def test_prognosis_cards_checked_and_kept_from_predict_all(models: Path) -> None:
    assert discover_cards(models) == []
    path = models / ENDPOINT_MODELS["overall_survival"][1] / "model.json"
    path.write_text(path.read_text() + " ")
    with pytest.raises(ChecksumMismatchError):
        predict_prognosis(models, FEATURES, 60.0, None)
