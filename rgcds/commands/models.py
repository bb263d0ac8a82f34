"""``rgcds models list | verify | build-engine | import-nnunet | import-monai-bundle``.

``import-nnunet`` turns an nnU-Net v2 results folder into a model folder
(:mod:`rgcds.inference.import_nnunet`), ``import-monai-bundle`` a MONAI bundle
(:mod:`rgcds.inference.import_monai`); they need PyTorch and nnunetv2 or MONAI in the
environment that runs them (``make nnunet-extra`` makes one, ``.venv-nnunet``), the daemon
needs none of them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rgcds.commands import add_config_argument
from rgcds.logging import configure_logging

NAME = "models"
HELP = ("List and verify the models (card schema, sha256), build TensorRT engines and import "
        "nnU-Net v2 models and MONAI bundles.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``models`` subcommands and their options."""
    add_config_argument(parser, required=False)
    parser.add_argument("--models-root", type=Path, default=None, metavar="PATH",
                        help="folder of model folders (default: [inference] models_root, "
                             "else models/ of the installation)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the models whose cards are valid")
    sub.add_parser("verify", help="check every card's schema and weights' sha256; exit 1 "
                                  "when any fails")
    build = sub.add_parser("build-engine", help="build and cache the TensorRT engine of a model "
                                                "(needs TensorRT, pycuda and an NVIDIA GPU)")
    build.add_argument("model_id", help="the model's id")
    build.add_argument("--engine-cache", type=Path, default=None, metavar="PATH",
                       help="engine cache folder (default: [inference] engine_cache, else "
                            "~/.cache/rgcds/engines)")
    build.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    from rgcds.inference.import_nnunet import add_import_arguments

    add_import_arguments(sub.add_parser(
        "import-nnunet",
        help="export an nnU-Net v2 results folder (dataset.json, plans.json, "
             "fold_*/checkpoint_final.pth) to an rgcds model folder; needs PyTorch and nnunetv2",
    ))
    from rgcds.inference.import_monai import add_import_arguments as add_bundle_arguments

    add_bundle_arguments(sub.add_parser(
        "import-monai-bundle",
        help="translate a MONAI bundle (configs/inference.json, models/model.pt or model.ts) "
             "into an rgcds model folder, refusing transforms rgcds cannot run; needs PyTorch "
             "and MONAI",
    ))


def _inference_paths(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    models_root: Path | None = args.models_root
    engine_cache: Path | None = getattr(args, "engine_cache", None)
    if getattr(args, "config", None) is not None:
        from rgcds.config import load_settings

        settings = load_settings(args.config)
        section: Any = getattr(settings, "inference", None)
        if section is not None:
            models_root = models_root or section.models_root
            engine_cache = engine_cache or section.engine_cache
    return models_root, engine_cache


def run(args: argparse.Namespace) -> int:
    """Run ``models list``, ``models verify`` or ``models build-engine``."""
    from rgcds.inference import ModelRegistry

    configure_logging(getattr(args, "log_level", None) or "WARNING",
                      getattr(args, "log_format", None) or "auto")
    models_root, engine_cache = _inference_paths(args)
    registry = ModelRegistry(models_root)
    if args.models_action == "import-nnunet":
        return _import_nnunet(args, registry.root)
    if args.models_action == "import-monai-bundle":
        from rgcds.inference.import_monai import run_import

        return run_import(args, registry.root)
    if args.models_action == "list":
        cards = registry.list()
        if args.json:
            print(json.dumps([
                {"id": c.id, "version": c.version, "task": c.task.value,
                 "validated": c.validated, "research_use_only": c.research_use_only,
                 "path": str(c.path),
                 "metrics": c.validation.metrics if c.validation else {}}
                for c in cards
            ]))
        else:
            if not cards:
                print(f"No valid model cards in {registry.root}.")
            for c in cards:
                flags = ["validated" if c.validated else "NOT VALIDATED"]
                if c.research_use_only:
                    flags.append("research use only")
                print(f"{c.id} {c.version} [{c.task.value}] ({', '.join(flags)}) {c.path}")
        return 0
    if args.models_action == "verify":
        results = registry.verify()
        if args.json:
            print(json.dumps([
                {"id": r.model_id, "folder": str(r.folder), "ok": r.ok,
                 "validated": r.validated, "detail": r.message} for r in results
            ]))
        else:
            if not results:
                print(f"No model folders in {registry.root}.")
            for r in results:
                print(f"{'OK  ' if r.ok else 'FAIL'} {r.model_id}: {r.message}")
        return 0 if all(r.ok for r in results) else 1
    # build-engine
    from rgcds.inference.tensorrt import build_engine

    card = registry.get(args.model_id)
    # An imported nnU-Net model has one ONNX file per fold: one engine each.
    cards = [card] if card.nnunet is None else [
        card.model_copy(update={"weights": fold.weights}) for fold in card.nnunet.folds
    ]
    paths = [build_engine(c, engine_cache, precision=args.precision, force=args.force)
             for c in cards]
    if args.json:
        print(json.dumps({"id": card.id, "engine": str(paths[0]),
                          "engines": [str(p) for p in paths]}))
    else:
        for path in paths:
            print(f"TensorRT engine for {card.id} {card.version}: {path}")
    return 0


def _import_nnunet(args: argparse.Namespace, models_root: Path) -> int:
    from rgcds.inference.import_nnunet import run_import

    return run_import(args, models_root)
