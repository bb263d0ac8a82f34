"""Fitting all the residual models on a set of cases, and their validation figures (AUC and
Harrell's C with bootstrap CIs)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.pipeline import Pipeline

from rgcds.analysis.validation import bootstrap_ci
from rgcds.training.residual.cohort import Case, _log
from rgcds.training.residual.models import (
    _cox_frame,
    c_index,
    export_onnx,
    fit_cox,
    onnx_probs,
    train_pet,
    train_t1c,
)


@dataclass
class Fitted:
    """Everything trained on one training set."""

    pet_model: Any = None
    pet_state: dict[str, Any] = field(default_factory=dict)
    t1c_model: Pipeline | None = None
    t1c_names: list[str] = field(default_factory=list)
    t1c_c: float = 1.0
    thresholds: dict[str, float] = field(default_factory=dict)
    cox: dict[tuple[str, bool], Any] = field(default_factory=dict)
    cox_frame: pd.DataFrame | None = None
    onnx_path: Path | None = None
    onnx_diff: float = math.nan


def _youden(y: NDArray[np.int_], p: NDArray[np.float64]) -> float:
    if len(set(y.tolist())) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(1.0, max(0.0, thr[best])))


def _stack(cases: Sequence[Case]) -> NDArray[np.float32]:
    arrays = [c.pet_input for c in cases if c.pet_input is not None]
    return np.concatenate(arrays).astype(np.float32)


def _t1c_matrix(cases: Sequence[Case], names: Sequence[str]) -> NDArray[np.float64]:
    return np.asarray([[(c.t1c or {}).get(n, math.nan) for n in names] for c in cases], dtype=float)


def fit_models(cases: Sequence[Case], args: argparse.Namespace, work: Path, tag: str) -> Fitted:
    """Train (a), (b), thresholds and (d) on ``cases``."""
    fitted = Fitted()
    y = np.asarray([c.residual for c in cases], dtype=int)
    pet_ok = np.asarray([c.pet_input is not None for c in cases])
    t1c_ok = np.asarray([c.t1c is not None for c in cases])
    rng = np.random.default_rng(args.seed)
    import torch  # after the cohort's worker processes (no fork after OpenMP start-up)

    torch.set_num_threads(args.threads)
    # (b) T1c logistic regression
    oof = np.full(len(cases), np.nan)
    if t1c_ok.sum() >= 10:
        names = sorted({n for c in cases if c.t1c for n in c.t1c})
        x = _t1c_matrix([c for c, ok in zip(cases, t1c_ok, strict=True) if ok], names)
        model, oof_t, best_c = train_t1c(x, y[t1c_ok], args.seed)
        oof[t1c_ok] = oof_t
        fitted.t1c_model, fitted.t1c_names, fitted.t1c_c = model, names, best_c
        fitted.thresholds["radiomics"] = _youden(y[t1c_ok], oof_t)
        _log(
            "t1c_trained",
            n=int(t1c_ok.sum()),
            C=best_c,
            oof_auc=round(float(roc_auc_score(y[t1c_ok], oof_t)), 4),
        )
    # (a) PET DenseNet
    if pet_ok.sum() >= 10:
        idx = np.flatnonzero(pet_ok)
        val = np.zeros(len(idx), dtype=bool)
        for label in (0, 1):
            members = idx[y[idx] == label]
            pick = rng.choice(
                len(members), max(1, round(args.val_fraction * len(members))), replace=False
            )
            val[np.isin(idx, members[pick])] = True
        xp = _stack([cases[int(i)] for i in idx])
        model, state = train_pet(
            xp,
            y[idx],
            val,
            work,
            arch=args.arch,
            epochs=args.epochs,
            batch=args.batch,
            lr=args.lr,
            seed=args.seed,
        )
        fitted.pet_model, fitted.pet_state = model, state
        onnx_path = work / f"pet_{tag}.onnx"
        fitted.onnx_diff = export_onnx(model, onnx_path, xp.shape[-1], xp[: min(4, len(xp))])
        fitted.onnx_path = onnx_path
        _log("pet_exported", onnx=str(onnx_path), max_abs_diff=f"{fitted.onnx_diff:.2e}")
        p_all = onnx_probs(onnx_path, xp)
        vi = idx[val]
        fitted.thresholds["pet"] = _youden(y[vi], p_all[val])
        both = val & t1c_ok[idx]
        if both.sum() >= 4:
            comb = 0.5 * (p_all[both] + oof[idx[both]])
            fitted.thresholds["combined"] = _youden(y[idx[both]], comb)
        # (d) Cox on the PET cases
        pet_cases = [cases[int(i)] for i in idx]
        frame = _cox_frame(pet_cases, p_all)
        fitted.cox_frame = frame
        for endpoint in ("ttr", "os"):
            for with_mgmt in (True, False):
                cox = fit_cox(frame, endpoint, with_mgmt, args.penalizer)
                if cox is not None:
                    fitted.cox[(endpoint, with_mgmt)] = cox
        _log("cox_trained", n=len(frame))
    return fitted


@dataclass
class Evaluation:
    """Predictions on validation cases (held-out set or pooled out-of-fold)."""

    y: list[int] = field(default_factory=list)
    p_pet: list[float] = field(default_factory=list)
    p_rad: list[float] = field(default_factory=list)
    cox_rows: list[pd.DataFrame] = field(default_factory=list)
    cox_lp: dict[tuple[str, bool], list[float]] = field(default_factory=dict)


def evaluate(fitted: Fitted, cases: Sequence[Case], ev: Evaluation) -> None:
    """Predict ``cases`` with ``fitted`` (ONNX for the PET model) and append to ``ev``."""
    ev.y.extend(c.residual for c in cases)
    p_pet = np.full(len(cases), np.nan)
    pet_idx = [i for i, c in enumerate(cases) if c.pet_input is not None]
    if fitted.onnx_path is not None and pet_idx:
        x = _stack([cases[i] for i in pet_idx])
        p_pet[pet_idx] = onnx_probs(fitted.onnx_path, x)
    p_rad = np.full(len(cases), np.nan)
    rad_idx = [i for i, c in enumerate(cases) if c.t1c is not None]
    if fitted.t1c_model is not None and rad_idx:
        x_t = _t1c_matrix([cases[i] for i in rad_idx], fitted.t1c_names)
        p_rad[rad_idx] = fitted.t1c_model.predict_proba(x_t)[:, 1]
    ev.p_pet.extend(p_pet.tolist())
    ev.p_rad.extend(p_rad.tolist())
    if fitted.cox and pet_idx:
        frame = _cox_frame([cases[i] for i in pet_idx], p_pet[pet_idx])
        ev.cox_rows.append(frame)
        for key, model in fitted.cox.items():
            ev.cox_lp.setdefault(key, []).extend(model.lp(frame).tolist())


def _auc_block(
    y: NDArray[np.int_], p: NDArray[np.float64], n_boot: int, seed: int, method: str
) -> dict[str, Any] | None:
    ok = np.isfinite(p)
    if ok.sum() < 4 or len(set(y[ok].tolist())) < 2:
        return None
    value, low, high = bootstrap_ci(roc_auc_score, [y[ok], p[ok]], n_bootstrap=n_boot, seed=seed)
    return {
        "metric": "AUC",
        "value": round(value, 4),
        "ci95": [round(low, 4), round(high, 4)],
        "method": method,
        "n": int(ok.sum()),
        "n_positive": int(y[ok].sum()),
    }


def _c_block(
    time_: NDArray[np.float64],
    event: NDArray[np.float64],
    lp: NDArray[np.float64],
    n_boot: int,
    seed: int,
    method: str,
) -> dict[str, Any] | None:
    ok = np.isfinite(lp) & np.isfinite(time_) & np.isfinite(event)
    if ok.sum() < 4 or event[ok].sum() < 2:
        return None
    value, low, high = bootstrap_ci(
        c_index, [time_[ok], event[ok], lp[ok]], n_bootstrap=n_boot, seed=seed
    )
    return {
        "metric": "C-index",
        "value": round(value, 4),
        "ci95": [round(low, 4), round(high, 4)],
        "method": method,
        "n": int(ok.sum()),
        "n_events": int(event[ok].sum()),
    }


def metrics(ev: Evaluation, n_boot: int, seed: int, method: str) -> dict[str, Any]:
    """AUCs of (a)-(c), C-indices of (d) and the oracle C-indices, with bootstrap CIs."""
    y = np.asarray(ev.y, dtype=int)
    p_pet = np.asarray(ev.p_pet, dtype=float)
    p_rad = np.asarray(ev.p_rad, dtype=float)
    comb = 0.5 * (p_pet + p_rad)
    how = f"{method}; 95% CI percentile bootstrap ({n_boot})"
    out: dict[str, Any] = {
        "pet": _auc_block(y, p_pet, n_boot, seed, how),
        "radiomics": _auc_block(y, p_rad, n_boot, seed, how),
        "combined": _auc_block(y, comb, n_boot, seed, how),
    }
    if ev.cox_rows:
        frame = pd.concat(ev.cox_rows, ignore_index=True)
        for endpoint in ("ttr", "os"):
            t = frame[f"{endpoint}_months"].to_numpy(float)
            e = frame[f"{endpoint}_event"].to_numpy(float)
            known = frame["mgmt_methylated"].notna().to_numpy()
            for with_mgmt in (True, False):
                if len(ev.cox_lp.get((endpoint, with_mgmt), [])) != len(frame):
                    continue  # not fitted in every fold
                lp = np.asarray(ev.cox_lp[(endpoint, with_mgmt)], dtype=float)
                if with_mgmt:
                    lp = np.where(known, lp, np.nan)
                out[f"cox_{endpoint}_{'mgmt' if with_mgmt else 'nomgmt'}"] = _c_block(
                    t, e, lp, n_boot, seed, how
                )
            oracle = frame[f"lp_{endpoint}"].to_numpy(float)
            out[f"oracle_{endpoint}"] = _c_block(
                t,
                e,
                oracle,
                n_boot,
                seed,
                f"Harrell's C of the simulation's true linear predictor on the same cases; {how}",
            )
    return out


# --- cards ------------------------------------------------------------------------------
