"""ONNX export, the model card, and validation on held-out cases."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from rgcds.training.segmentation.data import CARD_CHANNELS, PATCH, SPACING_MM, list_cases, read_case
from rgcds.training.segmentation.kinds import KINDS, SegmentationKind
from rgcds.training.segmentation.loop import _Log
from rgcds.training.segmentation.network import build_unet


def export_onnx(model: Any, path: Path, patch: int = PATCH) -> None:
    """Export to ONNX, opset 17, dynamic batch and spatial axes."""
    import torch

    model.eval()
    dummy = torch.zeros(1, 4, patch, patch, patch)
    axes = {0: "batch", 2: "z", 3: "y", 4: "x"}
    tmp = path.with_suffix(".onnx.tmp")
    torch.onnx.export(
        model, (dummy,), str(tmp), input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": axes, "logits": axes}, opset_version=17, dynamo=False,
    )
    import onnx

    proto = onnx.load(str(tmp))
    onnx.checker.check_model(proto)
    tmp.replace(path)


def _generator_version() -> str:
    from rgcds.phantom.synth import GENERATOR_VERSION

    return GENERATOR_VERSION


def card_dict(sha256: str, args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
    """The card of the model of ``args.kind`` (validation filled in later)."""
    kind: SegmentationKind = KINDS[getattr(args, "kind", "preop")]
    return {
        "id": kind.model_id,
        "version": "1.0.0",
        "name": kind.title,
        "task": "segmentation",
        "description": (
            f"A small 3D U-Net (base {args.base} channels, {args.levels} levels, instance "
            f"norm) that segments {kind.what} from T1, T1c, T2 and "
            "FLAIR at 2 mm isotropic. TRAINED ON SYNTHETIC DATA ONLY (rgcds.phantom), for "
            "demonstration and testing of the rgcds pipeline; NOT FOR PATIENTS."
        ),
        "research_use_only": True,
        "intended_use": (
            "Demonstration and software testing of rgcds on synthetic phantom studies. Not a "
            "medical device; not validated on patient data; must not be used for diagnosis, "
            "treatment planning or any decision about a patient."
        ),
        "training_data": (
            f"{extra['n_train']} synthetic {kind.subjects} phantoms from rgcds.phantom."
            f"{kind.simulator} (size 'small', seeds 0..{extra['n_train'] - 1}), written to "
            "and read from the BraTS layout; augmented with rotations, scaling, flips, bias "
            "field, gamma, intensity scale/shift, noise, blur, thick-slice resampling and "
            "random skull stripping. No patient data."
            + (f" Generator {_generator_version()}: every sample's intensities drawn at random "
               "per label and per channel (rgcds.phantom.synth)." if kind.simulator
               == "synth_sample" else "")
        ),
        "authors": ["rgcds developers"],
        "license": "Apache-2.0",
        "weights": {"file": "model.onnx", "format": "onnx", "sha256": sha256, "opset": 17},
        "inputs": {
            "tensor_name": "image",
            "channels": list(CARD_CHANNELS),
            "axis_order": "CZYX",
            "spacing_mm": [SPACING_MM] * 3,
            "orientation": "LPS",
            "normalisation": {"method": "zscore", "mask": "brain",
                              "outside": getattr(args, "outside", "keep")},
            "patch_size": [args.patch] * 3,
            "divisible_by": 2 ** (args.levels - 1),
        },
        "outputs": {
            "tensor_name": "logits",
            "mode": "softmax",
            "logits": True,
            "classes": [
                {"index": i, "label": i, "name": name}
                for i, name in enumerate(("background", *kind.classes))
            ],
            "segments": kind.segments,
        },
    }



def ship(args: argparse.Namespace, checkpoint: Path, log: _Log) -> Path:
    """Export the checkpoint to ONNX in the model folder and write its card."""
    import torch

    from rgcds.inference.card import sha256_file

    saved = torch.load(checkpoint, weights_only=False)
    model = build_unet(base=saved["args"]["base"], levels=saved["args"]["levels"])
    model.load_state_dict(saved["model"])
    args.base, args.levels = saved["args"]["base"], saved["args"]["levels"]
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / "model.onnx"
    args.patch = saved["args"].get("patch", args.patch)
    export_onnx(model, onnx_path, args.patch)
    card = card_dict(sha256_file(onnx_path), args,
                     {"n_train": len(list_cases(args.data_dir))})
    card["training_data"] += (
        f" Trained for {saved['state']['iteration']} iterations "
        f"({saved['state']['elapsed'] / 60:.1f} min on {args.threads} CPU threads)."
    )
    (args.out / "model.yaml").write_text(yaml.safe_dump(card, sort_keys=False, width=100))
    log("exported", onnx=str(onnx_path), mbytes=round(onnx_path.stat().st_size / 1e6, 2))
    return Path(onnx_path)


def evaluate(args: argparse.Namespace, log: _Log) -> dict[str, float]:
    """Dice on the held-out cases through rgcds.inference (ONNX Runtime); into the card."""
    from rgcds.config import ProcessingSettings
    from rgcds.inference import load_card, segment, select_backend
    from rgcds.pipeline.stages import clean_labels

    margin = ProcessingSettings().tumour_brain_margin_mm

    kind: SegmentationKind = KINDS[args.kind]
    # The held-out cases may come from another generator (--eval-kind).
    held_out: SegmentationKind = KINDS[getattr(args, "eval_kind", None) or args.kind]
    card = load_card(args.out)
    backend = select_backend(card, "onnxruntime", threads=args.threads)
    folders = list_cases(args.test_dir)
    scores = []
    for folder in folders:
        case = read_case(folder)
        labels = segment(case.images, card, backend, brain_mask=case.brain, overlap=0.5)
        # as the pipeline's segmentation stage cleans them (brain + margin, small components)
        labels = clean_labels(labels, case.brain, (SPACING_MM,) * 3, margin)[0]
        score = kind.score(labels, case.labels)
        scores.append(score)
        log("test_case", case=case.name, **{k: round(v, 4) for k, v in score.items()})
    metrics = kind.summarise(scores)
    log("test_summary", n=len(scores), **metrics)
    data = yaml.safe_load((args.out / "model.yaml").read_text())
    seeds = sorted(int(f.name.split("-")[-1]) for f in folders if f.name.startswith("phantom-"))
    data["validation"] = {
        "dataset": (
            f"{len(scores)} held-out synthetic phantoms (rgcds.phantom.{held_out.simulator}, "
            "size "
            f"'small', seeds {seeds[0] if seeds else '?'}..{seeds[-1] if seeds else '?'}), "
            "never seen in training or model selection"
        ),
        "n_cases": len(scores),
        "metrics": metrics,
        "notes": kind.notes,
    }
    (args.out / "model.yaml").write_text(yaml.safe_dump(data, sort_keys=False, width=100))
    load_card(args.out)  # the written card must pass its own schema
    return metrics
