"""The PDF summary as a reading room sees it (issue 18): every page rendered, no text off the
page, no text over another, no value wider than its table cell; the summary comes first."""

from __future__ import annotations

import dataclasses
import re

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from rgcds.results import ReportContent, SourceSeries, StudyIdentity
from rgcds.results.content import (
    LesionDiameters,
    ModelProvenance,
    Prediction,
    RanoMeasurement,
    SeriesRole,
    SeriesUsed,
)
from rgcds.results.pdf import layout_problems, render_pages, render_pdf
from rgcds.results.testing import (
    SEG_MODEL,
    make_labels,
    make_mr_series,
    make_not_analysed_content,
    make_pet_only_content,
    make_pet_report,
    make_pet_series,
    make_report_content,
)


def _cases() -> dict[str, ReportContent]:
    source = SourceSeries(tuple(make_mr_series()))
    pet_source = SourceSeries(tuple(make_pet_series()))
    preop = make_report_content(source, make_labels())
    postop = dataclasses.replace(
        preop, postoperative=True, pet=make_pet_report(pet_source), survival=None
    )
    long_model = ModelProvenance(
        "mgmt-radiomics-logistic-regression-phantom-demo",
        "0.3.1+build.20240102",
        "AUC",
        0.71,
        (0.62, 0.80),
    )
    worst = dataclasses.replace(
        postop,
        notes=tuple(
            f"Note {i}: the FLAIR series was resampled to the T1c grid because its slice "
            "thickness differs by more than 1 mm from that of the reference series."
            for i in range(8)
        ),
        series_used=tuple(
            SeriesUsed(
                role,
                "1.2.3.4.5.6.7.8.9",
                "Ax T1 MPRAGE post contrast GADOVIST 0.1 mmol/kg 3D SAG REFORMATTED ISO 1MM",
            )
            for role in SeriesRole
        ),
        rano=RanoMeasurement(tuple(LesionDiameters(i, 40.0 - i, 30.0 - i, i) for i in range(1, 6))),
        predictions=(
            *(dataclasses.replace(p, provenance=long_model) for p in preop.predictions),
            Prediction("EGFR amplification", "amplified", "not amplified", 0.5, long_model),
        ),
    )
    return {
        "preoperative": preop,
        "postoperative with PET": postop,
        "long texts": worst,
        "not analysed": make_not_analysed_content(StudyIdentity.from_dataset(source.datasets[0])),
        "PET only": make_pet_only_content(pet_source),
    }


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_every_page_keeps_its_text_inside_and_apart(name: str) -> None:
    pages = render_pages(CASES[name], SEG_MODEL)
    assert pages
    for number, page in enumerate(pages, start=1):
        assert layout_problems(page) == [], (name, number)
    document = render_pdf(CASES[name], SEG_MODEL)
    assert document.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", document)) == len(pages)


def test_the_summary_page_says_what_was_found_and_how_sure() -> None:
    content = CASES["postoperative with PET"]
    page = render_pages(content, SEG_MODEL)[0]
    text = " ".join(t.get_text() for t in page.findobj(Text) if isinstance(t, Text))
    assert "Residual tumour: present" in text  # the call, not "No survival prediction."
    assert "No survival prediction" not in text
    assert "Time to recurrence: risk group" in text


def test_the_checker_sees_overlap_and_clipping() -> None:
    fig = Figure(figsize=(8.27, 11.69))
    fig.text(0.1, 0.5, "A heading that runs on", fontsize=12)
    fig.text(0.12, 0.5, "and a table value", fontsize=12)
    fig.text(0.9, 0.2, "a long line that runs off the right edge of the page", fontsize=10)
    problems = layout_problems(fig)
    assert any(p.startswith("overlap") for p in problems)
    assert any(p.startswith("off the page") for p in problems)
