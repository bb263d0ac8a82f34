"""Train a radiogenomic classifier (MGMT, IDH, EGFR, ...) with nested cross-validation.

Input: a wide features table (one row per case: ``case_id`` + radiomic features, as written by
``make_phantom_cohort.py`` or :func:`rgcds.analysis.radiomics.to_wide`) and a labels table
(``case_id``, the binary target, and the clinical variables ``age_years`` and ``sex_male``).

Model: median imputation -> zero-variance filter -> standardisation -> univariate selection
(``SelectKBest(f_classif, k)``) -> L2 logistic regression (balanced class weights).

Validation: nested cross-validation. Inner stratified k-fold grid search over ``k`` and ``C``
(AUC); outer stratified 5-fold gives out-of-fold probabilities for every case. The card's AUC
is that of the pooled out-of-fold predictions, with a 95 % percentile bootstrap CI over them.
The final model is refit (with the same inner search) on all cases and saved with skops.

Inputs: ``--sequences T1,T1c,T2,FLAIR`` keeps only the radiomic features of those series (and
the shape features and clinical variables); the card's ``requires`` block states the series,
regions and clinical variables the model needs, so that
:func:`rgcds.analysis.predict.predict_all` runs it only on studies that can feed it.

Example (the shipped MR-only and MR + PET variants)::

    .venv/bin/python pipelines/train_radiogenomics.py \
        --features build/phantom-cohort/features_wide.csv \
        --labels build/phantom-cohort/labels.csv --target mgmt_methylated \
        --sequences T1,T1c,T2,FLAIR --version 0.2.0 \
        --model-id mgmt-phantom-demo --out models/mgmt-phantom-demo --synthetic
    .venv/bin/python pipelines/train_radiogenomics.py \
        --features build/phantom-cohort/features_wide.csv \
        --labels build/phantom-cohort/labels.csv --target mgmt_methylated \
        --sequences T1,T1c,T2,FLAIR,PET --version 0.2.0 \
        --model-id mgmt-pet-phantom-demo --out models/mgmt-pet-phantom-demo --synthetic
"""

from __future__ import annotations

import argparse
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
    load_training_table,
    parse_sequences,
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


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Train a radiogenomic classifier with nested CV.")
    parser.add_argument("--features", type=Path, required=True, help="wide features CSV")
    parser.add_argument("--labels", type=Path, required=True, help="labels CSV with case_id")
    parser.add_argument("--target", required=True, help="binary label column, e.g. mgmt_methylated")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--version", default="0.1.0")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--outer-folds", type=int, default=5)
    parser.add_argument("--inner-folds", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true", help="trained on phantoms (demo)")
    parser.add_argument("--radiomics-params", default="radiomics_fast.yaml")
    parser.add_argument(
        "--sequences",
        default=None,
        help="comma-separated series whose radiomics the model uses, e.g. T1,T1c,T2,FLAIR "
        "(default: all in the table)",
    )
    args = parser.parse_args(argv)
    sequences = parse_sequences(args.sequences)
    table = load_training_table(args.features, args.labels, [args.target])
    card = train_classifier(
        table,
        target=args.target,
        out_dir=args.out,
        model_id=args.model_id,
        version=args.version,
        outer_folds=args.outer_folds,
        inner_folds=args.inner_folds,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        synthetic=args.synthetic,
        radiomics_params=args.radiomics_params,
        sequences=sequences,
    )
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
