"""Validation helpers shared by the training pipelines: bootstrap confidence intervals, table
loading and the choice of input series."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from rgcds.analysis.cards import MASK_SEQUENCE, SEQUENCE_NAMES, parse_feature_name
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


def parse_sequences(text: str | None) -> tuple[str, ...] | None:
    """``"T1,T1c,T2,FLAIR"`` as canonical sequence names (``None`` or empty: all).

    Raises
    ------
    TrainingDataError
        If a name is not one of :data:`rgcds.analysis.cards.SEQUENCE_NAMES`.
    """
    if text is None or not text.strip():
        return None
    canonical = {s.lower(): s for s in SEQUENCE_NAMES}
    names: list[str] = []
    for item in text.split(","):
        name = canonical.get(item.strip().lower())
        if name is None:
            raise TrainingDataError(
                f"Unknown sequence {item.strip()!r}; use a comma-separated list of "
                f"{', '.join(SEQUENCE_NAMES)}."
            )
        if name not in names:
            names.append(name)
    return tuple(n for n in SEQUENCE_NAMES if n in names)


def select_sequences(columns: Sequence[str], sequences: Sequence[str] | None) -> list[str]:
    """The columns a model on ``sequences`` may use, in order.

    Radiomic columns (``{region}_{sequence}_{feature}``) are kept when their sequence is in
    ``sequences``; shape features (sequence ``mask``, from the segmentation) and other columns
    (clinical variables) are always kept. ``sequences=None`` keeps every column.
    """
    if sequences is None:
        return list(columns)
    allowed = set(sequences)
    kept: list[str] = []
    for name in columns:
        parsed = parse_feature_name(name)
        if parsed is None or parsed[1] == MASK_SEQUENCE or parsed[1] in allowed:
            kept.append(name)
    return kept


__all__ = [
    "TrainingDataError",
    "bootstrap_ci",
    "load_training_table",
    "parse_sequences",
    "select_sequences",
]
