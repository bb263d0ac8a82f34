"""dcmqi, the converter 3D Slicer's QuantitativeReporting is built on, reads every SEG and SR
(issue 18, deliverable 6): ``segimage2itkimage`` turns each SEG into one image per segment
with the segment's label, and ``tid1500reader`` turns each SR into dcmqi's measurement JSON
with one entry per TID 1411 group of ours, each pointing at its SEG segment.

dcmqi 1.5.7 is the PyPI wheel (requirements-dev.lock). Any warning or error fails the test.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from rgcds.results import SegmentationResult, SourceSeries, write_results
from rgcds.results.testing import (
    SEG_MODEL,
    make_labels,
    make_mr_series,
    make_pet_images,
    make_pet_report,
    make_pet_series,
    make_report_content,
)

BIN = Path(sys.executable).parent

# dcmqi's warnings we accept: none (the radiomic features' sequence is each group's
# Measurement Method, where dcmqi reads it).
KNOWN_WARNINGS: set[str] = set()


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"dcmqi's {name} is missing (requirements-dev.lock installs dcmqi)")
        return found
    return str(path)


@pytest.fixture(scope="module", params=["preoperative", "postoperative", "mr-and-pet"])
def objects(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    mr = SourceSeries(tuple(make_mr_series()))
    labels = make_labels()
    content = make_report_content(mr, labels)
    pet_images = None
    if request.param == "postoperative":
        content = dataclasses.replace(content, postoperative=True)
    if request.param == "mr-and-pet":
        pet = SourceSeries(tuple(make_pet_series()))
        content = dataclasses.replace(content, pet=make_pet_report(pet))
        pet_images = make_pet_images(pet, mr)
    written = write_results(
        tmp_path_factory.mktemp(request.param),
        content,
        source=mr,
        segmentation=SegmentationResult(labels, SEG_MODEL),
        pet_images=pet_images,
    )
    return {
        "seg": [o.path for o in written.objects if o.kind in ("seg", "pet-seg", "pet-seg-mr")],
        "sr": [o.path for o in written.objects if o.kind == "sr"],
        "rano-sr": [o.path for o in written.objects if o.kind == "rano-sr"],
    }


def _run(command: list[str]) -> list[str]:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    lines = (proc.stdout + proc.stderr).splitlines()
    assert proc.returncode == 0, lines
    problems = [
        line
        for line in lines
        if line.lower().startswith(("error", "warning")) and line not in KNOWN_WARNINGS
    ]
    assert not problems, problems
    return lines


def test_segimage2itkimage_reads_every_segment(objects: dict, tmp_path: Path) -> None:
    tool = _tool("segimage2itkimage")
    assert objects["seg"]
    for k, path in enumerate(objects["seg"]):
        out = tmp_path / f"seg{k}"
        out.mkdir()
        _run(
            [
                tool,
                "--inputDICOM",
                str(path),
                "--outputDirectory",
                str(out),
                "--outputType",
                "nrrd",
                "--prefix",
                "s",
            ]
        )
        meta = json.loads((out / "s-meta.json").read_text())
        labels = [s["SegmentLabel"] for group in meta["segmentAttributes"] for s in group]
        ours = [str(s.SegmentLabel) for s in pydicom.dcmread(path).SegmentSequence]
        assert sorted(labels) == sorted(ours)
        assert len(list(out.glob("s-*.nrrd"))) == len(meta["segmentAttributes"])


def test_tid1500reader_finds_each_segment_group(objects: dict, tmp_path: Path) -> None:
    tool = _tool("tid1500reader")
    (path,) = objects["sr"]
    out = tmp_path / "sr.json"
    _run([tool, "--inputDICOM", str(path), "--outputMetadata", str(out)])
    measurements = json.loads(out.read_text())["Measurements"]
    referenced = [m for m in measurements if "ReferencedSegment" in m]
    # The tumour SEG's three segments come first, in segment order (Slicer indexes them so).
    assert [m["ReferencedSegment"] for m in referenced[:3]] == [1, 2, 3]
    for m in referenced:
        assert m["TrackingUniqueIdentifier"] and m["segmentationSOPInstanceUID"]
        assert m["measurementItems"], m["TrackingIdentifier"]


def test_tid1500reader_reads_the_rano_key_measurements(objects: dict, tmp_path: Path) -> None:
    tool = _tool("tid1500reader")
    for k, path in enumerate(objects["rano-sr"]):
        out = tmp_path / f"rano{k}.json"
        _run([tool, "--inputDICOM", str(path), "--outputMetadata", str(out)])
        measurements = json.loads(out.read_text())["Measurements"]
        assert measurements and all(
            m["TrackingIdentifier"].startswith("RANO lesion ") for m in measurements
        ), measurements
