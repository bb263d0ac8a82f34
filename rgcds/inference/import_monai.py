"""``rgcds models import-monai-bundle``: a MONAI bundle to an rgcds model folder (issue 20).

The bundle is what the MONAI Model Zoo ships, e.g. ``brats_mri_segmentation``:
``configs/metadata.json``, ``configs/inference.json`` (or ``.yaml``) and ``models/model.pt``
(a state dict for ``network_def``) or ``models/model.ts`` (TorchScript). MONAI's own
``ConfigParser`` reads the configs and instantiates ``preprocessing``, ``inferer``,
``postprocessing`` and ``network_def``, so references (``@...``) and expressions (``$...``)
resolve exactly as ``python -m monai.bundle run`` resolves them. Each transform is then
translated into the card's ``monai`` section (:mod:`rgcds.inference.monai_card`), which
:mod:`rgcds.inference.monai_bundle` replays without PyTorch; a transform, option or inferer
rgcds cannot replay is refused with its name, and nothing is written. The network is exported
to ONNX at the inferer's ROI size and checked against PyTorch on seeded noise.

The licence and training data (``metadata.json`` may state them, the importer confirms), which
study sequence feeds each channel and what each output channel means must be known; the
import is refused without them. Needs PyTorch and MONAI at import time only (``.venv-nnunet``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rgcds.inference.card import (
    CARD_FILENAME,
    parse_card,
    sha256_file,
)
from rgcds.inference.errors import ModelCardError
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
from rgcds.inference.monai_translate import _inferer, _translate_post, _translate_pre
from rgcds.inference.onnx_export import OPSET, ImportRefusedError, export_checked

INPUT_NAME = "image"
OUTPUT_NAME = "pred"

#: Region tissues in painting order (nested BraTS regions: whole tumour, core, enhancing).
_PAINT_ORDER = ("oedema", "necrosis", "enhancing")
_REGION_WORDS = {"oedema": ("whole", "wt", "edema", "oedema"),
                 "necrosis": ("core", "tc"), "enhancing": ("enhanc", "et")}


@dataclass(frozen=True)
class BundleImportRequest:
    """What the person importing says about the bundle."""

    source: Path
    out: Path
    model_id: str
    license: str | None
    training_data: str | None
    channels: tuple[str, ...] | None = None
    labels: dict[int, str] = field(default_factory=dict)
    version: str | None = None
    name: str | None = None
    intended_use: str | None = None
    config: str | None = None
    tolerance: float = 1e-3
    skull_stripped: bool = True



def _channel_def(meta: dict[str, Any], kind: str, key: str) -> list[str] | None:
    spec = meta.get("network_data_format", {}).get(kind, {}).get(key, {})
    defs = spec.get("channel_def")
    if isinstance(defs, dict) and defs:
        return [str(defs[k]) for k in sorted(defs, key=lambda k: int(k))]
    return None


def _region_tissue(name: str) -> str | None:
    words = [w for w in name.lower().replace("-", " ").replace("_", " ").split() if w]
    for tissue, keys in _REGION_WORDS.items():
        if any(k in words or (len(k) > 3 and k in name.lower()) for k in keys):
            return tissue
    return None


def _outputs(names: list[str], regions: bool, given: dict[int, str]) -> dict[str, Any]:
    tissues = dict(given)
    first = 0 if regions else 1
    for index, name in enumerate(names):
        if index >= first and index not in tissues:
            guess = _region_tissue(name) if regions else _guess_tissue(name)
            if guess is not None:
                tissues[index] = guess
    missing = [i for i in range(first, len(names)) if i not in tissues]
    if missing:
        raise ImportRefusedError(
            f"The import needs the meaning of output channel(s) {missing} (named "
            f"{[names[i] for i in missing]}); give --labels CHANNEL=TISSUE,... with TISSUE one "
            "of " + ", ".join(TISSUES) + "."
        )
    if len(set(tissues.values())) != len(tissues):
        raise ImportRefusedError("Two output channels are given the same tissue.")
    if regions:
        order = sorted(tissues, key=lambda i: _PAINT_ORDER.index(tissues[i]))
        out: dict[str, Any] = {
            "tensor_name": OUTPUT_NAME, "mode": "sigmoid_regions", "logits": True,
            "regions": [{"index": i, "name": names[i], "label": TISSUES[tissues[i]][0]}
                        for i in order],
        }
    else:
        out = {"tensor_name": OUTPUT_NAME, "mode": "softmax", "logits": True,
               "classes": [{"index": 0, "label": 0, "name": "background"}] + [
                   {"index": i, "label": TISSUES[t][0], "name": t}
                   for i, t in sorted(tissues.items())]}
    out["segments"] = segment_definitions(tissues.values())
    return out


def _load_network(parser: Any, source: Path) -> tuple[Any, Path]:
    import torch

    ts, pt = source / "models" / "model.ts", source / "models" / "model.pt"
    if pt.is_file():
        try:
            network = parser.get_parsed_content("network_def")
        except Exception as exc:
            raise ImportRefusedError(f"network_def could not be built: {exc}") from exc
        state = torch.load(pt, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        network.load_state_dict(state)
        return network, pt
    if ts.is_file():
        return torch.jit.load(str(ts), map_location="cpu"), ts  # type: ignore[no-untyped-call, unused-ignore]
    raise ImportRefusedError(f"{source} has neither models/model.pt nor models/model.ts.")


def import_monai_bundle(request: BundleImportRequest) -> Path:
    """Translate the bundle, export the network and write the model folder; return it.

    Raises
    ------
    ImportRefusedError
        A required answer is missing, a transform or inferer rgcds cannot replay is used, or
        the ONNX export is not faithful.
    """
    source = request.source.resolve()
    configs = source / "configs"
    config = (configs / request.config) if request.config else next(
        (configs / n for n in ("inference.json", "inference.yaml", "inference.yml")
         if (configs / n).is_file()), configs / "inference.json")
    meta_file = configs / "metadata.json"
    for path in (config, meta_file):
        if not path.is_file():
            raise ImportRefusedError(f"{source} has no {path.relative_to(source)}; give a MONAI "
                                     "bundle folder (configs/, models/).")
    meta = json.loads(meta_file.read_text())
    licence = request.license or None
    training = request.training_data or None
    if not licence:
        raise ImportRefusedError("--license is required: say under which licence the weights "
                                 "may be used (check the bundle's LICENSE and docs).")
    if not training:
        raise ImportRefusedError("--training-data is required: say on which data the bundle was "
                                 "trained (its README/metadata 'data_source').")
    try:
        import torch  # noqa: F401
        from monai.bundle import ConfigParser  # type: ignore[attr-defined, unused-ignore]
    except ImportError as exc:
        raise ImportRefusedError(
            f"Importing a MONAI bundle needs PyTorch and MONAI ({exc}); run it in the venv that "
            "'make nnunet-extra' makes (the daemon needs neither)."
        ) from exc
    parser = ConfigParser()
    parser.read_meta(str(meta_file))
    parser.read_config(str(config))
    parser["bundle_root"] = str(source)
    for section in ("preprocessing", "inferer", "postprocessing"):
        if section not in parser:
            raise ImportRefusedError(f"{config.name} has no '{section}' section.")
    try:
        pre = parser.get_parsed_content("preprocessing", instantiate=True)
        inferer = parser.get_parsed_content("inferer", instantiate=True)
        postprocessing = parser.get_parsed_content("postprocessing", instantiate=True)
    except Exception as exc:
        raise ImportRefusedError(f"MONAI could not instantiate the bundle's transforms: "
                                 f"{exc}") from exc
    pre_steps, pre_names = _translate_pre(list(getattr(pre, "transforms", [pre])))
    post, nearest, threshold, post_names = _translate_post(
        list(getattr(postprocessing, "transforms", [postprocessing])))
    window = _inferer(inferer)

    names = _channel_def(meta, "inputs", "image")
    n_in = int(meta.get("network_data_format", {}).get("inputs", {}).get("image", {}).get(
        "num_channels", len(names or [])) or 0)
    if names is None:
        names = [f"channel {i}" for i in range(n_in)]
    channels = request.channels or _guess_channels(names)
    if channels is None or len(channels) != len(names) or any(c not in SEQUENCES
                                                               for c in channels):
        raise ImportRefusedError(
            f"The bundle's input channels are {names}; give --channels with one of "
            f"{', '.join(SEQUENCES)} for each, in the bundle's channel order."
        )
    out_names = _channel_def(meta, "outputs", "pred")
    if out_names is None:
        n_out = int(meta.get("network_data_format", {}).get("outputs", {}).get("pred", {}).get(
            "num_channels", 0) or 0)
        out_names = [f"channel {i}" for i in range(n_out)]
    if not out_names:
        raise ImportRefusedError("metadata.json does not say how many output channels the "
                                 "network has (network_data_format.outputs.pred).")
    regions = "threshold" in post
    if regions and "softmax" in post:
        raise ImportRefusedError("softmax followed by a threshold is not a label map rgcds "
                                 "can read.")
    outputs = _outputs(out_names, regions, request.labels)
    outputs["logits"] = False  # the card's activation is the bundle's own (monai section)

    network, weights_src = _load_network(parser, source)
    out = new_model_folder(request.out)
    target = out / "model.onnx"
    try:
        diff = export_checked(network, len(names), window["roi_size"], target,
                              input_name=INPUT_NAME, output_name=OUTPUT_NAME,
                              tolerance=request.tolerance, single_output=True)
    except ImportRefusedError:
        shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.copytree(configs, out / "bundle_configs")
    pixdim = next((s["pixdim"] for s in pre_steps if s["transform"] == "Spacingd"), [1.0] * 3)
    bundle_name = str(meta.get("name") or source.name)
    bundle_version = str(meta.get("version") or "unknown")
    card: dict[str, Any] = {
        "id": request.model_id,
        "version": request.version or bundle_version,
        "name": request.name or f"MONAI bundle {bundle_name} {bundle_version}",
        "task": "segmentation",
        "description": f"Imported with rgcds models import-monai-bundle from {source.name} "
                       f"({weights_src.name}); its transforms replayed by "
                       "rgcds.inference.monai_bundle. ONNX Runtime vs PyTorch max |difference| "
                       f"{diff:.2e}.",
        "research_use_only": True,
        "intended_use": request.intended_use or DEFAULT_INTENDED_USE,
        "training_data": training,
        "license": licence,
        "authors": [str(meta["authors"])] if meta.get("authors") else [],
        "weights": {"file": target.name, "format": "onnx", "sha256": sha256_file(target),
                    "opset": OPSET},
        "inputs": {"tensor_name": INPUT_NAME, "channels": list(channels), "axis_order": "CZYX",
                   "spacing_mm": [min(pixdim)] * 3, "orientation": "LPS",
                   "normalisation": {"method": "none"}, "patch_size": window["roi_size"]},
        "outputs": outputs,
        "monai": {
            "bundle_name": bundle_name, "bundle_version": bundle_version,
            "channel_names": names, "output_names": out_names,
            "preprocessing": pre_steps, **window, "postprocessing": post,
            "invert_nearest": nearest, "threshold": threshold,
            "transforms_read": pre_names + post_names,
            "skull_stripped": request.skull_stripped,
            "source_sha256": sha256_file(weights_src),
        },
    }
    try:
        parse_card(card, out / CARD_FILENAME, out)
    except ModelCardError:
        shutil.rmtree(out, ignore_errors=True)
        raise
    write_card_yaml(out, card)
    return out


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rgcds models import-monai-bundle`` (and of ``python -m`` this module)."""
    parser.add_argument("source", type=Path, metavar="DIR",
                        help="the bundle folder (configs/metadata.json, configs/inference.json, "
                             "models/model.pt or model.ts)")
    parser.add_argument("--id", dest="model_id", required=True, help="the new model's id")
    parser.add_argument("--out", type=Path, default=None, metavar="PATH",
                        help="the model folder to write (default: MODELS_ROOT/ID)")
    parser.add_argument("--license", default=None, help="the licence of the weights (required)")
    parser.add_argument("--training-data", default=None,
                        help="what the bundle was trained on (required)")
    parser.add_argument("--channels", default=None, metavar="SEQ,...",
                        help="the study sequence for each input channel in order, from T1, "
                             "T1c, T2, FLAIR (default: read from metadata.json's channel_def)")
    parser.add_argument("--labels", default=None, metavar="CHANNEL=TISSUE,...",
                        help="what each output channel is: necrosis, oedema or enhancing (for "
                             "sigmoid regions: the whole tumour is oedema, the core necrosis)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="the config under configs/ (default: inference.json)")
    parser.add_argument("--version", dest="model_version", default=None,
                        help="the card's version (default: the bundle's)")
    parser.add_argument("--name", default=None)
    parser.add_argument("--intended-use", default=None)
    parser.add_argument("--full-head", action="store_true",
                        help="the model was trained on images with the skull")


def run_import(args: argparse.Namespace, models_root: Path) -> int:
    """Run the import from parsed options; print where the model went."""
    from rgcds.inference.card import load_card

    request = BundleImportRequest(
        source=args.source, out=args.out or models_root / args.model_id,
        model_id=args.model_id, license=args.license, training_data=args.training_data,
        channels=tuple(c.strip() for c in args.channels.split(",")) if args.channels else None,
        labels=parse_label_map(args.labels), version=args.model_version, name=args.name,
        intended_use=args.intended_use, config=args.config, skull_stripped=not args.full_head,
    )
    folder = import_monai_bundle(request)
    card = load_card(folder)
    if getattr(args, "json", False):
        print(json.dumps({"id": card.id, "folder": str(folder), "validated": card.validated}))
    else:
        print(f"Imported {card.id} {card.version} into {folder} (NOT VALIDATED by rgcds, "
              "research use only).")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rgcds.inference.import_monai`` (in the venv with PyTorch and MONAI)."""
    return run_module(argv, prog="python -m rgcds.inference.import_monai",
                      description=__doc__.splitlines()[0], command="import-monai-bundle",
                      add_arguments=add_import_arguments, run=run_import)


__all__ = ["BundleImportRequest", "add_import_arguments", "import_monai_bundle", "main",
           "run_import"]

if __name__ == "__main__":
    raise SystemExit(main())
