"""Training of a radiogenomic classifier (MGMT, IDH, EGFR, ...) with nested cross-validation;
``pipelines/train_radiogenomics.py`` is its command line (its docstring: inputs and card)."""


from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.feature_selection import SelectKBest, VarianceThreshold, f_classif
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from rgcds.analysis.cards import inputs_from_features, sha256_of, write_card
from rgcds.analysis.predict import TRUSTED_TYPES
from rgcds.analysis.validation import (
    TrainingDataError,
    bootstrap_ci,
    select_sequences,
)

CLINICAL = ("age_years", "sex_male")
SYNTHETIC_USE = (
    "Demonstration and software testing only. Trained on synthetic phantoms from "
    "rgcds.phantom, whose marker-imaging associations are invented: it says nothing about "
    "real patients and must never be used for patient care. Research use only."
)


def make_pipeline(seed: int = 0) -> Pipeline:
    """The classifier pipeline (hyper-parameters ``select__k`` and ``clf__C`` are searched)."""
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("variance", VarianceThreshold(0.0)),
            ("scale", StandardScaler()),
            ("select", SelectKBest(f_classif, k=10)),
            (
                "clf",
                LogisticRegression(
                    C=0.1, class_weight="balanced", max_iter=5000, random_state=seed
                ),
            ),
        ]
    )


def _plain(params: dict[str, Any]) -> dict[str, int | float]:
    return {k: int(v) if isinstance(v, int | np.integer) else float(v) for k, v in params.items()}


def _grid(n_features: int, k_grid: Sequence[int], c_grid: Sequence[float]) -> dict[str, list[Any]]:
    ks = sorted({min(k, n_features) for k in k_grid})
    return {"select__k": ks, "clf__C": list(c_grid)}


def _search(
    n_features: int, k_grid: Sequence[int], c_grid: Sequence[float], folds: int, seed: int
) -> GridSearchCV:
    return GridSearchCV(
        make_pipeline(seed),
        _grid(n_features, k_grid, c_grid),
        scoring="roc_auc",
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        n_jobs=1,
        refit=True,
        error_score="raise",
    )


def train_classifier(
    table: pd.DataFrame,
    *,
    target: str,
    out_dir: Path,
    model_id: str,
    version: str = "0.1.0",
    outer_folds: int = 5,
    inner_folds: int = 3,
    k_grid: Sequence[int] = (5, 10, 20, 40),
    c_grid: Sequence[float] = (0.01, 0.1, 1.0),
    n_bootstrap: int = 1000,
    seed: int = 0,
    synthetic: bool = False,
    training_data: str = "",
    intended_use: str = "",
    radiomics_params: str = "radiomics_fast.yaml",
    sequences: Sequence[str] | None = None,
) -> Path:
    """Nested-CV train a classifier for ``target`` and write its folder (card + skops weights).

    Parameters
    ----------
    table
        One row per case: feature columns, clinical columns and ``target`` (0/1).
    target
        The label column.
    out_dir
        The model folder to write (``models/<id>``).
    model_id, version
        Card identification.
    outer_folds, inner_folds
        Folds of the outer (performance) and inner (hyper-parameter) loops.
    k_grid, c_grid
        Number of selected features and inverse regularisation strengths searched.
    n_bootstrap
        Bootstrap resamples for the AUC's 95 % CI.
    seed
        Random seed of folds and bootstrap.
    synthetic
        Trained on phantoms: the card says so and restricts its intended use.
    training_data, intended_use
        Card text (defaults describe the phantom cohort).
    radiomics_params
        The radiomics parameter file the features came from (recorded in the card).
    sequences
        Use only the radiomic features of these series (shape features and clinical
        variables are kept); ``None``: every feature column.

    Returns
    -------
    Path
        The card file.

    Raises
    ------
    TrainingDataError
        If the target is missing, not binary, or a class has fewer cases than folds.
    """
    if target not in table.columns:
        raise TrainingDataError(f"The training table has no target column {target!r}.")
    label_like = {
        "seed",
        "idh_mutant",
        "mgmt_methylated",
        "egfr_amplified",
        "os_months",
        "event",
        target,
    }
    feature_cols = [c for c in table.columns if c not in label_like and c not in CLINICAL]
    feature_cols += [c for c in CLINICAL if c in table.columns]
    feature_cols = select_sequences(feature_cols, sequences)
    if sequences is not None and not any(c not in CLINICAL for c in feature_cols):
        raise TrainingDataError(
            f"The training table has no radiomic features of the series {list(sequences)}."
        )
    data = table.dropna(subset=[target])
    y = data[target].astype(int).to_numpy()
    if set(np.unique(y)) != {0, 1}:
        raise TrainingDataError(f"Target {target!r} must be binary 0/1 with both classes present.")
    minority = int(min(np.bincount(y)))
    if minority < outer_folds:
        raise TrainingDataError(
            f"Target {target!r} has only {minority} cases in its smaller class, fewer than "
            f"{outer_folds} outer folds; lower --outer-folds or add cases."
        )
    x = data[feature_cols].astype(float).to_numpy()
    n_features = x.shape[1]
    oof = np.full(len(y), np.nan)
    fold_auc: list[float] = []
    chosen: list[dict[str, Any]] = []
    outer = StratifiedKFold(outer_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        for fold, (train, test) in enumerate(outer.split(x, y)):
            inner = min(inner_folds, int(min(np.bincount(y[train]))))
            search = _search(n_features, k_grid, c_grid, max(2, inner), seed + fold)
            search.fit(x[train], y[train])
            oof[test] = search.predict_proba(x[test])[:, 1]
            fold_auc.append(float(roc_auc_score(y[test], oof[test])))
            chosen.append(_plain(search.best_params_))
        value, low, high = bootstrap_ci(roc_auc_score, [y, oof], n_bootstrap=n_bootstrap, seed=seed)
        final = _search(n_features, k_grid, c_grid, inner_folds, seed)
        final.fit(x, y)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "model.skops"
    sio.dump(final.best_estimator_, weights)
    untrusted = [t for t in sio.get_untrusted_types(file=weights) if t not in TRUSTED_TYPES]
    if untrusted:
        raise TrainingDataError(
            f"The trained pipeline holds types not in TRUSTED_TYPES: {untrusted}."
        )
    selected_mask = final.best_estimator_.named_steps["variance"].get_support()
    kept = np.asarray(feature_cols)[selected_mask]
    top = kept[final.best_estimator_.named_steps["select"].get_support()].tolist()
    card: dict[str, Any] = {
        "id": model_id,
        "version": version,
        "task": "classification",
        "target": target,
        "intended_use": intended_use or (SYNTHETIC_USE if synthetic else "Research use only."),
        "training_data": training_data
        or (
            f"{len(y)} synthetic phantoms (rgcds.phantom.simulate_subject, size small), "
            f"{int(y.sum())} positive for {target}."
            if synthetic
            else f"{len(y)} cases, {int(y.sum())} positive for {target}."
        ),
        "synthetic_training_data": bool(synthetic),
        "research_use_only": True,
        "validation": {
            "metric": "AUC",
            "value": round(value, 4),
            "ci95": [round(low, 4), round(high, 4)],
            "method": (
                f"nested cross-validation: inner {inner_folds}-fold grid search (k, C), outer "
                f"{outer_folds}-fold; AUC of pooled out-of-fold probabilities; 95% CI "
                f"percentile bootstrap ({n_bootstrap}) over them"
            ),
            "n": len(y),
            "n_positive": int(y.sum()),
            "fold_auc": [round(a, 4) for a in fold_auc],
            "fold_hyperparameters": chosen,
        },
        "weights": {"file": weights.name, "sha256": sha256_of(weights), "format": "skops"},
        "threshold": 0.5,
        "hyperparameters": _plain(final.best_params_),
        "selected_features": top,
        "radiomics_params": radiomics_params,
        "algorithm": (
            "median impute, standardise, SelectKBest(f_classif), logistic regression (L2, balanced)"
        ),
        "requires": inputs_from_features(feature_cols).as_yaml(),
        "features": feature_cols,
    }
    return write_card(out_dir, card)
