"""Train a penalised Cox survival model with nested cross-validation.

Input: a wide features table (``case_id`` + radiomic features) and a labels table with
``case_id``, overall survival in months (``os_months``), the event indicator (``event``: 1 =
death observed, 0 = censored) and the clinical variables ``age_years`` and ``sex_male``.

Model: z-scoring with training-fold statistics (a missing value counts as the mean); the
clinical variables are always in the model; the ``k`` radiomic features with the strongest
univariate association (|Harrell's C - 0.5| on the training fold) are added (``k = 0``: clinical
only; nested CV decides); lifelines ``CoxPHFitter`` with an L2 penalty.

Validation: nested cross-validation. The inner k-fold search picks ``k`` and the penalty by
C-index; the outer 5-fold gives out-of-fold linear predictors. The card's C-index is Harrell's
C of the pooled out-of-fold predictions, with a 95 % percentile bootstrap CI over them (the
per-fold C-indices are recorded as well).

Inputs: ``--sequences T1,T1c,T2,FLAIR`` keeps only the radiomic features of those series (and
the shape features); the card's ``requires`` block states the series, regions and clinical
variables of the features the final model kept.

The final model is refit on all cases and stored as plain JSON (standardisation,
coefficients, baseline survival, risk tertiles of the training cohort): see
:class:`rgcds.analysis.predict.CoxWeights`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rgcds.analysis.validation import load_training_table
from rgcds.training.cli import add_nested_cv_arguments, nested_cv_options
from rgcds.training.survival import _fit as _fit
from rgcds.training.survival import train_cox as train_cox


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Train a Cox survival model with nested CV.")
    parser.add_argument("--features", type=Path, required=True, help="wide features CSV")
    parser.add_argument("--labels", type=Path, required=True, help="labels CSV (os_months, event)")
    add_nested_cv_arguments(
        parser,
        sequences_help="comma-separated series whose radiomics the model may use, e.g. T1,T1c,T2"
        ",FLAIR (default: all in the table)",
    )
    args = parser.parse_args(argv)
    table = load_training_table(args.features, args.labels, ["os_months", "event"])
    card = train_cox(table, **nested_cv_options(args))
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
