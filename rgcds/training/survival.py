"""Training of a Cox survival model with nested cross-validation;
``pipelines/train_survival.py`` is its command line (its docstring: inputs and card)."""


from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index
from numpy.typing import NDArray
from sklearn.model_selection import StratifiedKFold

from rgcds.analysis.cards import inputs_from_features, sha256_of, write_card
from rgcds.analysis.predict import CoxWeights
from rgcds.analysis.validation import (
    TrainingDataError,
    bootstrap_ci,
    select_sequences,
)

CLINICAL = ("age_years", "sex_male")
LABELS = ("seed", "idh_mutant", "mgmt_methylated", "egfr_amplified", "os_months", "event")
SYNTHETIC_USE = (
    "Demonstration and software testing only. Trained on synthetic phantoms from "
    "rgcds.phantom, whose survival model is invented: it says nothing about real patients "
    "and must never be used for patient care. Research use only."
)


@dataclass(frozen=True)
class _Fitted:
    features: tuple[str, ...]
    means: NDArray[np.float64]
    scales: NDArray[np.float64]
    coefficients: NDArray[np.float64]
    cph: CoxPHFitter

    def lp(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        x = frame[list(self.features)].to_numpy(dtype=float)
        z = (x - self.means) / self.scales
        z = np.where(np.isfinite(z), z, 0.0)
        result: NDArray[np.float64] = z @ self.coefficients
        return result


def _c_index(
    time: NDArray[np.float64], event: NDArray[np.float64], risk: NDArray[np.float64]
) -> float:
    return float(concordance_index(time, -risk, event))


def _rank_features(
    frame: pd.DataFrame,
    radiomic: Sequence[str],
    time: NDArray[np.float64],
    event: NDArray[np.float64],
) -> list[str]:
    scores = []
    for name in radiomic:
        values = frame[name].to_numpy(dtype=float)
        ok = np.isfinite(values)
        if ok.sum() < 10 or np.nanstd(values) == 0:
            continue
        c = concordance_index(time[ok], values[ok], event[ok])
        scores.append((abs(c - 0.5), name))
    scores.sort(reverse=True)
    return [name for _, name in scores]


def _fit(
    frame: pd.DataFrame,
    time: NDArray[np.float64],
    event: NDArray[np.float64],
    radiomic: Sequence[str],
    clinical: Sequence[str],
    k: int,
    penalizer: float,
) -> _Fitted:
    ranked = _rank_features(frame, radiomic, time, event)
    features = tuple([*clinical, *ranked[:k]])
    x = frame[list(features)].to_numpy(dtype=float)
    means = np.nanmean(x, axis=0)
    scales = np.nanstd(x, axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    z = (x - means) / scales
    z = np.where(np.isfinite(z), z, 0.0)
    data = pd.DataFrame(z, columns=[f"x{i}" for i in range(len(features))])
    data["T"] = time
    data["E"] = event
    cph = CoxPHFitter(penalizer=penalizer, l1_ratio=0.0)
    cph.fit(data, duration_col="T", event_col="E")
    coefficients = cph.params_.to_numpy(dtype=float)
    return _Fitted(features, means, scales, coefficients, cph)


def _inner_search(
    frame: pd.DataFrame,
    time: NDArray[np.float64],
    event: NDArray[np.float64],
    radiomic: Sequence[str],
    clinical: Sequence[str],
    k_grid: Sequence[int],
    penalizer_grid: Sequence[float],
    folds: int,
    seed: int,
) -> tuple[int, float]:
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    best: tuple[float, int, float] | None = None
    # k = 0 (clinical variables only) needs clinical variables.
    ks = sorted({min(k, len(radiomic)) for k in k_grid if k > 0 or clinical})
    for k, pen in itertools.product(ks, penalizer_grid):
        scores = []
        for train, test in splitter.split(frame, event.astype(int)):
            fitted = _fit(frame.iloc[train], time[train], event[train], radiomic, clinical, k, pen)
            risk = fitted.lp(frame.iloc[test])
            if event[test].sum() == 0:
                continue
            scores.append(_c_index(time[test], event[test], risk))
        mean = float(np.mean(scores)) if scores else 0.5
        if best is None or mean > best[0]:
            best = (mean, k, pen)
    assert best is not None
    return best[1], best[2]


def train_cox(
    table: pd.DataFrame,
    *,
    out_dir: Path,
    model_id: str,
    version: str = "0.1.0",
    time_col: str = "os_months",
    event_col: str = "event",
    outer_folds: int = 5,
    inner_folds: int = 3,
    k_grid: Sequence[int] = (0, 3, 8, 15),
    penalizer_grid: Sequence[float] = (0.1, 1.0),
    n_bootstrap: int = 1000,
    seed: int = 0,
    synthetic: bool = False,
    training_data: str = "",
    intended_use: str = "",
    radiomics_params: str = "radiomics_fast.yaml",
    sequences: Sequence[str] | None = None,
) -> Path:
    """Nested-CV train a Cox model and write its folder (card + JSON weights).

    Parameters
    ----------
    table
        One row per case: features, ``age_years``, ``sex_male``, ``time_col``, ``event_col``.
    out_dir, model_id, version
        Model folder and card identification.
    time_col, event_col
        Survival time (months) and event (1 death, 0 censored) columns.
    outer_folds, inner_folds
        Folds of the outer (performance) and inner (hyper-parameter) loops.
    k_grid, penalizer_grid
        Radiomic features added to the clinical variables (0 = clinical only), and L2
        penalties, searched.
    n_bootstrap
        Bootstrap resamples for the C-index's 95 % CI.
    seed
        Random seed.
    synthetic
        Trained on phantoms: the card says so and restricts its intended use.
    training_data, intended_use, radiomics_params
        Card text.
    sequences
        Use only the radiomic features of these series (shape features are kept); ``None``:
        every feature column.

    Returns
    -------
    Path
        The card file.

    Raises
    ------
    TrainingDataError
        If the time or event column is missing or there are too few events.
    """
    for col in (time_col, event_col):
        if col not in table.columns:
            raise TrainingDataError(f"The training table has no {col!r} column.")
    data = table.dropna(subset=[time_col, event_col])
    time = data[time_col].to_numpy(dtype=float)
    event = data[event_col].to_numpy(dtype=float)
    if event.sum() < 2 * outer_folds:
        raise TrainingDataError(
            f"Only {int(event.sum())} events; nested CV with {outer_folds} outer folds needs "
            f"at least {2 * outer_folds}."
        )
    clinical = [c for c in CLINICAL if c in data.columns]
    radiomic = [
        c
        for c in data.columns
        if c not in LABELS and c not in CLINICAL and c not in (time_col, event_col)
    ]
    radiomic = select_sequences(radiomic, sequences)
    oof = np.full(len(time), np.nan)
    fold_c: list[float] = []
    chosen: list[dict[str, float]] = []
    outer = StratifiedKFold(outer_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fold, (train, test) in enumerate(outer.split(data, event.astype(int))):
            frame = data.iloc[train]
            k, pen = _inner_search(
                frame,
                time[train],
                event[train],
                radiomic,
                clinical,
                k_grid,
                penalizer_grid,
                inner_folds,
                seed + fold,
            )
            fitted = _fit(frame, time[train], event[train], radiomic, clinical, k, pen)
            oof[test] = fitted.lp(data.iloc[test])
            fold_c.append(_c_index(time[test], event[test], oof[test]))
            chosen.append({"k": k, "penalizer": pen})
        value, low, high = bootstrap_ci(
            _c_index, [time, event, oof], n_bootstrap=n_bootstrap, seed=seed
        )
        k, pen = _inner_search(
            data, time, event, radiomic, clinical, k_grid, penalizer_grid, inner_folds, seed
        )
        final = _fit(data, time, event, radiomic, clinical, k, pen)
    baseline = final.cph.baseline_survival_
    months = [0.0, *[float(t) for t in baseline.index]]
    s0 = [1.0, *[float(v) for v in baseline.iloc[:, 0]]]
    train_lp = final.lp(data)
    tertiles = np.quantile(train_lp, [1 / 3, 2 / 3])
    weights = CoxWeights(
        features=final.features,
        means=tuple(float(v) for v in final.means),
        scales=tuple(float(v) for v in final.scales),
        coefficients=tuple(float(v) for v in final.coefficients),
        baseline_months=tuple(months),
        baseline_survival=tuple(s0),
        risk_tertiles=(float(tertiles[0]), float(tertiles[1])),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.json"
    path.write_text(weights.to_json(), encoding="utf-8")
    n_events = int(event.sum())
    card: dict[str, Any] = {
        "id": model_id,
        "version": version,
        "task": "survival",
        "target": "overall_survival",
        "intended_use": intended_use or (SYNTHETIC_USE if synthetic else "Research use only."),
        "training_data": training_data
        or (
            f"{len(time)} synthetic phantoms (rgcds.phantom.simulate_subject, size small), "
            f"{n_events} deaths observed."
            if synthetic
            else f"{len(time)} cases, {n_events} deaths observed."
        ),
        "synthetic_training_data": bool(synthetic),
        "research_use_only": True,
        "validation": {
            "metric": "C-index",
            "value": round(value, 4),
            "ci95": [round(low, 4), round(high, 4)],
            "method": (
                f"nested cross-validation: inner {inner_folds}-fold search (k, penalizer), outer "
                f"{outer_folds}-fold; Harrell's C of pooled out-of-fold linear predictors; 95% CI "
                f"percentile bootstrap ({n_bootstrap}) over them"
            ),
            "n": len(time),
            "n_events": n_events,
            "fold_c_index": [round(c, 4) for c in fold_c],
            "fold_hyperparameters": chosen,
        },
        "weights": {"file": path.name, "sha256": sha256_of(path), "format": "json"},
        "time_unit": "months",
        "hyperparameters": {"k": int(k), "penalizer": float(pen)},
        "coefficients": {
            f: round(float(c), 4) for f, c in zip(final.features, final.coefficients, strict=True)
        },
        "risk_groups": (
            "low / intermediate / high by tertiles of the training cohort's linear predictor"
        ),
        "radiomics_params": radiomics_params,
        "algorithm": (
            "lifelines CoxPHFitter (L2 penalised) on z-scored clinical + top-k radiomic features"
        ),
        "requires": inputs_from_features(final.features).as_yaml(),
        "features": list(final.features),
    }
    return write_card(out_dir, card)
