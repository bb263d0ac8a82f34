"""The residual models' cards and the run's JSON and Markdown summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rgcds.analysis.cards import sha256_of, write_card
from rgcds.analysis.predict import TRUSTED_TYPES
from rgcds.analysis.prognosis import ENDPOINT_MODELS
from rgcds.analysis.residual import (
    PET_BOX,
    PET_FEATURE,
    PET_GRID_MM,
    PET_MODEL_ID,
    T1C_MODEL_ID,
    T1C_RADIOMICS,
)
from rgcds.analysis.validation import TrainingDataError
from rgcds.training.residual.cohort import SITE_USE, STUDY, SYNTHETIC_USE, VERSION
from rgcds.training.residual.evaluation import Fitted
from rgcds.training.residual.models import _cox_weights


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
