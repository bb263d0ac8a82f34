"""``rgcds models import-nnunet``: an nnU-Net v2 results folder to an rgcds model folder.

The folder is what ``nnUNetv2_train`` leaves, e.g.
``nnUNet_results/Dataset137_BraTS2021/nnUNetTrainer__nnUNetPlans__3d_fullres``: ``dataset.json``,
``plans.json`` and ``fold_*/checkpoint_final.pth``. nnunetv2's own
``nnUNetPredictor.initialize_from_trained_model_folder`` rebuilds the network from the plans
and loads each fold's weights; each fold is exported to ONNX (opset 17, batch axis dynamic,
the plans' patch size), checked with the ONNX checker and run with ONNX Runtime against
PyTorch on seeded noise. The card is filled from the folder (channels, labels or regions,
target spacing, transposes, normalisation schemes and intensity statistics, resampling,
patch size, mirror axes, folds, trainer and plans identifiers); what the folder cannot say
(licence, training data, which study sequence feeds each channel, what each label means)
the person importing must give, and the import is refused without it.

This needs PyTorch and nnunetv2 (the ``train`` extra and ``pip install nnunetv2``) at import
time only; the daemon runs the exported model with :mod:`rgcds.inference.nnunet` and needs
neither.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rgcds.inference.card import (
    CARD_FILENAME,
    parse_card,
    sha256_file,
)
from rgcds.inference.import_common import (
    DEFAULT_INTENDED_USE,
    SEQUENCES,
    TISSUES,
    _guess_channels,
    _guess_tissue,
    new_model_folder,
    parse_label_map,
    run_module,
    segment_definitions,
    write_card_yaml,
)
from rgcds.inference.onnx_export import OPSET, ImportRefusedError, export_checked

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class ImportRequest:
    """What the person importing says about the model (the folder cannot say it)."""

    source: Path
    out: Path
    model_id: str
    folds: tuple[str, ...] | None
    license: str | None
    training_data: str | None
    channels: tuple[str, ...] | None = None
    labels: dict[int, str] = field(default_factory=dict)
    version: str = "1.0.0"
    name: str | None = None
    intended_use: str | None = None
    checkpoint: str = "checkpoint_final.pth"
    tolerance: float = 1e-3
    skull_stripped: bool = True


def _painted_tissues(dataset: dict[str, Any], request: ImportRequest) -> dict[int, str]:
    """nnU-Net label value -> rgcds tissue, from --labels or, for plain labels, the names."""
    labels: dict[str, Any] = dataset["labels"]
    regions = "regions_class_order" in dataset
    values = sorted(dataset["regions_class_order"]) if regions else sorted(
        int(v) for v in labels.values() if int(v) != 0
    )
    tissues = dict(request.labels)
    if not regions:
        for name, value in labels.items():
            if int(value) != 0 and int(value) not in tissues:
                guess = _guess_tissue(name)
                if guess is not None:
                    tissues[int(value)] = guess
    missing = [v for v in values if v not in tissues]
    if missing:
        why = ("a region-based model paints label values whose meaning dataset.json does not "
               "state" if regions else "their names in dataset.json are not recognised")
        raise ImportRefusedError(
            f"The import needs the meaning of nnU-Net label value(s) {missing} ({why}); give "
            "--labels VALUE=TISSUE,... with TISSUE one of " + ", ".join(TISSUES) + "."
        )
    extra = sorted(set(tissues) - set(values))
    if extra:
        raise ImportRefusedError(f"--labels names value(s) {extra}, which the model never paints.")
    if len(set(tissues.values())) != len(tissues):
        raise ImportRefusedError("--labels gives two label values the same tissue.")
    return {v: tissues[v] for v in values}


def _validation(folder: Path, folds: list[str], tissues: dict[int, str],
                regions: bool) -> dict[str, Any] | None:
    """Mean Dice per label from each fold's ``validation/summary.json`` (nnU-Net writes it)."""
    per: dict[str, list[float]] = {}
    n_cases = 0
    for fold in folds:
        summary = folder / f"fold_{fold}" / "validation" / "summary.json"
        if not summary.is_file():
            return None
        data = json.loads(summary.read_text())
        n_cases += len(data.get("metric_per_case", []))
        for key, metrics in data.get("mean", {}).items():
            dice = metrics.get("Dice")
            if dice is not None:
                per.setdefault(str(key), []).append(float(dice))
    if not per or n_cases == 0:
        return None
    metrics = {}
    for key, values in sorted(per.items()):
        name = key.strip("()").replace(", ", "_").replace(",", "_")
        if not regions and name.isdigit() and int(name) in tissues:
            name = tissues[int(name)]
        metrics[f"dice_{name}"] = round(float(np.mean(values)), 4)
    return {
        "dataset": f"nnU-Net's own cross-validation of folds {', '.join(folds)} (the "
                   "validation/summary.json files of the imported folder)",
        "n_cases": n_cases,
        "metrics": metrics,
        "notes": "Figures as nnU-Net computed them on the training institution's data; not "
                 "measured by rgcds.",
    }


def import_nnunet(request: ImportRequest) -> Path:
    """Export the folds and write the model folder; return it.

    Raises
    ------
    ImportRefusedError
        A required answer is missing, the folder is incomplete, a transform or scheme rgcds
        cannot run is used, or the ONNX export is not faithful.
    """
    source = request.source.resolve()
    for name in ("dataset.json", "plans.json"):
        if not (source / name).is_file():
            raise ImportRefusedError(
                f"{source} has no {name}; give the nnU-Net results folder of one "
                "trainer/plans/configuration (the one holding fold_0, fold_1, ...)."
            )
    if not request.license:
        raise ImportRefusedError(
            "--license is required: say under which licence the weights may be used (the "
            "nnU-Net folder does not record it)."
        )
    if not request.training_data:
        raise ImportRefusedError(
            "--training-data is required: say on which data (institution, cohort, number of "
            "cases, years) the model was trained; the card must state it."
        )
    dataset = json.loads((source / "dataset.json").read_text())
    plans = json.loads((source / "plans.json").read_text())
    names = [str(dataset["channel_names"][k]) for k in
             sorted(dataset["channel_names"], key=int)]
    channels = request.channels or _guess_channels(names)
    if channels is None:
        raise ImportRefusedError(
            f"The model's channels are named {names}; rgcds cannot tell which study sequence "
            "feeds each one. Give --channels, e.g. --channels T1,T1c,T2,FLAIR, in the model's "
            "channel order."
        )
    if len(channels) != len(names) or any(c not in SEQUENCES for c in channels):
        raise ImportRefusedError(
            f"--channels must name {len(names)} sequence(s) from {', '.join(SEQUENCES)} in "
            f"the model's channel order ({', '.join(names)}), got {', '.join(channels)}."
        )
    folds = list(request.folds) if request.folds else sorted(
        p.name.removeprefix("fold_") for p in source.glob("fold_*")
        if (p / request.checkpoint).is_file()
    )
    if not folds:
        raise ImportRefusedError(f"{source} has no fold_*/{request.checkpoint}.")
    for fold in folds:
        if not (source / f"fold_{fold}" / request.checkpoint).is_file():
            raise ImportRefusedError(f"{source} has no fold_{fold}/{request.checkpoint}.")

    try:
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    except ImportError as exc:
        raise ImportRefusedError(
            f"Importing an nnU-Net model needs PyTorch and nnunetv2 ({exc}); install the "
            "'train' extra and nnunetv2 in the environment that runs the import (the daemon "
            "needs neither)."
        ) from exc

    predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=True,
                                allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(
        str(source), tuple(int(f) if f != "all" else f for f in folds), request.checkpoint
    )
    config = predictor.configuration_manager
    plans_manager = predictor.plans_manager
    label_manager = predictor.label_manager
    schemes = list(config.normalization_schemes)
    unsupported = [s for s in schemes if s not in (
        "ZScoreNormalization", "CTNormalization", "NoNormalization", "RescaleTo01Normalization")]
    if unsupported:
        raise ImportRefusedError(f"rgcds cannot run nnU-Net normalisation {unsupported}.")
    if len(config.patch_size) != 3:
        raise ImportRefusedError(
            "The configuration is 2D; rgcds imports 3D nnU-Net configurations only "
            "(3d_fullres, 3d_lowres without cascade)."
        )
    if config.previous_stage_name is not None:
        raise ImportRefusedError("Cascade stages (3d_cascade_fullres) are not supported.")
    data_kwargs = dict(config.configuration.get("resampling_fn_data_kwargs", {}))
    prob_kwargs = dict(config.configuration.get("resampling_fn_probabilities_kwargs", {}))
    for fn_key in ("resampling_fn_data", "resampling_fn_probabilities"):
        if config.configuration.get(fn_key) != "resample_data_or_seg_to_shape":
            raise ImportRefusedError(
                f"The plans use {fn_key} = {config.configuration.get(fn_key)!r}; rgcds "
                "reproduces nnU-Net's default resample_data_or_seg_to_shape only."
            )
    tissues = _painted_tissues(dataset, request)
    regions = label_manager.has_regions

    out = new_model_folder(request.out)
    patch = tuple(int(p) for p in config.patch_size)
    n_in = len(names)
    fold_entries = []
    diffs = {}
    for index, (fold, params) in enumerate(zip(folds, predictor.list_of_parameters, strict=True)):
        target = out / f"fold_{fold}.onnx"
        predictor.network.load_state_dict(params)
        diffs[fold] = export_checked(predictor.network, n_in, patch, target,
                                     input_name=INPUT_NAME, output_name=OUTPUT_NAME,
                                     tolerance=request.tolerance, seed=index)
        fold_entries.append({
            "fold": fold,
            "weights": {"file": target.name, "format": "onnx", "sha256": sha256_file(target),
                        "opset": OPSET},
            "source_sha256": sha256_file(source / f"fold_{fold}" / request.checkpoint),
        })
    for name in ("dataset.json", "plans.json"):
        shutil.copyfile(source / name, out / name)

    if regions:
        order = list(dataset["regions_class_order"])
        region_names = [k for k, v in dataset["labels"].items()
                        if isinstance(v, list | tuple) or int(v) != 0]
        outputs: dict[str, Any] = {
            "tensor_name": OUTPUT_NAME, "mode": "sigmoid_regions", "logits": True,
            "regions": [{"index": i, "name": str(region_names[i]),
                         "label": TISSUES[tissues[v]][0]} for i, v in enumerate(order)],
        }
    else:
        outputs = {
            "tensor_name": OUTPUT_NAME, "mode": "softmax", "logits": True,
            "classes": [{"index": 0, "label": 0, "name": "background"}] + [
                {"index": v, "label": TISSUES[t][0], "name": t} for v, t in tissues.items()
            ],
        }
    outputs["segments"] = segment_definitions(tissues.values())
    fg = plans.get("foreground_intensity_properties_per_channel", {})
    intensity = [
        {k: float(fg[str(c)][k]) for k in ("mean", "std", "percentile_00_5", "percentile_99_5")}
        for c in range(n_in)
    ] if all(str(c) in fg for c in range(n_in)) else []
    spacing = [float(s) for s in config.spacing]
    mirror = list(predictor.allowed_mirroring_axes or [])
    first = torch.load(source / f"fold_{folds[0]}" / request.checkpoint,
                       map_location="cpu", weights_only=False)
    configuration_name = str(first["init_args"]["configuration"])
    del first
    card: dict[str, Any] = {
        "id": request.model_id,
        "version": request.version,
        "name": request.name or f"nnU-Net v2 {dataset.get('name', source.parent.name)} "
                                f"({predictor.trainer_name}, {configuration_name})",
        "task": "segmentation",
        "description": f"Imported with rgcds models import-nnunet from {source.name}: nnU-Net v2 "
                       f"{predictor.trainer_name}, plans {plans_manager.plans_name}, folds "
                       f"{', '.join(folds)}; run with nnU-Net's preprocessing reproduced "
                       "(rgcds.inference.nnunet). ONNX Runtime vs PyTorch max |difference| "
                       + ", ".join(f"fold {f}: {d:.2e}" for f, d in diffs.items()) + ".",
        "research_use_only": True,
        "intended_use": request.intended_use or DEFAULT_INTENDED_USE,
        "training_data": request.training_data,
        "license": request.license,
        "weights": fold_entries[0]["weights"],
        "inputs": {
            "tensor_name": INPUT_NAME,
            "channels": list(channels),
            "axis_order": "CZYX",
            "spacing_mm": [min(spacing)] * 3,
            "orientation": "LPS",
            "normalisation": {"method": "none"},
            "patch_size": list(patch),
        },
        "outputs": outputs,
        "nnunet": {
            "dataset_name": str(plans.get("dataset_name") or dataset.get("name")
                                or source.parent.name),
            "trainer": predictor.trainer_name,
            "plans_identifier": plans_manager.plans_name,
            "configuration": configuration_name,
            "channel_names": names,
            "labels": {str(k): v for k, v in dataset["labels"].items()},
            "transpose_forward": list(plans_manager.transpose_forward),
            "transpose_backward": list(plans_manager.transpose_backward),
            "spacing": spacing,
            "patch_size": list(patch),
            "normalization_schemes": schemes,
            "use_mask_for_norm": [bool(b) for b in config.use_mask_for_norm],
            "intensity_properties": intensity,
            "resampling_data": {k: data_kwargs[k] for k in ("order", "order_z", "force_separate_z")
                                if k in data_kwargs},
            "resampling_probabilities": {k: prob_kwargs[k] for k in
                                         ("order", "order_z", "force_separate_z")
                                         if k in prob_kwargs},
            "tile_step_size": 0.5,
            "mirror_axes": mirror,
            "folds": fold_entries,
            "skull_stripped": request.skull_stripped,
        },
    }
    validation = _validation(source, folds, tissues, regions)
    if validation is not None:
        card["validation"] = validation
    parse_card(card, out / CARD_FILENAME, out)  # refuse what the schema refuses
    write_card_yaml(out, card)
    return out


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rgcds models import-nnunet`` (and of ``python -m`` this module)."""
    parser.add_argument("source", type=Path, metavar="DIR",
                        help="the trainer__plans__configuration folder nnUNetv2_train wrote")
    parser.add_argument("--id", dest="model_id", required=True, help="the new model's id")
    parser.add_argument("--fold", dest="folds", action="append", metavar="F",
                        help="a fold to import (repeat for an ensemble; 'all' for the model "
                             "trained on all cases); default: every fold with a checkpoint")
    parser.add_argument("--out", type=Path, default=None, metavar="PATH",
                        help="the model folder to write (default: MODELS_ROOT/ID)")
    parser.add_argument("--license", default=None, help="the licence of the weights (required)")
    parser.add_argument("--training-data", default=None,
                        help="what the model was trained on: cohort, institution, cases "
                             "(required)")
    parser.add_argument("--channels", default=None, metavar="SEQ,...",
                        help="the study sequence for each model channel in order, from T1, "
                             "T1c, T2, FLAIR (default: read from dataset.json's channel names)")
    parser.add_argument("--labels", default=None, metavar="VALUE=TISSUE,...",
                        help="what each nnU-Net label value is: necrosis, oedema or enhancing "
                             "(required for region-based models and unrecognised label names)")
    parser.add_argument("--version", dest="model_version", default="1.0.0")
    parser.add_argument("--name", default=None, help="a human-readable name")
    parser.add_argument("--intended-use", default=None)
    parser.add_argument("--full-head", action="store_true",
                        help="the model was trained on images with the skull (rgcds then does "
                             "not zero the channels outside the brain)")
    parser.add_argument("--checkpoint", default="checkpoint_final.pth",
                        help="checkpoint file name in each fold folder")


def run_import(args: argparse.Namespace, models_root: Path) -> int:
    """Run the import from parsed options; print where the model went."""
    from rgcds.inference.card import load_card

    channels = tuple(c.strip() for c in args.channels.split(",")) if args.channels else None
    request = ImportRequest(
        source=args.source, out=args.out or models_root / args.model_id,
        model_id=args.model_id, folds=tuple(args.folds) if args.folds else None,
        license=args.license, training_data=args.training_data, channels=channels,
        labels=parse_label_map(args.labels), version=args.model_version, name=args.name,
        intended_use=args.intended_use, checkpoint=args.checkpoint,
        skull_stripped=not args.full_head,
    )
    folder = import_nnunet(request)
    card = load_card(folder)
    if getattr(args, "json", False):
        print(json.dumps({"id": card.id, "folder": str(folder), "validated": card.validated,
                          "folds": [f.fold for f in card.nnunet.folds] if card.nnunet else []}))
    else:
        state = "validated" if card.validated else "NOT VALIDATED (no validation/summary.json)"
        print(f"Imported {card.id} {card.version} into {folder} ({state}, research use only).")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rgcds.inference.import_nnunet``: the import without the rest of rgcds' CLI.

    For an environment that has PyTorch and nnunetv2 but not every rgcds dependency (the
    ``.venv-nnunet`` that ``make nnunet-extra`` makes, with rgcds on ``PYTHONPATH``).
    """
    return run_module(argv, prog="python -m rgcds.inference.import_nnunet",
                      description=__doc__.splitlines()[0], command="import-nnunet",
                      add_arguments=add_import_arguments, run=run_import,
                      json_help="print the result as JSON")


__all__ = [
    "ImportRefusedError",
    "ImportRequest",
    "add_import_arguments",
    "import_nnunet",
    "main",
    "parse_label_map",
    "run_import",
]

if __name__ == "__main__":
    raise SystemExit(main())
