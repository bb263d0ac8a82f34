"""Study completeness rules and the trigger's state changes (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rgcds.config import TriggerSettings
from rgcds.dicom.parse import InstanceMeta
from rgcds.service.trigger import StudyTrigger, series_is_complete, study_is_complete
from rgcds.store import InstanceRecord, Job, JobState, JobStore

MR = "1.2.840.10008.5.1.4.1.1.4"
EMR = "1.2.840.10008.5.1.4.1.1.4.1"


def rec(n: int | None, *, iia: int | None = None, frames: int | None = None,
        sop_class: str = MR, series: str = "1.2.3.1") -> InstanceRecord:
    return InstanceRecord(
        sop_instance_uid=f"{series}.{n or 0}", study_uid="1.2.3", series_uid=series,
        sop_class_uid=sop_class, transfer_syntax_uid="1.2.840.10008.1.2.1", modality="MR",
        instance_number=n, images_in_acquisition=iia, number_of_frames=frames, path="/x",
        size=1, job_id=1, received_at=0.0,
    )


@pytest.mark.parametrize(
    ("series", "complete"),
    [
        ([rec(1, iia=3), rec(2, iia=3), rec(3, iia=3)], True),
        ([rec(1, iia=3), rec(2, iia=3)], False),  # missing one
        ([rec(1, iia=3), rec(3, iia=3), rec(4, iia=3)], False),  # gap
        ([rec(1, iia=2), rec(1, iia=2)], False),  # repeated number
        ([rec(1, iia=2), rec(None, iia=2)], False),  # numbers only partly present
        ([rec(None, iia=2), rec(None, iia=2)], True),
        ([rec(1), rec(2), rec(3)], False),  # classic images: nothing proves completeness
        ([rec(1, frames=120, sop_class=EMR)], True),  # one enhanced multi-frame object
        ([rec(None, sop_class=EMR)], True),
        ([rec(2, sop_class=EMR)], False),  # numbering starts after 1: more may come
        ([rec(1, frames=40), rec(2, frames=40)], True),
        ([], False),
    ],
)
def test_series_rules(series: list[InstanceRecord], complete: bool) -> None:
    assert series_is_complete(series) is complete


def test_study_needs_every_series() -> None:
    a = [rec(1, iia=1, series="1.2.3.1")]
    b = [rec(1, series="1.2.3.2")]
    assert study_is_complete(a)
    assert not study_is_complete(a + b)
    assert not study_is_complete([])


def _meta(n: int, iia: int | None) -> InstanceMeta:
    return InstanceMeta("1.2.3", "1.2.3.1", f"1.2.3.1.{n}", MR, instance_number=n,
                        images_in_acquisition=iia)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = JobStore(tmp_path / "jobs.sqlite3")
    yield s
    s.close()


def test_complete_study_queued_early_but_not_while_busy(store: JobStore) -> None:
    queued: list[Job] = []
    busy = {"1.2.3"}
    trig = StudyTrigger(store, TriggerSettings(stable_seconds=600), busy_studies=lambda: busy,
                        on_queued=queued.append)
    for n in (1, 2):
        store.record_instance(_meta(n, 2), "/x", 1, now=1000.0)
    assert trig.evaluate(now=1000.5) == []  # within the grace period
    assert trig.evaluate(now=1010.0) == []  # association still open
    busy.clear()
    [job] = trig.evaluate(now=1010.0)
    assert job.state is JobState.QUEUED and queued == [job]
    assert trig.evaluate(now=1011.0) == []  # queued once


def test_incomplete_study_waits_for_stable_seconds(store: JobStore) -> None:
    trig = StudyTrigger(store, TriggerSettings(stable_seconds=30))
    store.record_instance(_meta(1, None), "/x", 1, now=1000.0)
    assert trig.evaluate(now=1029.0) == []
    [job] = trig.evaluate(now=1030.0)
    assert job.state is JobState.QUEUED


def test_stable_job_left_by_crash_is_queued(store: JobStore) -> None:
    job = store.record_instance(_meta(1, None), "/x", 1)
    store.mark(job.job_id, JobState.STABLE)
    [queued] = StudyTrigger(store, TriggerSettings()).evaluate()
    assert queued.job_id == job.job_id


def test_hook_errors_do_not_stop_the_trigger(store: JobStore) -> None:
    def boom(job: Job) -> None:
        raise RuntimeError("processing is down")

    trig = StudyTrigger(store, TriggerSettings(stable_seconds=1), on_queued=boom)
    store.record_instance(_meta(1, None), "/x", 1, now=0.0)
    assert len(trig.evaluate(now=5.0)) == 1
