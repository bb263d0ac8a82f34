"""The radiologist's viewer reads what rgcds writes (issue 18, deliverable 6).

A real Orthanc with its DICOMweb plugin holds the source MR series and the result objects of
a pre-operative and a post-operative report (the test fixtures of ``rgcds.results.testing``,
RANO lesions placed on their slices). The OHIF v3 viewer (the npm registry's prebuilt
``@ohif/app``) opens the study in headless Chromium; what it displays is read from OHIF's own
services, not from our files:

* every object gets one of OHIF's SOP class handlers (image stack, SEG, SR, PDF);
* OHIF's SR parser finds every measurement group of the report, in our order, and the RANO
  lesions' long and short axes as two-point SCOORD polylines on a source MR image;
* the SEG loads as one segmentation with the three sub-region segments, by their labels.

Screenshots of the SEG on the MR are kept in the test's folder (and copied to
``$RGCDS_VIEWER_SHOTS`` when set, which is how ``docs/images`` was made).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pydicom
import pytest

from rgcds.results import RanoMeasurement, SegmentationResult, SourceSeries, write_results
from rgcds.results._geometry import rano_lesions
from rgcds.results.testing import SEG_MODEL, make_labels, make_mr_series, make_report_content
from tests.conftest import start_orthanc
from tests.viewer_harness import (
    ohif_server,
    open_viewer,
    require_viewer,
    show,
    wait_for,
)

pytestmark = pytest.mark.timeout(600)

HANDLERS = {
    "MR": "@ohif/extension-default.sopClassHandlerModule.stack",
    "OT": "@ohif/extension-default.sopClassHandlerModule.stack",
    "SEG": "@ohif/extension-cornerstone-dicom-seg.sopClassHandlerModule.dicom-seg",
    "SR": "@ohif/extension-cornerstone-dicom-sr.sopClassHandlerModule.dicom-sr",
    "DOC": "@ohif/extension-dicom-pdf.sopClassHandlerModule.dicom-pdf",
}


OHIF_SR_VIEWPORT = (
    "segments shown and every SR group parsed, but OHIF 3.12.10 (and 3.13.2) does not draw an "
    "SR that has a measurement group without image coordinates: "
    "_checkIfCanAddMeasurementsToDisplaySet reads coords[0] of every group, so the TID 1411 "
    "volume, prediction and status groups stop the SR viewport (TypeError reading "
    "'ReferencedSOPSequence'). Drawing the RANO axes needs an SR whose groups all carry SCOORD."
)


@dataclasses.dataclass(frozen=True)
class Case:
    study_uid: str
    mr_uids: frozenset[str]
    files: tuple[Path, ...]
    tracking: tuple[str, ...]  # the SR's measurement groups, in our order
    segments: tuple[str, ...]  # the SEG's segment labels, in segment-number order


def _tracking(sr: pydicom.Dataset) -> list[str]:
    out: list[str] = []

    def walk(items: Any) -> None:
        for item in items:
            name = item.get("ConceptNameCodeSequence")
            if name and name[0].CodeValue == "125007":  # Measurement Group
                for child in item.ContentSequence:
                    if child.ConceptNameCodeSequence[0].CodeValue == "112039":
                        out.append(str(child.TextValue))
            elif "ContentSequence" in item:
                walk(item.ContentSequence)

    walk(sr.ContentSequence)
    return out


def _case(directory: Path, postoperative: bool) -> Case:
    mr = SourceSeries(tuple(make_mr_series()))
    labels = make_labels()
    labels[12:14, 2:8, 10:60] = 3
    labels[2:5, 50:62, 8:20] = 3
    content = dataclasses.replace(
        make_report_content(mr, labels),
        rano=RanoMeasurement(rano_lesions(labels == 3, mr)),
        postoperative=postoperative,
    )
    written = write_results(
        directory / "results",
        content,
        source=mr,
        segmentation=SegmentationResult(labels, SEG_MODEL),
    )
    files = []
    for i, ds in enumerate(mr.datasets):
        path = directory / "mr" / f"{i:03d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    files += [o.path for o in written.objects]
    by_kind = {o.kind: pydicom.dcmread(o.path) for o in written.objects if o.kind in ("sr", "seg")}
    return Case(
        study_uid=str(mr.datasets[0].StudyInstanceUID),
        mr_uids=frozenset(str(ds.SOPInstanceUID) for ds in mr.datasets),
        files=tuple(files),
        tracking=tuple(_tracking(by_kind["sr"])),
        segments=tuple(str(s.SegmentLabel) for s in by_kind["seg"].SegmentSequence),
    )


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require_viewer()
    server = start_orthanc(tmp_path_factory.mktemp("orthanc-dicomweb"), dicomweb=True)
    try:
        yield server
    finally:
        server.stop()


def _upload(pacs: Any, files: tuple[Path, ...]) -> None:
    pacs.clear()  # both cases share the fixture's study UID
    for path in files:
        request = urllib.request.Request(
            pacs.url + "/instances", data=path.read_bytes(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.loads(response.read())["Status"] in ("Success", "AlreadyStored")


def _keep(shot: Path) -> None:
    target = os.environ.get("RGCDS_VIEWER_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


@pytest.mark.parametrize("postoperative", [False, True], ids=["preoperative", "postoperative"])
def test_ohif_shows_segments_and_parses_every_measurement(
    pacs: Any, tmp_path: Path, postoperative: bool
) -> None:
    case = _case(tmp_path, postoperative)
    _upload(pacs, case.files)
    name = "postoperative" if postoperative else "preoperative"
    with ohif_server(pacs.url) as url, open_viewer(url, case.study_uid, display_sets=5) as page:
        state = wait_for(
            page, lambda s: any(d["modality"] == "SR" and d["loaded"] for d in s["displaySets"])
        )
        sets = {d["modality"]: d for d in state["displaySets"]}
        assert set(sets) == set(HANDLERS), state["displaySets"]
        for modality, handler in HANDLERS.items():
            assert sets[modality]["handler"] == handler
            assert not sets[modality]["unsupported"], modality

        show(page, "SR")  # OHIF parses an SR when a viewport shows it
        state = wait_for(
            page,
            lambda s: any(d["measurements"] for d in s["displaySets"] if d["modality"] == "SR"),
        )
        shot = tmp_path / f"ohif-{name}-sr.png"
        page.screenshot(path=str(shot))
        measurements = next(d for d in state["displaySets"] if d["modality"] == "SR")[
            "measurements"
        ]
        drawn = [m["tracking"] for m in measurements if m["loaded"]]
        assert [m["tracking"] for m in measurements] == list(case.tracking)
        rano = [m for m in measurements if m["tracking"].startswith("RANO lesion ")]
        assert [m["tracking"] for m in rano] == ["RANO lesion 1", "RANO lesion 2"]
        for lesion in rano:
            assert [(c["valueType"], c["graphicType"], c["points"]) for c in lesion["coords"]] == [
                ("SCOORD", "POLYLINE", 2),
                ("SCOORD", "POLYLINE", 2),
            ], lesion
            assert {c["sop"] for c in lesion["coords"]} <= case.mr_uids

        show(page, "SEG")
        state = wait_for(page, lambda s: bool(s["segmentations"]))
        assert [g["segments"] for g in state["segmentations"]] == [list(case.segments)]
        assert case.segments == ("Necrotic core", "Enhancing tumour", "Oedema") or postoperative
        shot = tmp_path / f"ohif-{name}-seg.png"
        page.screenshot(path=str(shot))
        _keep(shot)
    if not drawn:
        pytest.xfail(OHIF_SR_VIEWPORT)
    assert drawn == ["RANO lesion 1", "RANO lesion 2"]
