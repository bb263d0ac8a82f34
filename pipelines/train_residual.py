"""Train the post-operative residual-tumour and prognosis models (see docs/residual.md).

Models (after Sci Rep 2024 14:4576, post-operative [11C]MET-PET + T1c inside the CTV):

(a) PET model - MONAI ``DenseNet121(spatial_dims=3, in_channels=1, out_channels=1)`` on the
    PET TBR inside the CTV (:func:`rgcds.analysis.residual.pet_model_input`: 3 mm grid,
    40^3 box), binary cross-entropy with positive-class weight, AdamW, cosine schedule,
    augmentation (random flips on the three axes, shifts up to 3 voxels, intensity x0.9-1.1).
    20 % of the training cases are held back to pick the epoch (best AUC) and the
    thresholds (Youden). Exported to ONNX (opset 17); ONNX Runtime must agree with PyTorch
    within 1e-4.
(b) T1c model - median imputation, standardisation, L2 logistic regression (C by 5-fold
    inner CV, AUC) on :func:`rgcds.analysis.residual.t1c_features`.
(c) Combination - the mean of the two probabilities (no fitted weights).
(d) Cox models for time to recurrence and overall survival (lifelines ``CoxPHFitter``, L2
    penaliser 0.1, z-scored covariates) on the PET model's logit, TBRmax and BTV in the CTV,
    age and MGMT (with-MGMT variant) or without MGMT (MGMT-free variant). The PET logits of
    the training cases come from the final network (in-sample).

Modes
-----
``--phantoms N --held-out M``
    Generates N + M post-operative phantoms (``rgcds.phantom.simulate_postop``, seeds
    ``--seed-base`` ...), trains on the first N, evaluates on the last M: AUC with 95 %
    percentile-bootstrap CI for (a)-(c); Harrell's C with CI for (d) next to the oracle
    C-index (the C-index of the simulation's true linear predictor on the same cases).
``--labels-csv FILE``
    A site's own cohort, one row per case with columns:

    ==================  ==========================================================
    case_id             unique id (not a patient identifier)
    pet_path            post-op PET (NIfTI/NRRD, SUV or proportional units), or empty
    t1c_path            post-op T1c registered to the PET/CTV frame, or empty
    ctv_path            radiotherapy CTV mask (non-zero inside)
    brain_mask_path     optional brain mask (background VOI, T1c z-scoring)
    residual            1 residual tumour present, 0 absent
    age_years           age at the scan
    mgmt_methylated     1, 0 or empty (unknown)
    ttr_days, ttr_event time to recurrence (days) and event (1 recurrence, 0 censored)
    os_days, os_event   overall survival (days) and event (1 death, 0 censored)
    ==================  ==========================================================

    Paths are relative to the CSV's folder. Validation is ``--folds``-fold cross-validation
    (pooled out-of-fold predictions); the final models are refit on all cases.

Partial results are kept: the cohort cache (``--cohort``: one ``.npz`` per case, so a
restart resumes), the network's checkpoint after every epoch (``--work``). Progress goes to
stdout. Cards go to ``--out/<model-id>/``; a JSON and Markdown summary to ``--work``.

Example::

    .venv/bin/python pipelines/train_residual.py --phantoms 150 --held-out 100 --out models
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lifelines.exceptions import ConvergenceError
from lifelines.utils import concordance_index
from numpy.typing import NDArray
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from rgcds.analysis.cards import sha256_of, write_card
from rgcds.analysis.predict import TRUSTED_TYPES, CoxWeights
from rgcds.analysis.prognosis import DAYS_PER_MONTH, ENDPOINT_MODELS, PET_COVARIATES
from rgcds.analysis.residual import (
    PET_BOX,
    PET_FEATURE,
    PET_GRID_MM,
    PET_MODEL_ID,
    T1C_MODEL_ID,
    T1C_RADIOMICS,
    logit,
    residual_inputs,
)
from rgcds.analysis.validation import TrainingDataError, bootstrap_ci

STUDY = (
    "Reference study: Sci Rep 2024 14:4576 (post-operative [11C]methionine PET and T1c inside "
    "the radiotherapy CTV): AUC 0.95 (3D DenseNet on MET-PET), 0.78 (logistic regression on "
    "T1c radiomics); C-index 0.68 (time to recurrence) and 0.65 (overall survival) with "
    "DenseNet-on-PET + age + MGMT."
)
SYNTHETIC_USE = (
    "Demonstration and software testing only. Trained and validated on synthetic "
    "post-operative phantoms (rgcds.phantom.simulate_postop), whose residual-tumour imaging and "
    "outcome model are invented: phantoms are not patients, and these figures say nothing about "
    "performance on real patients. Never use for patient care. Research use only."
)
SITE_USE = "Research use only; not validated for clinical decisions."
VERSION = "0.1.0"


def _log(event: str, **fields: Any) -> None:
    stamp = time.strftime("%H:%M:%S")
    extra = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"{stamp} {event} {extra}", flush=True)


# --- cohort ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One case's model inputs and labels (phantom or site)."""

    case_id: str
    pet_input: NDArray[np.float32] | None = field(repr=False)
    t1c: dict[str, float] | None = field(repr=False)
    tbr_max: float
    btv_ml: float
    age_years: float
    mgmt: float  # 1, 0 or NaN
    residual: int
    ttr_days: float
    ttr_event: float
    os_days: float
    os_event: float
    lp_ttr: float = math.nan  # simulation's true linear predictors (phantoms only)
    lp_os: float = math.nan


def _save_case(path: Path, case: Case) -> None:
    meta = {k: v for k, v in case.__dict__.items() if k not in ("pet_input", "t1c")}
    arrays: dict[str, Any] = {
        "meta": np.asarray(json.dumps(meta)),
        "t1c": np.asarray(json.dumps(case.t1c)),
    }
    if case.pet_input is not None:
        arrays["pet_input"] = case.pet_input
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _load_case(path: Path) -> Case:
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        t1c = json.loads(str(data["t1c"]))
        pet = data["pet_input"].astype(np.float32) if "pet_input" in data else None
    return Case(pet_input=pet, t1c=t1c, **meta)


def _single_thread() -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def _phantom_case(seed: int, cohort: Path) -> str:
    path = cohort / f"phantom_{seed:05d}.npz"
    if path.is_file():
        return path.name
    _single_thread()
    import importlib

    # rgcds.phantom.simulate_postop (looked up at run time: the phantom is optional here)
    subject = importlib.import_module("rgcds.phantom").simulate_postop(seed, "small")
    inputs = residual_inputs(subject.pet, subject.t1c, subject.ctv, subject.brain_mask)
    c = subject.clinical
    case = Case(
        case_id=f"phantom-{seed:05d}",
        pet_input=inputs.pet_input,
        t1c=inputs.t1c_features,
        tbr_max=float(inputs.tbr_max if inputs.tbr_max is not None else math.nan),
        btv_ml=float(inputs.btv_ml if inputs.btv_ml is not None else math.nan),
        age_years=float(c.age_years),
        mgmt=1.0 if c.mgmt_methylated else 0.0,
        residual=int(bool(c.residual_present)),
        ttr_days=float(c.ttr_days),
        ttr_event=float(c.ttr_event),
        os_days=float(c.os_days),
        os_event=float(c.os_event),
        lp_ttr=float(c.lp_ttr),
        lp_os=float(c.lp_os),
    )
    _save_case(path, case)
    return path.name


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _site_case(row: dict[str, Any], base: str, cohort: Path) -> str:
    import SimpleITK as sitk

    case_id = str(row["case_id"])
    path = cohort / f"site_{case_id}.npz"
    if path.is_file():
        return path.name
    _single_thread()

    def read(key: str) -> sitk.Image | None:
        value = row.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            return None
        return sitk.ReadImage(str(Path(base) / str(value)))

    ctv = read("ctv_path")
    if ctv is None:
        raise TrainingDataError(f"Case {case_id} has no ctv_path; every case needs a CTV.")
    inputs = residual_inputs(read("pet_path"), read("t1c_path"), ctv, read("brain_mask_path"))
    case = Case(
        case_id=case_id,
        pet_input=inputs.pet_input,
        t1c=inputs.t1c_features,
        tbr_max=_num(inputs.tbr_max),
        btv_ml=_num(inputs.btv_ml),
        age_years=_num(row.get("age_years")),
        mgmt=_num(row.get("mgmt_methylated")),
        residual=int(row["residual"]),
        ttr_days=_num(row.get("ttr_days")),
        ttr_event=_num(row.get("ttr_event")),
        os_days=_num(row.get("os_days")),
        os_event=_num(row.get("os_event")),
    )
    _save_case(path, case)
    return path.name


def build_cohort(
    jobs: Sequence[tuple[Callable[..., str], tuple[Any, ...]]], cohort: Path, workers: int
) -> list[Case]:
    """Run the case jobs (cached: existing ``.npz`` files are kept) and load the cases."""
    cohort.mkdir(parents=True, exist_ok=True)
    started = time.time()
    names: list[str] = []
    if workers <= 1:
        for n, (fn, args) in enumerate(jobs, 1):
            names.append(fn(*args))
            if n % 10 == 0:
                _log("cohort", done=n, of=len(jobs), seconds=round(time.time() - started))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(fn, *args) for fn, args in jobs]
            for n, future in enumerate(futures, 1):
                names.append(future.result())
                if n % 10 == 0:
                    _log("cohort", done=n, of=len(jobs), seconds=round(time.time() - started))
    _log("cohort_done", n=len(names), seconds=round(time.time() - started))
    return [_load_case(cohort / name) for name in names]


# --- (b) T1c logistic regression -------------------------------------------------------


def _lr_pipeline(seed: int) -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=1.0, max_iter=5000, random_state=seed)),
        ]
    )


def train_t1c(
    x: NDArray[np.float64], y: NDArray[np.int_], seed: int
) -> tuple[Pipeline, NDArray[np.float64], float]:
    """Fit the T1c model (C by inner CV); return it, out-of-fold probabilities and C."""
    folds = max(2, min(5, int(np.bincount(y).min())))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    search = GridSearchCV(
        _lr_pipeline(seed),
        {"clf__C": [0.01, 0.1, 1.0, 10.0]},
        scoring="roc_auc",
        cv=cv,
        n_jobs=1,
        refit=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(x, y)
        best_c = float(search.best_params_["clf__C"])
        oof = cross_val_predict(
            _lr_pipeline(seed).set_params(clf__C=best_c), x, y, cv=cv, method="predict_proba"
        )[:, 1]
    model: Pipeline = search.best_estimator_
    return model, np.asarray(oof, dtype=float), best_c


# --- (a) PET DenseNet --------------------------------------------------------------------


def build_densenet(arch: str) -> Any:
    """MONAI DenseNet121 (``arch='densenet121'``) or a small DenseNet (``'small'``, tests)."""
    from monai.networks.nets import DenseNet, DenseNet121  # type: ignore[attr-defined]

    if arch == "densenet121":
        return DenseNet121(spatial_dims=3, in_channels=1, out_channels=1)
    return DenseNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=1,
        init_features=8,
        growth_rate=4,
        block_config=(2, 2),
    )


def _augment(x: Any, rng: np.random.Generator) -> Any:
    import torch

    for axis in (2, 3, 4):
        if rng.random() < 0.5:
            x = torch.flip(x, dims=(axis,))
    shifts = tuple(int(v) for v in rng.integers(-3, 4, size=3))
    x = torch.roll(x, shifts=shifts, dims=(2, 3, 4))
    scale = torch.as_tensor(rng.uniform(0.9, 1.1, size=(x.shape[0], 1, 1, 1, 1)), dtype=x.dtype)
    return x * scale


def _torch_probs(model: Any, x: NDArray[np.float32], batch: int = 8) -> NDArray[np.float64]:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(torch.sigmoid(model(torch.from_numpy(x[i : i + batch]))).numpy()[:, 0])
    return np.concatenate(out).astype(float) if out else np.zeros(0)


def train_pet(
    x: NDArray[np.float32],
    y: NDArray[np.int_],
    val: NDArray[np.bool_],
    work: Path,
    *,
    arch: str,
    epochs: int,
    batch: int,
    lr: float,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    """Train the network on ``x[~val]``, pick the epoch with the best AUC on ``x[val]``.

    A checkpoint after every epoch (``work/pet_last.pt``) lets a restart resume.
    """
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_densenet(arch)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, epochs))
    xt, yt = x[~val], y[~val]
    pos = max(1, int(yt.sum()))
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor([(len(yt) - pos) / pos], dtype=torch.float32)
    )
    state: dict[str, Any] = {
        "epoch": 0,
        "best_auc": -1.0,
        "best_epoch": 0,
        "history": [],
        "seconds": 0.0,
    }
    best_state = None
    last = work / f"pet_last_{arch}.pt"
    if last.is_file():
        saved = torch.load(last, weights_only=False)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        state, best_state = saved["state"], saved["best_model"]
        rng = np.random.default_rng(seed + state["epoch"])
        _log("pet_resumed", epoch=state["epoch"])
    n_params = sum(p.numel() for p in model.parameters())
    _log("pet_train_start", arch=arch, params=n_params, n_train=len(yt), n_val=int(val.sum()))
    while state["epoch"] < epochs:
        started = time.time()
        model.train()
        order = rng.permutation(len(yt))
        losses = []
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            if len(idx) < 2:
                continue
            xb = _augment(torch.from_numpy(xt[idx]), rng)
            yb = torch.from_numpy(yt[idx].astype(np.float32))[:, None]
            optimiser.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        schedule.step()
        p_val = _torch_probs(model, x[val])
        auc = float(roc_auc_score(y[val], p_val)) if len(set(y[val].tolist())) == 2 else 0.5
        state["epoch"] += 1
        state["seconds"] += time.time() - started
        state["history"].append(
            {"epoch": state["epoch"], "loss": float(np.mean(losses)), "val_auc": round(auc, 4)}
        )
        if auc > state["best_auc"]:
            state["best_auc"], state["best_epoch"] = auc, state["epoch"]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.save(
            {
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(),
                "state": state,
                "best_model": best_state,
            },
            last,
        )
        _log(
            "pet_epoch",
            epoch=state["epoch"],
            loss=round(float(np.mean(losses)), 4),
            val_auc=round(auc, 4),
            seconds=round(time.time() - started, 1),
        )
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, {**state, "params": n_params}


def export_onnx(model: Any, path: Path, box: int, check: NDArray[np.float32]) -> float:
    """Export to ONNX (opset 17, dynamic batch); return the largest |ORT - torch| on ``check``.

    Raises
    ------
    RuntimeError
        If ONNX Runtime and PyTorch differ by more than 1e-4.
    """
    import onnx
    import onnxruntime as ort
    import torch

    model.eval()
    tmp = path.with_name(path.name + ".tmp")
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, box, box, box),),
        str(tmp),
        input_names=["pet_tbr"],
        output_names=["logit"],
        dynamic_axes={"pet_tbr": {0: "batch"}, "logit": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    onnx.checker.check_model(onnx.load(str(tmp)))
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(torch.from_numpy(check)).numpy()
    got = session.run(["logit"], {"pet_tbr": check})[0]
    diff = float(np.abs(np.asarray(got) - ref).max())
    if diff > 1e-4:
        raise RuntimeError(f"ONNX Runtime differs from PyTorch by {diff:.2e} (> 1e-4).")
    tmp.replace(path)
    return diff


def onnx_probs(path: Path, x: NDArray[np.float32], batch: int = 8) -> NDArray[np.float64]:
    """Probabilities from the exported ONNX model (as at inference)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = [
        session.run(["logit"], {"pet_tbr": x[i : i + batch]})[0][:, 0]
        for i in range(0, len(x), batch)
    ]
    logits = np.concatenate(out).astype(float) if out else np.zeros(0)
    return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=float)


# --- (d) Cox ------------------------------------------------------------------------------


def _cox_frame(cases: Sequence[Case], p_pet: NDArray[np.float64]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "residual_logit_pet": [logit(float(p)) for p in p_pet],
            "ctv_tbr_max": [c.tbr_max for c in cases],
            "ctv_btv_ml": [c.btv_ml for c in cases],
            "age_years": [c.age_years for c in cases],
            "mgmt_methylated": [c.mgmt for c in cases],
            "ttr_months": [c.ttr_days / DAYS_PER_MONTH for c in cases],
            "ttr_event": [c.ttr_event for c in cases],
            "os_months": [c.os_days / DAYS_PER_MONTH for c in cases],
            "os_event": [c.os_event for c in cases],
            "lp_ttr": [c.lp_ttr for c in cases],
            "lp_os": [c.lp_os for c in cases],
        }
    )


def _covariates(with_mgmt: bool) -> list[str]:
    return [*PET_COVARIATES, "age_years", *(["mgmt_methylated"] if with_mgmt else [])]


def fit_cox(frame: pd.DataFrame, endpoint: str, with_mgmt: bool, penalizer: float) -> Any:
    """Fit one Cox model (``pipelines.train_survival._fit`` with the given covariates only).

    A fit that does not converge is retried with penaliser 1 and 10; ``None`` if all fail or
    there are fewer than 2 events.
    """
    from pipelines.train_survival import _fit

    data = frame.dropna(subset=["mgmt_methylated"]) if with_mgmt else frame
    data = data.dropna(subset=[f"{endpoint}_months", f"{endpoint}_event"])
    time_ = data[f"{endpoint}_months"].to_numpy(float)
    event = data[f"{endpoint}_event"].to_numpy(float)
    if event.sum() < 2:
        _log("cox_skipped", endpoint=endpoint, mgmt=with_mgmt, reason="fewer than 2 events")
        return None
    for pen in (penalizer, 1.0, 10.0):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return _fit(data, time_, event, [], _covariates(with_mgmt), 0, pen)
        except ConvergenceError:
            _log("cox_not_converged", endpoint=endpoint, mgmt=with_mgmt, penalizer=pen)
    return None


def c_index(
    time_: NDArray[np.float64], event: NDArray[np.float64], risk: NDArray[np.float64]
) -> float:
    """Harrell's C (higher risk, shorter time)."""
    return float(concordance_index(time_, -risk, event))


def _cox_weights(fitted: Any, frame: pd.DataFrame) -> CoxWeights:
    baseline = fitted.cph.baseline_survival_
    lp = fitted.lp(frame)
    tertiles = np.quantile(lp, [1 / 3, 2 / 3])
    return CoxWeights(
        features=tuple(fitted.features),
        means=tuple(float(v) for v in fitted.means),
        scales=tuple(float(v) for v in fitted.scales),
        coefficients=tuple(float(v) for v in fitted.coefficients),
        baseline_months=(0.0, *[float(t) for t in baseline.index]),
        baseline_survival=(1.0, *[float(v) for v in baseline.iloc[:, 0]]),
        risk_tertiles=(float(tertiles[0]), float(tertiles[1])),
    )


# --- training and evaluation -----------------------------------------------------------


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


def _folder_id(base: str, synthetic: bool) -> str:
    return base if synthetic else base.replace("-phantom", "-site")


def write_cards(
    fitted: Fitted,
    scores: dict[str, Any],
    out: Path,
    args: argparse.Namespace,
    training: dict[str, Any],
) -> list[Path]:
    """Write the model folders (cards, weights, sha256)."""
    import shutil

    import skops.io as sio

    synthetic = bool(training["synthetic"])
    use = SYNTHETIC_USE if synthetic else SITE_USE
    written: list[Path] = []
    common = {
        "version": VERSION,
        "intended_use": use,
        "synthetic_training_data": synthetic,
        "research_use_only": True,
        "reference_study": STUDY,
    }
    if fitted.onnx_path is not None and scores.get("pet"):
        folder = out / _folder_id(PET_MODEL_ID, synthetic)
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / "model.onnx"
        shutil.copyfile(fitted.onnx_path, weights)
        comb = scores.get("combined")
        card: dict[str, Any] = {
            "id": folder.name,
            **common,
            "task": "classification",
            "family": "residual",
            "target": "residual_tumour_in_ctv",
            "training_data": training["text"],
            "validation": scores["pet"],
            "weights": {
                "file": weights.name,
                "sha256": sha256_of(weights),
                "format": "onnx",
                "opset": 17,
                "onnx_vs_torch_max_abs_diff": float(f"{fitted.onnx_diff:.3g}"),
            },
            "threshold": round(fitted.thresholds.get("pet", 0.5), 4),
            "threshold_method": "Youden's J on the 20% of training cases held back from fitting",
            "input": {
                "grid_mm": PET_GRID_MM,
                "box": PET_BOX,
                "name": "pet_tbr",
                "description": "PET / contralateral background inside the CTV, 0 outside "
                "(rgcds.analysis.residual.pet_model_input)",
            },
            "output": "logit of residual tumour (sigmoid gives the probability)",
            "architecture": (
                "MONAI DenseNet121(spatial_dims=3, in_channels=1, out_channels=1)"
                if args.arch == "densenet121"
                else "MONAI DenseNet(spatial_dims=3, init_features=8, growth_rate=4, "
                "block_config=(2, 2))"
            ),
            "training": {
                "epochs": args.epochs,
                "best_epoch": fitted.pet_state.get("best_epoch"),
                "batch": args.batch,
                "lr": args.lr,
                "optimiser": "AdamW + cosine",
                "augmentation": "flips (3 axes), shifts <= 3 voxels, intensity x0.9-1.1",
                "parameters": fitted.pet_state.get("params"),
                "seconds": round(float(fitted.pet_state.get("seconds", 0.0)), 1),
                "history": fitted.pet_state.get("history", []),
            },
            "combined": (
                {
                    **comb,
                    "threshold": round(fitted.thresholds.get("combined", 0.5), 4),
                    "rule": "mean of the PET and T1c radiomics probabilities",
                }
                if comb
                else None
            ),
            "features": [PET_FEATURE],
        }
        written.append(write_card(folder, card))
    if fitted.t1c_model is not None and scores.get("radiomics"):
        folder = out / _folder_id(T1C_MODEL_ID, synthetic)
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / "model.skops"
        sio.dump(fitted.t1c_model, weights)
        untrusted = [t for t in sio.get_untrusted_types(file=weights) if t not in TRUSTED_TYPES]
        if untrusted:
            raise TrainingDataError(f"The T1c pipeline holds untrusted types {untrusted}.")
        card = {
            "id": folder.name,
            **common,
            "task": "classification",
            "family": "residual",
            "target": "residual_tumour_in_ctv",
            "training_data": training["text"],
            "validation": scores["radiomics"],
            "weights": {"file": weights.name, "sha256": sha256_of(weights), "format": "skops"},
            "threshold": round(fitted.thresholds.get("radiomics", 0.5), 4),
            "threshold_method": "Youden's J on out-of-fold training probabilities",
            "algorithm": "median impute, standardise, L2 logistic regression (C by 5-fold CV)",
            "hyperparameters": {"C": fitted.t1c_c},
            "radiomics_params": T1C_RADIOMICS.name,
            "features": list(fitted.t1c_names),
        }
        written.append(write_card(folder, card))
    if fitted.cox and fitted.cox_frame is not None:
        names = {"ttr": "time_to_recurrence", "os": "overall_survival"}
        for endpoint, target in names.items():
            folders = ENDPOINT_MODELS[target]
            for with_mgmt, base in zip((True, False), folders, strict=True):
                key = f"cox_{endpoint}_{'mgmt' if with_mgmt else 'nomgmt'}"
                if not scores.get(key) or (endpoint, with_mgmt) not in fitted.cox:
                    continue
                model = fitted.cox[(endpoint, with_mgmt)]
                folder = out / _folder_id(base, synthetic)
                folder.mkdir(parents=True, exist_ok=True)
                weights = folder / "model.json"
                frame = fitted.cox_frame
                if with_mgmt:
                    frame = frame.dropna(subset=["mgmt_methylated"])
                weights.write_text(_cox_weights(model, frame).to_json(), encoding="utf-8")
                card = {
                    "id": folder.name,
                    **common,
                    "task": "survival",
                    "family": "prognosis",
                    "target": target,
                    "training_data": training["text"],
                    "validation": scores[key],
                    "oracle_c_index": scores.get(f"oracle_{endpoint}"),
                    "weights": {
                        "file": weights.name,
                        "sha256": sha256_of(weights),
                        "format": "json",
                    },
                    "time_unit": "months",
                    "mgmt_used": with_mgmt,
                    "algorithm": (
                        f"lifelines CoxPHFitter (L2 penaliser {args.penalizer}) on "
                        "z-scored covariates; PET logits of the training cases are "
                        "in-sample"
                    ),
                    "coefficients": {
                        f: round(float(c), 4)
                        for f, c in zip(model.features, model.coefficients, strict=True)
                    },
                    "risk_groups": "tertiles of the training cohort's linear predictor",
                    "features": list(model.features),
                }
                written.append(write_card(folder, card))
    return written


def _summary(scores: dict[str, Any], work: Path, training: dict[str, Any]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    (work / "summary.json").write_text(
        json.dumps({"training": training, "scores": scores}, indent=2), encoding="utf-8"
    )
    lines = [
        "| model | metric | value | 95% CI | n | reference study |",
        "|---|---|---|---|---|---|",
    ]
    ref = {
        "pet": "0.95",
        "radiomics": "0.78",
        "combined": "-",
        "cox_ttr_mgmt": "0.68",
        "cox_os_mgmt": "0.65",
        "cox_ttr_nomgmt": "-",
        "cox_os_nomgmt": "-",
        "oracle_ttr": "-",
        "oracle_os": "-",
    }
    for key, block in scores.items():
        if not block:
            continue
        lines.append(
            f"| {key} | {block['metric']} | {block['value']:.3f} | "
            f"{block['ci95'][0]:.3f}-{block['ci95'][1]:.3f} | {block['n']} | "
            f"{ref.get(key, '-')} |"
        )
    lines.append("")
    caveat = " Phantoms are not patients." if training.get("synthetic") else ""
    lines.append(f"Training: {training['text']}{caveat}")
    (work / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--phantoms", type=int, help="training phantoms")
    mode.add_argument("--labels-csv", type=Path, help="a site's cohort (see the docstring)")
    parser.add_argument("--held-out", type=int, default=100, help="held-out phantoms")
    parser.add_argument("--seed-base", type=int, default=50_000)
    parser.add_argument("--folds", type=int, default=5, help="CV folds (--labels-csv)")
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--cohort", type=Path, default=Path("build/residual-cohort"))
    parser.add_argument("--work", type=Path, default=Path("build/residual"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", choices=("densenet121", "small"), default="densenet121")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--penalizer", type=float, default=0.1)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    started = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.phantoms is not None:
        seeds = range(args.seed_base, args.seed_base + args.phantoms + args.held_out)
        jobs: list[tuple[Callable[..., str], tuple[Any, ...]]] = [
            (_phantom_case, (s, args.cohort)) for s in seeds
        ]
        cases = build_cohort(jobs, args.cohort, args.workers)
        train, test = cases[: args.phantoms], cases[args.phantoms :]
        fitted = fit_models(train, args, args.work, "final")
        ev = Evaluation()
        evaluate(fitted, test, ev)
        method = (
            f"held-out phantoms (seeds {args.seed_base + args.phantoms}-"
            f"{args.seed_base + args.phantoms + args.held_out - 1}), never seen in training"
        )
        scores = metrics(ev, args.bootstrap, args.seed, method)
        n_pos = sum(c.residual for c in train)
        training = {
            "synthetic": True,
            "text": (
                f"{len(train)} synthetic post-operative phantoms "
                f"(rgcds.phantom.simulate_postop, size small, seeds {args.seed_base}-"
                f"{args.seed_base + args.phantoms - 1}), {n_pos} with residual tumour; "
                f"validated on {len(test)} held-out phantoms."
            ),
        }
    else:
        table = pd.read_csv(args.labels_csv)
        need = {"case_id", "ctv_path", "residual"}
        if not need <= set(table.columns):
            raise TrainingDataError(
                f"The labels CSV {args.labels_csv} lacks {sorted(need - set(table.columns))}."
            )
        base = str(args.labels_csv.resolve().parent)
        jobs = [(_site_case, (row, base, args.cohort)) for row in table.to_dict("records")]
        cases = build_cohort(jobs, args.cohort, args.workers)
        y = np.asarray([c.residual for c in cases])
        ev = Evaluation()
        order: list[Case] = []
        splitter = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
        for fold, (tr, te) in enumerate(splitter.split(np.zeros(len(y)), y)):
            fold_work = args.work / f"fold{fold}"
            fold_work.mkdir(parents=True, exist_ok=True)
            fold_fit = fit_models([cases[i] for i in tr], args, fold_work, f"fold{fold}")
            evaluate(fold_fit, [cases[i] for i in te], ev)
            order.extend(cases[i] for i in te)
            _log("fold_done", fold=fold)
        method = f"{args.folds}-fold cross-validation, pooled out-of-fold predictions"
        scores = metrics(ev, args.bootstrap, args.seed, method)
        fitted = fit_models(cases, args, args.work, "final")
        training = {
            "synthetic": False,
            "text": f"{len(cases)} cases from {args.labels_csv.name}, "
            f"{int(y.sum())} with residual tumour.",
        }
    training["seconds"] = round(time.time() - started, 1)
    cards = write_cards(fitted, scores, args.out, args, training)
    _summary(scores, args.work, training)
    _log("done", cards=len(cards), seconds=training["seconds"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
