"""A study whose T1c is one Enhanced (Legacy Converted Enhanced) MR object, offline.

The phantom's single-frame T1c is converted by highdicom's ``LegacyConvertedEnhancedMRImage``
with its frames stored out of slice order and written in place of the single-frame files;
``run_study`` (what ``rgcds process`` runs) must write the SEG, SR, SC overlays and PDF. The
SEG has the one multi-frame source image, every SEG frame references a source frame and
sits at its plane position, and its masks are the pipeline's labels (placed by the labels'
own geometry, not by the writer's bookkeeping); every object passes dciodvfy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from rgcds.config import Settings, load_settings
from rgcds.pipeline import StudyContext, run_study
from rgcds.results.content import frame_macro
from rgcds.results.testing import write_enhanced_series
from tests.conftest import dciodvfy

pytestmark = pytest.mark.slow

MODELS = Path(__file__).resolve().parents[2] / "models"

# dciodvfy does not know our private coding scheme (declared in Coding Scheme Identification).
_ACCEPTED_WARNING = "Unrecognized defined term <99RGCDS>"


def _settings(tmp: Path) -> Settings:
    data = load_settings(None).model_dump()
    data["storage"]["root"] = str(tmp / "storage")
    data["storage"]["min_free_bytes"] = 0
    data["inference"]["models_root"] = str(MODELS)
    data["metrics"]["enabled"] = False
    return Settings(**data)


@pytest.fixture(scope="module")
def enhanced_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from rgcds.phantom import write_study

    root = tmp_path_factory.mktemp("enhanced-mr")
    study = write_study(root / "study", seed=1, size="small", with_pet=True)
    enhanced = write_enhanced_series(study.series_by_role("T1c").directory, shuffle_seed=7)
    ctx = StudyContext(inputs=(root / "study",), work_dir=root / "work", settings=_settings(root))
    outcome = run_study(ctx)
    objects = [(pydicom.dcmread(p), Path(p)) for _uid, p in outcome.written]
    return {
        "study": study,
        "ctx": ctx,
        "outcome": outcome,
        "source": pydicom.dcmread(enhanced),
        "objects": objects,
    }


def _of(run: dict[str, Any], modality: str, series_number: int | None = None) -> list[Any]:
    return [
        (ds, path)
        for ds, path in run["objects"]
        if ds.Modality == modality
        and (series_number is None or int(ds.SeriesNumber) == series_number)
    ]


def test_every_object_is_written(enhanced_run: dict[str, Any]) -> None:
    outcome = enhanced_run["outcome"]
    assert outcome.status == "complete", outcome.reason
    source = enhanced_run["source"]
    assert source.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4.4"
    assert int(source.NumberOfFrames) > 1
    assert len(_of(enhanced_run, "SEG", 9901)) == 1
    assert len(_of(enhanced_run, "SR", 9902)) == 1
    assert len(_of(enhanced_run, "OT", 9903)) >= 1
    assert len(_of(enhanced_run, "DOC")) == 1
    for ds, _path in enhanced_run["objects"]:
        assert ds.StudyInstanceUID == enhanced_run["study"].study_instance_uid


def test_seg_has_one_source_image_and_its_frames(enhanced_run: dict[str, Any]) -> None:
    ((seg, _path),) = _of(enhanced_run, "SEG", 9901)
    source = enhanced_run["source"]
    referenced = [
        i.ReferencedSOPInstanceUID
        for s in seg.ReferencedSeriesSequence
        for i in s.ReferencedInstanceSequence
    ]
    assert referenced == [source.SOPInstanceUID]
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    for item in seg.PerFrameFunctionalGroupsSequence:
        (derivation,) = item.DerivationImageSequence
        (ref,) = derivation.SourceImageSequence
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        frame = int(ref.ReferencedFrameNumber)
        assert 1 <= frame <= int(source.NumberOfFrames)
        position = frame_macro(source, frame, "PlanePositionSequence")
        assert position is not None
        np.testing.assert_allclose(
            [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient],
            [float(v) for v in position.ImagePositionPatient],
            atol=1e-4,
        )


def test_seg_masks_are_the_pipeline_labels(enhanced_run: dict[str, Any]) -> None:
    ((_seg, path),) = _of(enhanced_run, "SEG", 9901)
    seg = hd.seg.segread(path)
    labels_path = enhanced_run["ctx"].work_dir / "segmentation" / "labels_native.nii.gz"
    image = sitk.ReadImage(str(labels_path))
    labels = sitk.GetArrayFromImage(image)
    origins = np.array(
        [image.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(labels.shape[0])]
    )
    # NIfTI/ITK physical points are LPS like DICOM.
    value = {1: 1, 2: 3, 3: 2}
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), *labels.shape[1:])
    covered: set[tuple[int, int]] = set()
    for index, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        position = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        k = int(np.argmin(np.linalg.norm(origins - position, axis=1)))
        np.testing.assert_allclose(origins[k], position, atol=1e-3)
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        np.testing.assert_array_equal(pixels[index].astype(bool), labels[k] == value[number])
        covered.add((k, number))
    for number, label in value.items():
        for k in np.flatnonzero((labels == label).any(axis=(1, 2))):
            assert (int(k), number) in covered


def _content(ds: pydicom.Dataset) -> list[pydicom.Dataset]:
    items = []
    for item in ds.get("ContentSequence", []):
        items.append(item)
        items += _content(item)
    return items


def test_sr_references_the_multiframe_image_with_frame_numbers(
    enhanced_run: dict[str, Any],
) -> None:
    ((sr, _path),) = _of(enhanced_run, "SR", 9902)
    source = enhanced_run["source"]
    sources = [
        item
        for item in _content(sr)
        if "ConceptNameCodeSequence" in item
        and item.ConceptNameCodeSequence[0].CodeMeaning == "Source Image for Segmentation"
    ]
    assert sources, "the SR references no source image of a segment"
    for item in sources:
        ref = item.ReferencedSOPSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        frames = ref.ReferencedFrameNumber
        frames = list(frames) if isinstance(frames, pydicom.multival.MultiValue) else [frames]
        assert frames and all(1 <= int(f) <= int(source.NumberOfFrames) for f in frames)
    evidence = {
        s.ReferencedSOPInstanceUID
        for e in sr.CurrentRequestedProcedureEvidenceSequence
        for series in e.ReferencedSeriesSequence
        for s in series.ReferencedSOPSequence
    }
    assert source.SOPInstanceUID in evidence


def test_overlays_reference_frames_of_the_multiframe_image(enhanced_run: dict[str, Any]) -> None:
    source = enhanced_run["source"]
    for sc, _path in _of(enhanced_run, "OT"):
        (ref,) = sc.SourceImageSequence
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == source.SOPClassUID
        assert 1 <= int(ref.ReferencedFrameNumber) <= int(source.NumberOfFrames)


def test_dciodvfy_finds_no_errors(enhanced_run: dict[str, Any]) -> None:
    for ds, path in enhanced_run["objects"]:
        errors, warnings = dciodvfy(path)
        assert errors == [], (ds.Modality, errors)
        assert [w for w in warnings if _ACCEPTED_WARNING not in w] == [], (ds.Modality, warnings)
