"""Post-operative MR study + MET-PET/CT study of one patient, end to end, in both orders.

dcmtk's storescu pushes the MR study (with an RT Structure Set holding the CTV) and the
PET/CT study to ``rgcds serve``; the daemon pairs them by patient, analyses the PET inside
the CTV, and delivers to a real Orthanc: the PET SEG into the PET study, the SEGs and the
SR (with the PET measurement group) into the MR study. Whichever study comes first is
analysed alone first (an MR as usual, a PET on its own grid), and its report says so.
"""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rgcds.config import DestinationSettings
from rgcds.logging import configure_logging
from rgcds.phantom import PostopStudies, write_postop_study
from rgcds.store import JobState
from tests.conftest import OrthancServer, free_port, require_tool
from tests.system.daemon_harness import RANO_SR_SERIES
from tests.system.test_end_to_end import settings_for

pytestmark = [pytest.mark.slow, pytest.mark.orthanc, pytest.mark.dcmtk]


@pytest.fixture(scope="module")
def postop(tmp_path_factory: pytest.TempPathFactory) -> PostopStudies:
    return write_postop_study(tmp_path_factory.mktemp("postop"), seed=11, rtstruct=True)


def _wait_all_done(daemon: Any, n_jobs: int, timeout: float = 900) -> list[Any]:
    deadline = time.monotonic() + timeout
    jobs: list[Any] = []
    while time.monotonic() < deadline:
        jobs = daemon.jobs.jobs()
        if len(jobs) >= n_jobs and all(j.state.is_terminal for j in jobs):
            return list(jobs)
        time.sleep(2)
    raise AssertionError(f"jobs not finished: {[(j.state, j.reason) for j in jobs]}")


def _send(storescu: str, port: int, folder: Path) -> None:
    sent = subprocess.run(
        [storescu, "-aet", "SCANNER1", "-aec", "RGCDS", "+sd", "+r", "127.0.0.1", str(port),
         str(folder)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert sent.returncode == 0, sent.stderr


def _by_study(orthanc: OrthancServer) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for i in orthanc.instances():
        tags = orthanc.get(f"/instances/{i}/simplified-tags")
        out.setdefault(tags["StudyInstanceUID"], []).append(
            (tags["Modality"], tags.get("SeriesDescription", ""))
        )
    return out


def _sr_texts(orthanc: OrthancServer, study_uid: str) -> list[str]:
    import pydicom

    texts: list[str] = []
    for i in orthanc.instances():
        tags = orthanc.get(f"/instances/{i}/simplified-tags")
        if tags["StudyInstanceUID"] != study_uid or tags["Modality"] != "SR":
            continue
        raw = orthanc.request_raw(f"/instances/{i}/file")
        ds = pydicom.dcmread(io.BytesIO(raw))
        stack = list(ds.get("ContentSequence", []))
        while stack:
            item = stack.pop()
            if "TextValue" in item:
                texts.append(str(item.TextValue))
            if "ConceptNameCodeSequence" in item:
                texts.append(str(item.ConceptNameCodeSequence[0].CodeMeaning))
            stack += list(item.get("ContentSequence", []))
    return texts


def _srs(orthanc: OrthancServer, study_uid: str) -> list[Any]:
    import pydicom

    out = []
    for i in orthanc.instances():
        tags = orthanc.get(f"/instances/{i}/simplified-tags")
        if (tags["StudyInstanceUID"] == study_uid and tags["Modality"] == "SR"
                and tags.get("SeriesNumber") != RANO_SR_SERIES):
            out.append(pydicom.dcmread(io.BytesIO(orthanc.request_raw(f"/instances/{i}/file"))))
    return out


@pytest.mark.parametrize("order", ["mr-first", "pet-first"])
def test_mr_and_pet_ct_studies_are_paired_and_delivered(
    orthanc: OrthancServer, postop: PostopStudies, tmp_path: Path, order: str
) -> None:
    storescu = require_tool("storescu", "dcmtk")
    orthanc.clear()
    logs = io.StringIO()
    configure_logging("INFO", "json", logs)
    settings = settings_for(
        tmp_path,
        destinations=[
            DestinationSettings(name="pacs", ae_title=orthanc.aet, host="127.0.0.1",
                                port=orthanc.dicom_port).model_dump()
        ],
    )
    from rgcds.commands.serve import build_daemon

    port = free_port()
    daemon = build_daemon(settings, None, port=port)
    daemon.start()
    first, second = (
        (postop.mr_dir, postop.petct_dir) if order == "mr-first"
        else (postop.petct_dir, postop.mr_dir)
    )
    try:
        _send(storescu, port, first)
        _wait_all_done(daemon, 1)
        _send(storescu, port, second)
        jobs = _wait_all_done(daemon, 2)
    finally:
        daemon.stop(timeout=60)
    assert all(j.state is JobState.DONE for j in jobs), [j.reason for j in jobs]

    studies = _by_study(orthanc)
    mr, pet = studies[postop.mr_study_uid], studies[postop.petct_study_uid]
    pet_segs = [d for m, d in pet if m == "SEG"]
    assert pet_segs and all("PET" in d for d in pet_segs)
    assert any(m == "SEG" and "post-operative SEG" in d for m, d in mr)  # post-op model
    assert any(m == "SEG" and "PET" in d for m, d in mr)  # PET segments on the MR grid
    assert any(m == "SR" for m, _ in mr)
    texts = " | ".join(_sr_texts(orthanc, postop.mr_study_uid))
    assert "RT Structure Set ROI 'CTV'" in texts
    assert postop.petct_study_uid in texts or "Paired" in texts
    srs = _srs(orthanc, postop.mr_study_uid)
    if len(srs) > 1:
        # The paired report supersedes the MR-alone one: one current report per study.
        latest = [ds for ds in srs if "PredecessorDocumentsSequence" in ds]
        assert len(latest) == 1, [ds.SOPInstanceUID for ds in srs]
        refs = {
            ref.ReferencedSOPInstanceUID
            for study in latest[0].PredecessorDocumentsSequence
            for series in study.ReferencedSeriesSequence
            for ref in series.ReferencedSOPSequence
        }
        assert refs == {ds.SOPInstanceUID for ds in srs if ds is not latest[0]}
        assert {ds.SeriesNumber for ds in srs} == {latest[0].SeriesNumber}
    if order == "pet-first":
        pet_only = " | ".join(_sr_texts(orthanc, postop.petct_study_uid))
        assert "No MR study" in pet_only
    text = logs.getvalue()
    for part in postop.patient_name.replace("^", " ").split():
        assert part not in text
    assert postop.patient_id not in text
