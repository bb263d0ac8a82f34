"""One training run: the phantom cohort with held-out phantoms, or a site's cohort by
cross-validation; then the cards and the summary."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from rgcds.analysis.validation import TrainingDataError
from rgcds.training.residual.cards import _summary, write_cards
from rgcds.training.residual.cohort import Case, _log, _phantom_case, _site_case, build_cohort
from rgcds.training.residual.evaluation import Evaluation, evaluate, fit_models, metrics


def train(args: argparse.Namespace) -> int:
    """Train, validate and write the cards as the command line's ``args`` say."""
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
