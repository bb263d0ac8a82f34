"""Train a radiogenomic classifier (MGMT, IDH, EGFR, ...) with nested cross-validation.

Input: a wide features table (one row per case: ``case_id`` + radiomic features, as written by
``make_phantom_cohort.py`` or :func:`rgcds.analysis.radiomics.to_wide`) and a labels table
(``case_id``, the binary target, and the clinical variables ``age_years`` and ``sex_male``).

Model: median imputation -> zero-variance filter -> standardisation -> univariate selection
(``SelectKBest(f_classif, k)``) -> L2 logistic regression (balanced class weights).

Validation: nested cross-validation. Inner stratified k-fold grid search over ``k`` and ``C``
(AUC); outer stratified 5-fold gives out-of-fold probabilities for every case. The card's AUC
is that of the pooled out-of-fold predictions, with a 95 % percentile bootstrap CI over them.
The final model is refit (with the same inner search) on all cases and saved with skops.

Inputs: ``--sequences T1,T1c,T2,FLAIR`` keeps only the radiomic features of those series (and
the shape features and clinical variables); the card's ``requires`` block states the series,
regions and clinical variables the model needs, so that
:func:`rgcds.analysis.predict.predict_all` runs it only on studies that can feed it.

Example (the shipped MR-only and MR + PET variants)::

    .venv/bin/python pipelines/train_radiogenomics.py \
        --features build/phantom-cohort/features_wide.csv \
        --labels build/phantom-cohort/labels.csv --target mgmt_methylated \
        --sequences T1,T1c,T2,FLAIR --version 0.2.0 \
        --model-id mgmt-phantom-demo --out models/mgmt-phantom-demo --synthetic
    .venv/bin/python pipelines/train_radiogenomics.py \
        --features build/phantom-cohort/features_wide.csv \
        --labels build/phantom-cohort/labels.csv --target mgmt_methylated \
        --sequences T1,T1c,T2,FLAIR,PET --version 0.2.0 \
        --model-id mgmt-pet-phantom-demo --out models/mgmt-pet-phantom-demo --synthetic
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rgcds.analysis.validation import load_training_table
from rgcds.training.cli import add_nested_cv_arguments, nested_cv_options
from rgcds.training.radiogenomics import train_classifier as train_classifier


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Train a radiogenomic classifier with nested CV.")
    parser.add_argument("--features", type=Path, required=True, help="wide features CSV")
    parser.add_argument("--labels", type=Path, required=True, help="labels CSV with case_id")
    parser.add_argument("--target", required=True, help="binary label column, e.g. mgmt_methylated")
    add_nested_cv_arguments(
        parser,
        sequences_help="comma-separated series whose radiomics the model uses, e.g. "
        "T1,T1c,T2,FLAIR (default: all in the table)",
    )
    args = parser.parse_args(argv)
    table = load_training_table(args.features, args.labels, [args.target])
    card = train_classifier(table, target=args.target, **nested_cv_options(args))
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
