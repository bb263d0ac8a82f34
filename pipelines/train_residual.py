"""Train the post-operative residual-tumour and prognosis models (see docs/residual.md).

Models (after Sci Rep 2024 14:4576, post-operative [11C]MET-PET + T1c inside the CTV):

(a) PET model - MONAI ``DenseNet121(spatial_dims=3, in_channels=1, out_channels=1)`` on the
    PET TBR inside the CTV (:func:`rgcds.analysis.residual.pet_model_input`: 3 mm grid,
    40^3 box), binary cross-entropy with positive-class weight, AdamW, cosine schedule,
    augmentation (random flips on the three axes, shifts up to 3 voxels, intensity x0.9-1.1).
    20 % of the training cases are held back to pick the epoch (best AUC) and the
    thresholds (Youden). Exported to ONNX (opset 17); ONNX Runtime must agree with PyTorch
    within 1e-4.
(b) T1c model - median imputation, standardisation, L2 logistic regression (C by 5-fold
    inner CV, AUC) on :func:`rgcds.analysis.residual.t1c_features`.
(c) Combination - the mean of the two probabilities (no fitted weights).
(d) Cox models for time to recurrence and overall survival (lifelines ``CoxPHFitter``, L2
    penaliser 0.1, z-scored covariates) on the PET model's logit, TBRmax and BTV in the CTV,
    age and MGMT (with-MGMT variant) or without MGMT (MGMT-free variant). The PET logits of
    the training cases come from the final network (in-sample).

Modes
-----
``--phantoms N --held-out M``
    Generates N + M post-operative phantoms (``rgcds.phantom.simulate_postop``, seeds
    ``--seed-base`` ...), trains on the first N, evaluates on the last M: AUC with 95 %
    percentile-bootstrap CI for (a)-(c); Harrell's C with CI for (d) next to the oracle
    C-index (the C-index of the simulation's true linear predictor on the same cases).
``--labels-csv FILE``
    A site's own cohort, one row per case with columns:

    ==================  ==========================================================
    case_id             unique id (not a patient identifier)
    pet_path            post-op PET (NIfTI/NRRD, SUV or proportional units), or empty
    t1c_path            post-op T1c registered to the PET/CTV frame, or empty
    ctv_path            radiotherapy CTV mask (non-zero inside)
    brain_mask_path     optional brain mask (background VOI, T1c z-scoring)
    residual            1 residual tumour present, 0 absent
    age_years           age at the scan
    mgmt_methylated     1, 0 or empty (unknown)
    ttr_days, ttr_event time to recurrence (days) and event (1 recurrence, 0 censored)
    os_days, os_event   overall survival (days) and event (1 death, 0 censored)
    ==================  ==========================================================

    Paths are relative to the CSV's folder. Validation is ``--folds``-fold cross-validation
    (pooled out-of-fold predictions); the final models are refit on all cases.

Partial results are kept: the cohort cache (``--cohort``: one ``.npz`` per case, so a
restart resumes), the network's checkpoint after every epoch (``--work``). Progress goes to
stdout. Cards go to ``--out/<model-id>/``; a JSON and Markdown summary to ``--work``.

Example::

    .venv/bin/python pipelines/train_residual.py --phantoms 150 --held-out 100 --out models
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rgcds.training.residual.cards import write_cards as write_cards
from rgcds.training.residual.cohort import Case as Case
from rgcds.training.residual.cohort import _load_case as _load_case
from rgcds.training.residual.cohort import _save_case as _save_case
from rgcds.training.residual.evaluation import Evaluation as Evaluation
from rgcds.training.residual.evaluation import evaluate as evaluate
from rgcds.training.residual.evaluation import fit_models as fit_models
from rgcds.training.residual.evaluation import metrics as metrics
from rgcds.training.residual.run import train


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--phantoms", type=int, help="training phantoms")
    mode.add_argument("--labels-csv", type=Path, help="a site's cohort (see the docstring)")
    parser.add_argument("--held-out", type=int, default=100, help="held-out phantoms")
    parser.add_argument("--seed-base", type=int, default=50_000)
    parser.add_argument("--folds", type=int, default=5, help="CV folds (--labels-csv)")
    parser.add_argument("--out", type=Path, default=Path("models"))
    parser.add_argument("--cohort", type=Path, default=Path("build/residual-cohort"))
    parser.add_argument("--work", type=Path, default=Path("build/residual"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", choices=("densenet121", "small"), default="densenet121")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--penalizer", type=float, default=0.1)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    return train(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
