"""The foundation harness: a generated study goes to a real Orthanc with dcmtk's storescu."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.conftest import OrthancServer, require_tool

pytestmark = [pytest.mark.orthanc, pytest.mark.dcmtk]


def test_storescu_sends_phantom_study_to_orthanc(
    orthanc: OrthancServer, phantom_study: Any
) -> None:
    storescu = require_tool("storescu", "dcmtk")
    orthanc.clear()
    dicom_root = phantom_study.series[0].directory.parent
    result = subprocess.run(
        [storescu, "-aet", "SCANNER1", "-aec", orthanc.aet, "+sd", "+r",
         "127.0.0.1", str(orthanc.dicom_port), str(dicom_root)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr

    expected = sum(s.n_instances for s in phantom_study.series)
    assert len(orthanc.instances()) == expected
    studies = orthanc.studies()
    assert len(studies) == 1
    study = orthanc.get(f"/studies/{studies[0]}")
    assert study["MainDicomTags"]["StudyInstanceUID"] == phantom_study.study_instance_uid
    series_uids = {orthanc.get(f"/series/{s}")["MainDicomTags"]["SeriesInstanceUID"]
                   for s in study["Series"]}
    assert series_uids == {s.series_instance_uid for s in phantom_study.series}
    # The modalities a radiologist expects: four MR series and the MET-PET.
    modalities = sorted(orthanc.get(f"/series/{s}")["MainDicomTags"]["Modality"]
                        for s in study["Series"])
    assert modalities == ["MR", "MR", "MR", "MR", "PT"]


def test_orthanc_rest_reads_back_patient_of_phantom(
    orthanc: OrthancServer, phantom_study: Any
) -> None:
    storescu = require_tool("storescu", "dcmtk")
    orthanc.clear()
    first_series = phantom_study.series[0].directory
    subprocess.run(
        [storescu, "-aet", "SCANNER1", "-aec", orthanc.aet, "+sd",
         "127.0.0.1", str(orthanc.dicom_port), str(first_series)],
        capture_output=True, timeout=300, check=True,
    )
    patients = orthanc.get("/patients")
    assert len(patients) == 1
    tags = orthanc.get(f"/patients/{patients[0]}")["MainDicomTags"]
    assert tags["PatientName"] == phantom_study.patient_name
