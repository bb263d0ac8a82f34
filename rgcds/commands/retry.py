"""``rgcds retry STUDY_UID --config PATH``: run a failed study again, or resend its results.

The study's latest job must be ``failed``:

* if it failed while delivering (it has ``failed`` outbox items), those items are re-armed
  (pending, due now) and the results already written are sent again; nothing is
  reprocessed, so the PACS never receives two versions of a result;
* otherwise (it failed while processing) the study is queued again as a new job, which the
  running daemon (or the next start) processes from the stored instances. The failed job
  stays in the store as history.

Output names the study by its UID and jobs by id only; never PHI (the job store holds none).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rgcds.commands import add_config_argument, settings_and_logging
from rgcds.dicom.parse import InstanceMeta
from rgcds.exceptions import RgcdsError
from rgcds.store.jobs import JobStore, job_store_path
from rgcds.store.records import InvalidTransitionError, Job, JobState, OutboxState
from rgcds.store.reserve import open_job_store

NAME = "retry"
HELP = "Queue a failed study again (or re-send its failed results); exit 1 if it did not fail."


class RetryError(RgcdsError, ValueError):
    """The study cannot be retried (unknown, not failed, no instances)."""


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What ``retry`` did: the failed job, and the new job or the re-armed outbox items."""

    study_uid: str
    failed_job_id: int
    previous_reason: str | None
    action: str  # "requeued" or "redeliver"
    job_id: int
    job_state: JobState
    rearmed_items: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_uid", metavar="STUDY_UID", help="the StudyInstanceUID")
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _requeue(store: JobStore, failed: Job) -> Job:
    """Open a new job for the study (through the store's public API) and queue it."""
    instances = store.instances(failed.study_uid)
    if not instances:
        raise RetryError(
            f"Study {failed.study_uid} has no stored instances to process again; "
            "send the study again instead."
        )
    # Recording an already stored instance again (same file, same row) opens a new
    # ``receiving`` job for the study, because its latest job is failed; the processing
    # side reads every instance of the study, whichever job recorded it.
    latest = max(instances, key=lambda i: i.received_at)
    meta = InstanceMeta(
        study_uid=latest.study_uid, series_uid=latest.series_uid,
        sop_instance_uid=latest.sop_instance_uid, sop_class_uid=latest.sop_class_uid,
        transfer_syntax_uid=latest.transfer_syntax_uid, modality=latest.modality,
        instance_number=latest.instance_number,
        images_in_acquisition=latest.images_in_acquisition,
        number_of_frames=latest.number_of_frames,
    )
    job = store.record_instance(meta, latest.path, latest.size)
    try:
        store.mark(job.job_id, JobState.STABLE, f"retry of failed job {failed.job_id}",
                   expect=JobState.RECEIVING)
        job = store.mark(job.job_id, JobState.QUEUED, expect=JobState.STABLE)
    except InvalidTransitionError:
        # New instances are arriving for the study: the trigger queues it once they stop.
        job = store.get(job.job_id)
    return job


def retry_study(store: JobStore, study_uid: str, now: float | None = None) -> RetryOutcome:
    """Retry the study's latest job, which must be ``failed``.

    Parameters
    ----------
    store
        The job store.
    study_uid
        The StudyInstanceUID.
    now
        When re-armed outbox items are due (POSIX time; now by default).

    Returns
    -------
    RetryOutcome
        What was done.

    Raises
    ------
    RetryError
        If the study is unknown, its latest job is not failed, or it has no instances.
    """
    failed = store.latest_job(study_uid)
    if failed is None:
        raise RetryError(f"No study with StudyInstanceUID {study_uid} is in {store.path}.")
    if failed.state is not JobState.FAILED:
        raise RetryError(
            f"Study {study_uid} is {failed.state.value} (job {failed.job_id}), not failed; "
            "only a failed study can be retried."
        )
    items = [i for i in store.outbox_items(failed.job_id) if i.state is OutboxState.FAILED]
    if items:
        count = store.rearm_failed_delivery(failed.job_id, now)
        job = store.get(failed.job_id)
        return RetryOutcome(study_uid, failed.job_id, failed.reason, "redeliver",
                            job.job_id, job.state, count)
    job = _requeue(store, failed)
    return RetryOutcome(study_uid, failed.job_id, failed.reason, "requeued",
                        job.job_id, job.state, 0)


def _as_dict(o: RetryOutcome) -> dict[str, Any]:
    return {
        "study_instance_uid": o.study_uid, "failed_job_id": o.failed_job_id,
        "previous_reason": o.previous_reason, "action": o.action, "job_id": o.job_id,
        "state": o.job_state.value, "rearmed_items": o.rearmed_items,
    }


def run(args: argparse.Namespace) -> int:
    settings = settings_and_logging(args)
    path: Path = job_store_path(settings.storage.root)
    try:
        if not path.exists():
            raise RetryError(f"There is no job store at {path}; no study was received yet.")
        with open_job_store(settings.storage.root) as store:
            outcome = retry_study(store, args.study_uid)
    except RetryError as exc:
        print(f"rgcds retry: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_as_dict(outcome)))
    elif outcome.action == "redeliver":
        print(f"study {outcome.study_uid}: {outcome.rearmed_items} failed result deliver"
              f"{'y' if outcome.rearmed_items == 1 else 'ies'} of job {outcome.failed_job_id} "
              "re-armed; the daemon sends them again")
    else:
        print(f"study {outcome.study_uid}: failed job {outcome.failed_job_id} retried as job "
              f"{outcome.job_id} ({outcome.job_state.value})")
    return 0


__all__ = ["RetryError", "RetryOutcome", "retry_study"]
