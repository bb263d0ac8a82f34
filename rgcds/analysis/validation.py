"""Validation helpers shared by the training pipelines: bootstrap confidence intervals and
table loading."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from rgcds.exceptions import RgcdsError


class TrainingDataError(RgcdsError, ValueError):
    """A features or labels table cannot be used for training."""


def bootstrap_ci(
    metric: Callable[..., float],
    arrays: Sequence[NDArray[np.generic]],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap CI of ``metric(*arrays)``.

    Cases are resampled with replacement; resamples on which ``metric`` raises ``ValueError``
    or returns NaN (e.g. one class only) are skipped.

    Returns
    -------
    tuple of float
        ``(value, low, high)``.
    """
    value = float(metric(*arrays))
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    stats: list[float] = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, n, n)
        try:
            stat = float(metric(*(a[idx] for a in arrays)))
        except (ValueError, ZeroDivisionError):
            continue
        if np.isfinite(stat):
            stats.append(stat)
    if not stats:
        return value, value, value
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return value, float(min(low, value)), float(max(high, value))


def load_training_table(features: Path, labels: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Join a wide features CSV and a labels CSV on ``case_id``.

    Parameters
    ----------
    features
        Wide table: ``case_id`` (or first column) + one column per feature.
    labels
        ``case_id`` + label columns.
    columns
        Label columns that must be present.

    Raises
    ------
    TrainingDataError
        If a file lacks ``case_id`` or a required column, or no case is in both.
    """
    x = pd.read_csv(features)
    y = pd.read_csv(labels)
    if "case_id" not in x.columns:
        x = x.rename(columns={x.columns[0]: "case_id"})
    if "case_id" not in y.columns:
        raise TrainingDataError(f"The labels table {labels} has no 'case_id' column.")
    missing = [c for c in columns if c not in y.columns]
    if missing:
        raise TrainingDataError(f"The labels table {labels} lacks the column(s) {missing}.")
    keep = ["case_id", *[c for c in y.columns if c != "case_id" and c not in x.columns]]
    table = x.merge(y[keep], on="case_id", how="inner")
    if table.empty:
        raise TrainingDataError(f"No case_id is in both {features} and {labels}.")
    return table.set_index("case_id")


__all__ = ["TrainingDataError", "bootstrap_ci", "load_training_table"]
