"""An Enhanced-MR T1c through the whole DICOM path into a real PACS.

The phantom study's T1c is one Legacy Converted Enhanced MR object (highdicom's converter,
frames out of slice order). dcmtk's storescu pushes the study to ``rgcds serve`` (listener,
trigger, Prefect flow, outbox), which must deliver the SEG, SR, SC overlays and PDF to a real
Orthanc, in the original study, the SEG derived from the one multi-frame T1c.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest

from rgcds.config import DestinationSettings
from rgcds.results.testing import write_enhanced_series
from rgcds.store import JobState
from tests.conftest import OrthancServer, free_port
from tests.system.daemon_harness import RANO_SR_SERIES, push_study, wait_for_last_job
from tests.system.test_end_to_end import settings_for

pytestmark = [pytest.mark.slow, pytest.mark.orthanc, pytest.mark.dcmtk]


@pytest.fixture(scope="module")
def enhanced_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, pydicom.Dataset]:
    from rgcds.phantom import write_study

    study = write_study(tmp_path_factory.mktemp("enhanced-study"), seed=1, size="small",
                        with_pet=True)
    path = write_enhanced_series(study.series_by_role("T1c").directory, shuffle_seed=11)
    return study, pydicom.dcmread(path, stop_before_pixels=True)


def test_enhanced_mr_study_gets_seg_sr_sc_and_pdf_in_orthanc(
    orthanc: OrthancServer, enhanced_study: tuple[Any, pydicom.Dataset], tmp_path: Path
) -> None:
    from rgcds.commands.serve import build_daemon

    study, t1c = enhanced_study
    orthanc.clear()
    settings = settings_for(
        tmp_path,
        destinations=[
            DestinationSettings(name="pacs", ae_title=orthanc.aet, host="127.0.0.1",
                                port=orthanc.dicom_port).model_dump()
        ],
    )
    port = free_port()
    daemon = build_daemon(settings, None, port=port)
    daemon.start()
    try:
        # -R: propose the files' own SOP classes (Legacy Converted Enhanced MR included).
        push_study(port, study.series[0].directory.parent, settings.listener.ae_title, "-R")
        job = wait_for_last_job(daemon)
        assert job is not None and job.state is JobState.DONE, job
    finally:
        daemon.stop(timeout=60)

    tags = [orthanc.instance_tags(i) for i in orthanc.instances()]
    results = [t for t in tags if "rgcds" in t.get("SeriesDescription", "")]
    by_modality: dict[str, list[dict[str, Any]]] = {}
    for t in results:
        by_modality.setdefault(t["Modality"], []).append(t)
    tumour_segs = [t for t in by_modality.get("SEG", []) if "tumour" in t["SeriesDescription"]]
    assert len(tumour_segs) == 1, [t["SeriesDescription"] for t in results]
    reports = [t for t in by_modality.get("SR", []) if t.get("SeriesNumber") != RANO_SR_SERIES]
    assert len(reports) == 1
    assert any("overlays" in t["SeriesDescription"] for t in by_modality.get("OT", []))
    assert len(by_modality.get("DOC", [])) == 1
    for t in results:
        assert t["StudyInstanceUID"] == study.study_instance_uid
    assert len(orthanc.studies()) == 1  # results went into the original study

    # The SEG as Orthanc stores it: derived from the one multi-frame T1c, frame by frame.
    seg_id = next(
        i for i in orthanc.instances()
        if orthanc.instance_tags(i).get("SOPInstanceUID") == tumour_segs[0]["SOPInstanceUID"]
    )
    seg = pydicom.dcmread(pydicom.filebase.DicomBytesIO(orthanc.request_raw(
        f"/instances/{seg_id}/file")))
    referenced = [
        i.ReferencedSOPInstanceUID
        for s in seg.ReferencedSeriesSequence
        for i in s.ReferencedInstanceSequence
    ]
    assert referenced == [t1c.SOPInstanceUID]
    frames = {
        int(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
        for item in seg.PerFrameFunctionalGroupsSequence
    }
    assert frames and max(frames) <= int(t1c.NumberOfFrames)
