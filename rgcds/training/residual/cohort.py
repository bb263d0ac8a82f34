"""The residual models' cohort: the study text, one case a ``.npz`` (a restart resumes), phantom
and site cases, and the process pool that builds them."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rgcds.analysis.residual import (
    residual_inputs,
)
from rgcds.analysis.validation import TrainingDataError

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
