"""The training loop: phantom generation, checkpoints, progress log."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from rgcds.training.segmentation.data import (
    DEV_SEED_BASE,
    TEST_SEED_BASE,
    Case,
    list_cases,
    read_case,
    write_phantom_case,
)
from rgcds.training.segmentation.evaluation import torch_predict
from rgcds.training.segmentation.kinds import KINDS, SegmentationKind
from rgcds.training.segmentation.network import build_unet
from rgcds.training.segmentation.sampling import PatchSampler


class _Log:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, event: str, **fields: Any) -> None:
        record = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                  "event": event, **fields}
        line = json.dumps(record)
        with self.path.open("a") as handle:
            handle.write(line + "\n")
        print(line, flush=True)


def _dice_loss(logits: Any, target: Any, n_classes: int) -> Any:
    import torch

    probs = torch.softmax(logits, dim=1)
    onehot = torch.nn.functional.one_hot(target, n_classes).permute(0, 4, 1, 2, 3).float()
    dims = (0, 2, 3, 4)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + 1e-5) / (denom + 1e-5)
    return 1.0 - dice[1:].mean()


def _load_cases(folders: list[Path], log: _Log, what: str) -> list[Case]:
    cases = []
    started = time.time()
    for folder in folders:
        cases.append(read_case(folder))
    log("cases_loaded", what=what, n=len(cases), seconds=round(time.time() - started, 1))
    return cases


def generate(args: argparse.Namespace, log: _Log) -> None:
    """Write the requested phantoms into the BraTS layout (skipping those already there)."""
    for what, root, seeds in (
        ("test", args.test_dir, range(TEST_SEED_BASE, TEST_SEED_BASE + args.test_phantoms)),
        ("dev", args.dev_dir, range(DEV_SEED_BASE, DEV_SEED_BASE + args.dev_phantoms)),
        ("train", args.data_dir, range(args.phantoms)),
    ):
        if not seeds:
            continue
        started = time.time()
        # Held-out sets may come from another generator (--eval-kind): a model trained on
        # domain-randomised samples is chosen and scored on phantoms it never saw the like of.
        kind = args.kind if what == "train" else (getattr(args, "eval_kind", None) or args.kind)
        for n, seed in enumerate(seeds, 1):
            write_phantom_case(seed, root, kind=kind)
            if n % 10 == 0:
                log("phantoms_written", what=what, n=n, seconds=round(time.time() - started, 1))
        log("phantoms_done", what=what, n=len(seeds), seconds=round(time.time() - started, 1))


def train(args: argparse.Namespace, log: _Log) -> Path:
    """Train; return the path of the best checkpoint."""
    import torch

    kind: SegmentationKind = KINDS[args.kind]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)
    train_cases = _load_cases(list_cases(args.data_dir), log, "train")
    dev_cases = _load_cases(list_cases(args.dev_dir), log, "dev") if args.dev_dir.is_dir() \
        else []
    sampler = PatchSampler(train_cases, rng, args.patch, strip_fraction=args.strip_fraction,
                           channel_dropout=getattr(args, "channel_dropout", 0.0))
    model = build_unet(base=args.base, levels=args.levels)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ckpt = args.workdir / "last.pt"
    best_path = args.workdir / "best.pt"
    state: dict[str, Any] = {"iteration": 0, "elapsed": 0.0, "best": -1.0, "history": []}
    if args.resume and ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        state = saved["state"]
        log("resumed", iteration=state["iteration"], elapsed=state["elapsed"])
    budget = args.minutes * 60.0
    n_params = sum(p.numel() for p in model.parameters())
    log("train_start", n_train=len(train_cases), n_dev=len(dev_cases), params=n_params,
        budget_s=budget)
    ce = torch.nn.CrossEntropyLoss()
    start = time.time() - state["elapsed"]
    last_eval = time.time()
    losses: list[float] = []
    while True:
        elapsed = time.time() - start
        if elapsed >= budget:
            break
        # cosine-ish decay on elapsed time with a short warm-up
        frac = elapsed / budget
        lr = args.lr * min(1.0, (state["iteration"] + 1) / 50) * (0.05 + 0.95 * 0.5 *
                                                                 (1 + math.cos(math.pi * frac)))
        for group in optimiser.param_groups:
            group["lr"] = lr
        model.train()
        batch = [sampler.draw() for _ in range(args.batch)]
        x = torch.from_numpy(np.stack([b[0] for b in batch]))
        y = torch.from_numpy(np.stack([b[1] for b in batch]))
        logits = model(x)
        loss = ce(logits, y) + _dice_loss(logits, y, 4)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.item()))
        state["iteration"] += 1
        if state["iteration"] % 25 == 0:
            log("train", iteration=state["iteration"], loss=round(float(np.mean(losses)), 4),
                lr=round(lr, 6), elapsed=round(time.time() - start, 1))
            losses = []
        final = time.time() - start >= budget
        if time.time() - last_eval >= args.eval_every * 60 or final:
            state["elapsed"] = time.time() - start
            metrics: dict[str, float] = {}
            if dev_cases:
                model.eval()
                scores = [kind.score(torch_predict(model, c, args.patch), c.labels)
                          for c in dev_cases]
                metrics = kind.summarise(scores)
            score = float(np.mean([metrics.get(k, 0.0)
                                   for k in kind.selection])) if metrics else 0.0
            state["history"].append({"iteration": state["iteration"],
                                     "elapsed": round(state["elapsed"], 1), **metrics})
            shape_args = {"base": args.base, "levels": args.levels, "patch": args.patch}
            payload = {"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                       "state": state, "args": shape_args}
            torch.save(payload, ckpt)
            if score >= state["best"] or not best_path.is_file():
                state["best"] = score
                torch.save({"model": model.state_dict(), "state": state, "args": shape_args},
                           best_path)
            (args.workdir / "partial_metrics.json").write_text(
                json.dumps(state["history"], indent=1))
            log("checkpoint", iteration=state["iteration"], dev=metrics, best=state["best"],
                elapsed=round(state["elapsed"], 1))
            last_eval = time.time()
    log("train_end", iteration=state["iteration"], elapsed=round(time.time() - start, 1))
    return Path(best_path)
