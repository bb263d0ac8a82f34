"""Post-operative studies: the result objects name and code resection cavity, oedema and
residual enhancing tumour instead of the pre-operative BraTS regions."""

from __future__ import annotations

import dataclasses
from typing import Any

import highdicom as hd
import numpy as np
import pytest

from rgcds.results import (
    Region,
    ReportContent,
    SegmentationResult,
    SourceSeries,
    build_encapsulated_pdf,
    build_overlays,
    build_report,
    build_segmentation,
    codes,
)
from rgcds.results import pdf as pdf_module
from rgcds.results.testing import (
    ANALYSED_AT,
    SEG_MODEL,
    make_labels,
    make_mr_series,
    make_report_content,
)


@pytest.fixture(scope="module")
def source() -> SourceSeries:
    return SourceSeries(tuple(make_mr_series()))


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return make_labels()


@pytest.fixture(scope="module")
def postop_seg(source: SourceSeries, labels: np.ndarray) -> hd.seg.Segmentation:
    result = SegmentationResult(labels, SEG_MODEL, postoperative=True)
    return build_segmentation(source, result, analysed_at=ANALYSED_AT)


@pytest.fixture(scope="module")
def postop_content(source: SourceSeries, labels: np.ndarray) -> ReportContent:
    return dataclasses.replace(make_report_content(source, labels), postoperative=True)


def _sr_text(sr: Any) -> str:
    """Every code meaning and text value of the SR's content tree, as one string."""
    parts: list[str] = []

    def walk(items: Any) -> None:
        for item in items:
            for attr in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
                for code in item.get(attr, []):
                    parts.append(str(code.CodeMeaning))
            if "TextValue" in item:
                parts.append(str(item.TextValue))
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    return "\n".join(parts)


def test_defaults_are_preoperative(source: SourceSeries, labels: np.ndarray) -> None:
    assert SegmentationResult(labels, SEG_MODEL).postoperative is False
    assert make_report_content(source, labels).postoperative is False
    assert codes.region_label(Region.NCR) == "Necrotic core"


def test_postop_seg_segments_are_named_and_coded_as_the_model_card(
    postop_seg: hd.seg.Segmentation,
) -> None:
    segments = postop_seg.SegmentSequence
    assert [s.SegmentLabel for s in segments] == [
        "Resection cavity",
        "Residual enhancing tumour",
        "Oedema",
    ]
    types = [
        (
            s.SegmentedPropertyTypeCodeSequence[0].CodeValue,
            s.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator,
        )
        for s in segments
    ]
    assert types == [("91806002", "SCT"), ("C113842", "NCIt"), ("79654002", "SCT")]
    for s in segments:
        category = s.SegmentedPropertyCategoryCodeSequence[0]
        assert (category.CodeValue, category.CodingSchemeDesignator) == ("49755003", "SCT")
    assert postop_seg.SeriesDescription == "rgcds post-operative SEG (research use only)"
    assert "Necrotic" not in str(postop_seg.ContentDescription)


def test_preop_seg_is_unchanged(source: SourceSeries, labels: np.ndarray) -> None:
    seg = build_segmentation(source, SegmentationResult(labels, SEG_MODEL), analysed_at=ANALYSED_AT)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == [
        "Necrotic core",
        "Enhancing tumour",
        "Oedema",
    ]
    assert seg.SeriesDescription == "rgcds tumour SEG (research use only)"


def test_postop_sr_names_the_cavity_not_a_necrotic_core(
    postop_seg: hd.seg.Segmentation, postop_content: ReportContent, source: SourceSeries
) -> None:
    sr = build_report(postop_content, seg=postop_seg, source=source, algorithm=SEG_MODEL)
    text = _sr_text(sr)
    for name in (
        "Resection cavity (RC)",
        "Residual enhancing tumour (ET)",
        "Oedema (ED)",
        "Cavity + residual enhancement (RC+ET)",
        "Whole lesion (WL)",
        "Body cavity",
        "Enhancing Lesion",
    ):
        assert name in text, name
    for name in ("Necrotic core", "Tumour core", "Whole tumour", "Necrosis"):
        assert name not in text, name
    assert "post-operative" in sr.SeriesDescription


def test_preop_sr_is_unchanged(
    source: SourceSeries, labels: np.ndarray, postop_content: ReportContent
) -> None:
    seg = build_segmentation(source, SegmentationResult(labels, SEG_MODEL), analysed_at=ANALYSED_AT)
    content = make_report_content(source, labels)
    text = _sr_text(build_report(content, seg=seg, source=source, algorithm=SEG_MODEL))
    assert "Necrotic core (NCR)" in text
    assert "Whole tumour (WT)" in text
    assert "Resection cavity" not in text


def test_postop_pdf_table_uses_the_postoperative_names(
    postop_content: ReportContent, source: SourceSeries, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[list[str]] = []
    original = pdf_module._table

    def spy(
        ax: Any, title: str, header: list[str], body: list[list[str]], *a: Any, **k: Any
    ) -> Any:
        rows.extend(body)
        return original(ax, title, header, body, *a, **k)

    monkeypatch.setattr(pdf_module, "_table", spy)
    ds = build_encapsulated_pdf(postop_content, source=source, algorithm=SEG_MODEL)
    cells = {cell for row in rows for cell in row}
    assert "Resection cavity (RC)" in cells
    assert "Whole lesion (WL)" in cells
    assert not any("Necrotic" in cell for cell in cells)
    assert ds.SeriesDescription == "rgcds post-operative report PDF (research use only)"


def test_postop_overlays_differ_from_preop(source: SourceSeries, labels: np.ndarray) -> None:
    slices = [int(np.argmax((labels > 0).sum(axis=(1, 2))))]
    pre = build_overlays(source, SegmentationResult(labels, SEG_MODEL), slices=slices)
    post = build_overlays(
        source, SegmentationResult(labels, SEG_MODEL, postoperative=True), slices=slices
    )
    assert "post-operative" in post[0].SeriesDescription
    assert "post-operative" not in pre[0].SeriesDescription
    assert not np.array_equal(pre[0].pixel_array, post[0].pixel_array)  # legend text
