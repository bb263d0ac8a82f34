"""The residual models themselves: the T1c logistic regression, the PET DenseNet (torch, imported
when trained) and its ONNX export, and the Cox models on the PET logit."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lifelines.exceptions import ConvergenceError
from lifelines.utils import concordance_index
from numpy.typing import NDArray
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from rgcds.analysis.predict import CoxWeights
from rgcds.analysis.prognosis import DAYS_PER_MONTH, PET_COVARIATES
from rgcds.analysis.residual import (
    logit,
)
from rgcds.training.residual.cohort import Case, _log


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
    from monai.networks.nets import DenseNet, DenseNet121  # type: ignore[attr-defined,unused-ignore]

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
    """Fit one Cox model (``rgcds.training.survival._fit`` with the given covariates only).

    A fit that does not converge is retried with penaliser 1 and 10; ``None`` if all fail or
    there are fewer than 2 events.
    """
    from rgcds.training.survival import _fit

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
