"""No silent failure: a failure injected into each step still ends in a report in the PACS.

For every step of the analysis in turn, the step's function is replaced by one that raises
``RuntimeError``; the phantom study is pushed to the daemon ``rgcds serve`` builds
(listener, trigger, Prefect flow on the local ephemeral API, outbox) and the test waits
until Orthanc holds the study's "not analysed" report naming the step. A failure in the
writers themselves ends in the fallback Basic Text SR; a crash of the flow outside the
analysis (the export step) ends in the fallback SR queued by the daemon.

The steps after segmentation reuse a work directory of an offline run (the pipeline's own
resume path), so that each case costs seconds rather than a full segmentation.
"""

from __future__ import annotations

import functools
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from rgcds.config import DestinationSettings, Settings
from rgcds.logging import configure_logging
from rgcds.pipeline import StudyContext, run_study
from rgcds.results.fallback import BASIC_TEXT_SR
from rgcds.store import JobState
from tests.conftest import OrthancServer, free_port
from tests.system.daemon_harness import push_study, sr_texts, wait_for_last_job
from tests.system.test_end_to_end import settings_for

pytestmark = [pytest.mark.slow, pytest.mark.orthanc, pytest.mark.dcmtk]

#: step -> (module, function) replaced by a failing one; "cold": the run must not reuse the
#: cached segmentation (the step runs only when segmenting).
STEPS: dict[str, tuple[str, str, bool]] = {
    "index": ("rgcds.pipeline.stages", "index", False),
    "classify": ("rgcds.pipeline.stages", "classify", False),
    "convert": ("rgcds.pipeline.stages", "convert", False),
    "segment-model": ("rgcds.pipeline.stages", "segmentation_card", True),
    "preprocess": ("rgcds.pipeline.stages", "preprocess", True),
    "segment": ("rgcds.pipeline.stages", "run_segmentation", True),
    "qc": ("rgcds.pipeline.stages", "quality_control", False),
    "measure": ("rgcds.pipeline.stages", "measure", False),
    "radiomics": ("rgcds.pipeline.stages", "radiomics", False),
    "reference": ("rgcds.pipeline.stages", "reference_datasets", False),
    "predict": ("rgcds.pipeline.stages", "predict", False),
    "pet": ("rgcds.pipeline.postop", "read_pet", False),
    "report": ("rgcds.pipeline.report", "complete_report", False),
    "write": ("rgcds.pipeline.stages", "write", False),
    "export": ("rgcds.pipeline.flow", "export", False),
}
#: Steps whose failure leaves only the fallback SR (no regular SR and PDF can be written).
FALLBACK_ONLY = {"index", "write", "export"}


def _failing(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("injected failure for the test")

    return boom


@pytest.fixture(scope="module")
def cached_work(phantom_study: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The work directory of a complete offline run (segmentation and radiomics cached)."""
    tmp = tmp_path_factory.mktemp("cached")
    ctx = StudyContext(inputs=(phantom_study.series[0].directory.parent,),
                       work_dir=tmp / "work", settings=settings_for(tmp))
    outcome = run_study(ctx)
    assert outcome.status == "complete", outcome.reason
    shutil.rmtree(ctx.work_dir / "results", ignore_errors=True)
    return ctx.work_dir


@pytest.mark.parametrize("step", list(STEPS))
def test_failure_in_each_step_ends_in_a_delivered_report(
    step: str,
    orthanc: OrthancServer,
    phantom_study: Any,
    cached_work: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    from rgcds.commands.serve import build_daemon

    module_name, attribute, cold = STEPS[step]
    module = importlib.import_module(module_name)
    monkeypatch.setattr(module, attribute, _failing(getattr(module, attribute)))
    orthanc.clear()
    logs = io.StringIO()
    configure_logging("INFO", "json", logs)
    base = settings_for(
        tmp_path,
        destinations=[DestinationSettings(name="pacs", ae_title=orthanc.aet,
                                          host="127.0.0.1",
                                          port=orthanc.dicom_port).model_dump()],
    )
    data = base.model_dump()
    data["processing"]["stage_retries"] = 0
    settings = Settings(**data)
    # The daemon's first job of this study works in storage/work/<study>/1: seed it.
    work = settings.storage.root / "work" / phantom_study.study_instance_uid / "1"
    shutil.copytree(cached_work, work)
    if cold:
        shutil.rmtree(work / "segmentation")

    port = free_port()
    daemon = build_daemon(settings, None, port=port)
    daemon.start()
    try:
        push_study(port, phantom_study.series[0].directory.parent, settings.listener.ae_title)
        job = wait_for_last_job(daemon, 600)
        assert job is not None and job.state is JobState.DONE, (job, logs.getvalue()[-3000:])
        assert job.job_id == 1, job
        assert job.reason is not None and f"'{step}'" in job.reason, job.reason
    finally:
        daemon.stop(timeout=60)

    tags = [orthanc.get(f"/instances/{i}/simplified-tags") for i in orthanc.instances()]
    assert {t["StudyInstanceUID"] for t in tags} == {phantom_study.study_instance_uid}
    modalities = sorted(t["Modality"] for t in tags)
    assert "SEG" not in modalities
    assert modalities.count("SR") == 1, modalities
    sr_id = next(i for i, t in zip(orthanc.instances(), tags, strict=True)
                 if t["Modality"] == "SR")
    sr = pydicom.dcmread(io.BytesIO(orthanc.request_raw(f"/instances/{sr_id}/file")))
    text = " ".join(sr_texts(sr))
    assert f"step '{step}'" in text and "without automated results" in text, text
    if step in FALLBACK_ONLY:
        assert sr.SOPClassUID == BASIC_TEXT_SR
    else:
        assert "DOC" in modalities  # the "not analysed" PDF
    log = logs.getvalue()
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    # The traceback of the failure is in the log (as structlog's rendered "exception").
    assert any("Traceback" in str(e.get("exception", "")) and "RuntimeError" in
               str(e.get("exception", "")) for e in events), log[-3000:]
    for part in phantom_study.patient_name.replace("^", " ").split():
        assert part not in log


def test_a_fixed_analysis_time_makes_a_rerun_byte_identical(
    phantom_study: Any, cached_work: Path, tmp_path: Path
) -> None:
    """``StudyContext.analysed_at`` (``rgcds demo/process --analysed-at``): two runs a moment
    apart write the same bytes, so a refactoring can be checked against the tree before it."""
    import time
    from datetime import UTC, datetime

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    written: list[dict[str, bytes]] = []
    for run in range(2):
        work = tmp_path / f"run{run}"
        shutil.copytree(cached_work, work)
        ctx = StudyContext(inputs=(phantom_study.series[0].directory.parent,), work_dir=work,
                           settings=settings_for(tmp_path), analysed_at=when)
        outcome = run_study(ctx)
        assert outcome.status == "complete", outcome.reason
        written.append({path.name: path.read_bytes() for _uid, path in outcome.written})
        time.sleep(1.1)  # the wall clock moves on between the runs
    assert written[0].keys() == written[1].keys() and len(written[0]) >= 4
    for name, data in written[0].items():
        assert data == written[1][name], name
    sr = next(pydicom.dcmread(io.BytesIO(d)) for d in written[0].values()
              if pydicom.dcmread(io.BytesIO(d), stop_before_pixels=True).Modality == "SR")
    assert (sr.ContentDate, sr.ContentTime) == ("20260102", "030405")
