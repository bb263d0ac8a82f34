"""The radiologist's viewer reads what rgcds writes (issue 18, deliverable 6).

A real Orthanc with its DICOMweb plugin holds the source MR series and the result objects of
a pre-operative and a post-operative report (the test fixtures of ``rgcds.results.testing``,
RANO lesions placed on their slices). The OHIF v3 viewer (the npm registry's prebuilt
``@ohif/app``) opens the study in headless Chromium; what it displays is read from OHIF's own
services, not from our files:

* every object gets one of OHIF's SOP class handlers (image stack, SEG, SR, PDF);
* OHIF draws the RANO key-measurement SR: each lesion's long and short axes, two-point
  SCOORD polylines, placed on its source MR image;
* the SEG loads as one segmentation with the three sub-region segments, by their labels;
* OHIF's SR parser finds every measurement group of the full report, in our order.

Screenshots of the RANO axes and of the SEG on the MR are kept in the test's folder (and copied to
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


REPORT_SERIES, RANO_SERIES = 9902, 9907  # the full TID 1500 report; the RANO key measurements


@dataclasses.dataclass(frozen=True)
class Case:
    study_uid: str
    mr_uids: frozenset[str]
    files: tuple[Path, ...]
    tracking: tuple[str, ...]  # the full SR's measurement groups, in our order
    rano_tracking: tuple[str, ...]  # the RANO key-measurement SR's groups
    segments: tuple[str, ...]  # the SEG's segment labels, in segment-number order


def _tracking(sr: pydicom.Dataset) -> list[str]:
    """The tracking identifiers of the SR's measurement groups, once per tracking UID (OHIF
    merges the groups of one UID, e.g. a segment's volume and its radiomics groups)."""
    out: list[str] = []
    seen: set[str] = set()

    def walk(items: Any) -> None:
        for item in items:
            name = item.get("ConceptNameCodeSequence")
            if name and name[0].CodeValue == "125007":  # Measurement Group
                found = {c.ConceptNameCodeSequence[0].CodeValue: c for c in item.ContentSequence}
                uid = str(found["112040"].UID)  # Tracking Unique Identifier
                if uid not in seen:
                    seen.add(uid)
                    out.append(str(found["112039"].TextValue))
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
        segmentation=SegmentationResult(labels, SEG_MODEL, postoperative=postoperative),
    )
    files = []
    for i, ds in enumerate(mr.datasets):
        path = directory / "mr" / f"{i:03d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    files += [o.path for o in written.objects]
    by_kind = {
        o.kind: pydicom.dcmread(o.path)
        for o in written.objects
        if o.kind in ("sr", "rano-sr", "seg")
    }
    return Case(
        study_uid=str(mr.datasets[0].StudyInstanceUID),
        mr_uids=frozenset(str(ds.SOPInstanceUID) for ds in mr.datasets),
        files=tuple(files),
        tracking=tuple(_tracking(by_kind["sr"])),
        rano_tracking=tuple(_tracking(by_kind["rano-sr"])),
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
    with ohif_server(pacs.url) as url, open_viewer(url, case.study_uid, display_sets=6) as page:
        state = wait_for(page, lambda s: len(s["displaySets"]) >= 6)
        sets = {(d["modality"], int(d["seriesNumber"] or 0)): d for d in state["displaySets"]}
        assert sorted({m for m, _ in sets}) == sorted(HANDLERS), state["displaySets"]
        assert (("SR", REPORT_SERIES) in sets) and (("SR", RANO_SERIES) in sets), sets.keys()
        for (modality, _), display_set in sets.items():
            assert display_set["handler"] == HANDLERS[modality]
            assert not display_set["unsupported"], modality

        # The RANO key measurements: OHIF draws each lesion's long and short axes on its slice.
        show(page, "SR", RANO_SERIES)
        state = wait_for(page, lambda s: any(m["loaded"] for m in _measurements(s, RANO_SERIES)))
        page.wait_for_timeout(3000)  # let the viewport render the annotations
        shot = tmp_path / f"ohif-{name}-rano.png"
        page.screenshot(path=str(shot))
        _keep(shot)
        drawn = _measurements(state, RANO_SERIES)
        assert case.rano_tracking == ("RANO lesion 1", "RANO lesion 2")
        assert [m["tracking"] for m in drawn] == list(case.rano_tracking)
        assert all(m["loaded"] for m in drawn), drawn  # each one placed on its MR image
        for lesion in drawn:
            assert [(c["valueType"], c["graphicType"], c["points"]) for c in lesion["coords"]] == [
                ("SCOORD", "POLYLINE", 2),
                ("SCOORD", "POLYLINE", 2),
            ], lesion
            assert {c["sop"] for c in lesion["coords"]} <= case.mr_uids
            assert [label for label, _ in lesion["labels"]][:2] == ["Long axis", "Short axis"]

        show(page, "SEG")
        state = wait_for(page, lambda s: bool(s["segmentations"]))
        assert [g["segments"] for g in state["segmentations"]] == [list(case.segments)]
        assert case.segments == (
            ("Resection cavity", "Residual enhancing tumour", "Oedema")
            if postoperative
            else ("Necrotic core", "Enhancing tumour", "Oedema")
        )
        shot = tmp_path / f"ohif-{name}-seg.png"
        page.screenshot(path=str(shot))
        _keep(shot)

        # The full report: OHIF's SR parser finds every group, in our order (it draws none of
        # them: its SR viewport stops at the first group without image coordinates, which is
        # why the RANO key measurements have their own SR).
        show(page, "SR", REPORT_SERIES)
        state = wait_for(page, lambda s: bool(_measurements(s, REPORT_SERIES)))
        measurements = _measurements(state, REPORT_SERIES)
        assert [m["tracking"] for m in measurements] == list(case.tracking)
        rano = [m for m in measurements if m["tracking"].startswith("RANO lesion ")]
        assert [m["tracking"] for m in rano] == ["RANO lesion 1", "RANO lesion 2"]
        for lesion in rano:
            assert len(lesion["coords"]) == 2
            assert {c["sop"] for c in lesion["coords"]} <= case.mr_uids


def _measurements(state: dict[str, Any], series: int) -> list[dict[str, Any]]:
    """The measurements OHIF parsed from the SR display set of series number ``series``."""
    for display_set in state["displaySets"]:
        if display_set["modality"] == "SR" and int(display_set["seriesNumber"] or 0) == series:
            return list(display_set["measurements"])
    return []
