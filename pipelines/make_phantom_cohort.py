"""Build a phantom cohort for the demo models: radiomic features and labels as CSV.

For each seed, :func:`rgcds.phantom.simulate_subject` makes a synthetic glioblastoma study in
template space; the fast radiomics parameter set (``radiomics_fast.yaml``) is extracted for
the regions TC, ET and ED on every sequence (T1, T1c, T2, FLAIR, PET). Rows are appended to
the output files as each case finishes, so an interrupted run loses at most the cases in
flight; a rerun skips the cases already written.

Outputs in ``--out`` (default ``build/phantom-cohort``):

* ``features_tidy.csv`` - ``study_uid, region, sequence, feature, ibsi_name, value``
  (``study_uid`` is the case id ``phantom-<seed>``), appended per case;
* ``labels.csv`` - ``case_id, seed, age_years, sex_male, idh_mutant, mgmt_methylated,
  egfr_amplified, os_months, event``, appended per case (after its features);
* ``features_wide.csv`` - one row per case (``case_id`` + ``{region}_{sequence}_{feature}``),
  rebuilt from the tidy file at the end (or with ``--finalize``).

Run in the background, e.g.::

    nohup .venv/bin/python pipelines/make_phantom_cohort.py --n 150 --workers 2 \
        > build/phantom-cohort.log 2>&1 &
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import pandas as pd

from rgcds.analysis.radiomics import FAST_PARAMS, FEATURE_COLUMNS, extract_radiomics, to_wide

COHORT_REGIONS = ("TC", "ET", "ED")
LABEL_COLUMNS = (
    "case_id",
    "seed",
    "age_years",
    "sex_male",
    "idh_mutant",
    "mgmt_methylated",
    "egfr_amplified",
    "os_months",
    "event",
)
_DAYS_PER_MONTH = 30.4375


def case_id(seed: int) -> str:
    """Case identifier of a phantom seed."""
    return f"phantom-{seed:04d}"


def process_case(seed: int) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """Simulate one phantom and extract its features and labels (runs in a worker)."""
    from rgcds.phantom import simulate_subject

    subject = simulate_subject(seed, "small")
    images = {
        "T1": subject.t1,
        "T1c": subject.t1c,
        "T2": subject.t2,
        "FLAIR": subject.flair,
        "PET": subject.pet,
    }
    cid = case_id(seed)
    table = extract_radiomics(
        images,
        subject.labels,
        study_uid=cid,
        regions=COHORT_REGIONS,
        params=FAST_PARAMS,
        max_workers=1,
    )
    c = subject.clinical
    labels = {
        "case_id": cid,
        "seed": seed,
        "age_years": c.age_years,
        "sex_male": 1 if c.sex == "M" else 0,
        "idh_mutant": int(c.idh_mutant),
        "mgmt_methylated": int(c.mgmt_methylated),
        "egfr_amplified": int(c.egfr_amplified),
        "os_months": round(c.overall_survival_days / _DAYS_PER_MONTH, 3),
        "event": int(c.death_observed),
    }
    return [tuple(r) for r in table.itertuples(index=False)], labels


def _done(labels_path: Path) -> set[str]:
    if not labels_path.is_file():
        return set()
    with labels_path.open(newline="") as fh:
        return {row["case_id"] for row in csv.DictReader(fh)}


def _append(path: Path, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    with path.open("a", newline="") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(header)
        writer.writerows(rows)
        fh.flush()


def finalize(out: Path) -> Path:
    """Rebuild ``features_wide.csv`` from the tidy file (cases with labels only)."""
    tidy = pd.read_csv(out / "features_tidy.csv")
    done = _done(out / "labels.csv")
    tidy = tidy[tidy["study_uid"].isin(done)]
    wide = to_wide(tidy)
    wide.index.name = "case_id"
    target = out / "features_wide.csv"
    wide.to_csv(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--n", type=int, default=150, help="number of phantoms (seeds start..start+n-1)"
    )
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--out", type=Path, default=Path("build/phantom-cohort"))
    parser.add_argument("--workers", type=int, default=2, help="parallel cases")
    parser.add_argument("--finalize", action="store_true", help="only rebuild features_wide.csv")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.finalize:
        print(finalize(out))
        return 0
    done = _done(out / "labels.csv")
    seeds = [s for s in range(args.start, args.start + args.n) if case_id(s) not in done]
    print(f"{len(done)} cases present, {len(seeds)} to build", flush=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        pending: dict[Future[tuple[list[tuple[Any, ...]], dict[str, Any]]], int] = {}
        queue = list(seeds)
        while queue or pending:
            while queue and len(pending) < 2 * max(1, args.workers):
                seed = queue.pop(0)
                pending[pool.submit(process_case, seed)] = seed
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                seed = pending.pop(future)
                try:
                    rows, labels = future.result()
                except Exception as exc:
                    print(
                        f"seed {seed} failed: {type(exc).__name__}: {exc}",
                        file=sys.stderr,
                        flush=True,
                    )
                    continue
                _append(out / "features_tidy.csv", FEATURE_COLUMNS, rows)
                _append(
                    out / "labels.csv", LABEL_COLUMNS, [tuple(labels[c] for c in LABEL_COLUMNS)]
                )
                done.add(labels["case_id"])
                elapsed = time.perf_counter() - started
                print(f"{labels['case_id']} done ({len(done)} total, {elapsed:.0f} s)", flush=True)
    print(finalize(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
