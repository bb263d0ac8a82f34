"""The PDF summary (matplotlib) and its DICOM Encapsulated PDF wrapper.

highdicom has no Encapsulated PDF class, so the IOD (PS3.3 A.45.1: Patient, General Study,
Encapsulated Document Series, General Equipment, SC Equipment, Encapsulated Document,
SOP Common) is built with pydicom here and checked with ``dciodvfy`` in the tests.
"""

from __future__ import annotations

import io
import textwrap
from datetime import datetime

import pydicom
import structlog
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.table import Table
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, EncapsulatedPDFStorage, ExplicitVRLittleEndian

from rgcds import RESEARCH_USE_ONLY, __version__
from rgcds.results import codes
from rgcds.results._common import (
    MANUFACTURER,
    MODEL_NAME,
    SERIES_NUMBER,
    ObjectKind,
    series_description,
)
from rgcds.results.content import (
    AlgorithmInfo,
    PetReport,
    ReportContent,
    ReportStatus,
    SourceSeries,
)
from rgcds.results.sr import report_key

logger = structlog.get_logger(__name__)

DOCUMENT_TITLE = "rgcds glioblastoma analysis (research use only)"
PAGE_WIDTH_IN = 8.27
"""A4 width (inches) of every page."""
_RED = "#c00000"


def _table(
    ax: Axes,
    title: str,
    header: list[str],
    rows: list[list[str]],
    col_widths: list[float] | None = None,
) -> None:
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    if not rows:
        ax.text(0.0, 0.5, "(none)", fontsize=9, transform=ax.transAxes)
        return
    widths = col_widths or [1.0 / len(header)] * len(header)
    # Characters of 8 pt text a column holds, less the cell padding.
    axes_points = ax.get_position().width * PAGE_WIDTH_IN * 72.0
    chars = [max(8, int(0.85 * w * axes_points / 4.8)) for w in widths]
    body = [[_fit(cell, chars[i]) for i, cell in enumerate(row)] for row in rows]
    table = ax.table(
        cellText=body, colLabels=header, loc="upper left", cellLoc="left", colWidths=widths
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1.0, 1.25)
    for (row, _), cell in table.get_celld().items():
        lines = (body[row - 1][_].count("\n") + 1) if row > 0 else 1
        if lines > 1:
            cell.set_height(cell.get_height() * lines)


def _banner(fig: Figure, page: int) -> None:
    fig.text(
        0.5,
        0.975,
        "RESEARCH USE ONLY",
        ha="center",
        va="top",
        fontsize=18,
        color="white",
        fontweight="bold",
        bbox={"facecolor": _RED, "edgecolor": _RED, "boxstyle": "square,pad=0.4"},
    )
    fig.text(
        0.5,
        0.015,
        f"{RESEARCH_USE_ONLY}  rgcds {__version__}  page {page}",
        ha="center",
        fontsize=7,
        color=_RED,
    )


def _fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def pet_rows(pet: PetReport) -> list[list[str]]:
    """The PET figures as (item, value) rows, with the same values as the SR's PET group."""
    uptake = "SUVbw" if pet.is_suv else "a.u."
    rows = [
        ["Tracer", pet.tracer],
        ["Uptake units", pet.units],
        ["BTV threshold (TBR)", f"{pet.threshold_tbr:g}"],
        ["TBRmax", _fmt(pet.tbr_max)],
        ["TBRmean (BTV)", _fmt(pet.tbr_mean)],
        ["SUVmax", _fmt(pet.suv_max) if pet.is_suv else "- (not SUV calibrated)"],
        ["SUVmean (BTV)", _fmt(pet.suv_mean) if pet.is_suv else "- (not SUV calibrated)"],
        ["SUVpeak", _fmt(pet.suv_peak) if pet.is_suv else "- (not SUV calibrated)"],
        ["Background mean", f"{_fmt(pet.background_mean, 3)} {uptake}"],
        ["Background method", pet.background_method],
        ["BTV volume", _fmt(pet.btv_ml, 1, " ml")],
        ["CTV source", pet.ctv_source],
    ]
    if pet.btv_candidate_ml is not None and pet.btv_candidate_ml > pet.btv_ml + 0.05:
        rows.insert(-1, ["Above threshold, before the BTV rules",
                         _fmt(pet.btv_candidate_ml, 1, " ml")])
    if pet.ctv_ml is not None:
        rows.append(["CTV volume", _fmt(pet.ctv_ml, 1, " ml")
                     + (" (refused as implausible)" if pet.ctv_refused else "")])
    if pet.pet_only_reason is not None:
        rows.append(["Analysis", f"PET only (no MR): {pet.pet_only_reason}"])
    elif pet.registration is not None:
        passed = {True: "passed", False: "FAILED", None: "not checked"}[pet.registration.passed]
        rows.append(["PET-to-MR registration", f"{passed}, NMI {_fmt(pet.registration.nmi, 3)}"])
    return rows


def residual_rows(pet: PetReport) -> list[list[str]]:
    """The residual-tumour assessment as (item, value) rows (the SR's values)."""
    residual = pet.residual
    if residual is None:
        return []
    rows = [
        [
            "Residual tumour",
            f"{'Present' if residual.call else 'Absent'} "
            f"(probability {residual.probability:.2f}"
            + (f", threshold {residual.threshold:g})" if residual.threshold is not None else ")"),
        ]
    ]
    if residual.probability_pet is not None:
        rows.append(["Probability (PET model)", f"{residual.probability_pet:.2f}"])
    if residual.probability_radiomics is not None:
        rows.append(["Probability (radiomics model)", f"{residual.probability_radiomics:.2f}"])
    rows += [
        ["Model", f"{m.model_id} {m.model_version}, {m.describe_metric()}"] for m in residual.models
    ]
    return rows


def prognosis_rows(pet: PetReport) -> list[list[str]]:
    """The prognosis items as (item, value) rows (the SR's values)."""
    rows: list[list[str]] = []
    for item in pet.prognosis:
        name = item.endpoint[:1].upper() + item.endpoint[1:]
        rows += [
            [name, f"risk group {item.risk_group}, risk score {item.risk_score:.2f}"],
            ["  predicted median", _fmt(item.median_days, 0, " days")],
            ["  covariates used", ", ".join(item.covariates) or "-"],
            ["  MGMT status used", "yes" if item.mgmt_used else "no"],
            [
                "  model",
                f"{item.provenance.model_id} {item.provenance.model_version}, "
                f"{item.provenance.describe_metric()}",
            ],
        ]
    return rows


def _wrap(text: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(text, width)) or "-"


NOTE_LINES = 6
"""Lines of notes on the summary page; the SR carries every note in full."""


def _notes(notes: tuple[str, ...], width: int = 150) -> str:
    lines = textwrap.wrap("Notes: " + " | ".join(notes), width)
    if len(lines) > NOTE_LINES:
        lines = [*lines[: NOTE_LINES - 1], "... more notes in the SR report."]
    return "\n".join(lines)


def _fit(text: str, width_chars: int) -> str:
    """A table cell's text wrapped to about ``width_chars`` characters a line."""
    if len(text) <= width_chars:
        return text
    return "\n".join(textwrap.wrap(text, max(width_chars, 8))) or text


def _summary_without_curve(content: ReportContent) -> str:
    """Page 1's prognosis lines when there is no survival curve: the PET/MR prognosis and
    residual-tumour call when there are any (details on the PET page), else why not."""
    pet = content.pet
    lines: list[str] = []
    if pet is not None and pet.residual is not None:
        r = pet.residual
        rule = f", threshold {r.threshold:g}" if r.threshold is not None else ""
        lines.append(
            f"Residual tumour: {'present' if r.call else 'absent'} "
            f"(probability {r.probability:.2f}{rule})."
        )
    if pet is not None:
        for item in pet.prognosis:
            median = "" if item.median_days is None else f", median {item.median_days:.0f} days"
            lines.append(
                f"{item.endpoint[:1].upper() + item.endpoint[1:]}: risk group {item.risk_group}"
                f"{median} ({item.provenance.model_id} {item.provenance.model_version})."
            )
    if pet is not None and (lines or pet.prognosis):
        lines.append("Details on the PET page.")
    if not lines:
        lines.append("No survival prediction was made for this study.")
    return "\n".join(_wrap(line, 110) for line in lines)


def _pet_page(fig: Figure, pet: PetReport) -> None:
    title = "Amino-acid PET" + (" (PET only, no MR)" if pet.pet_only else " (PET/MR)")
    fig.text(0.06, 0.925, title, fontsize=15, fontweight="bold")
    widths = [0.32, 0.68]
    _table(
        fig.add_axes((0.06, 0.58, 0.88, 0.31)),
        "PET measurements",
        ["Item", "Value"],
        pet_rows(pet),
        widths,
    )
    _table(
        fig.add_axes((0.06, 0.40, 0.88, 0.14)),
        "Residual tumour",
        ["Item", "Value"],
        residual_rows(pet),
        widths,
    )
    _table(
        fig.add_axes((0.06, 0.08, 0.88, 0.28)),
        "Prognosis",
        ["Item", "Value"],
        prognosis_rows(pet),
        widths,
    )
    if pet.notes:
        fig.text(0.06, 0.045, _wrap("PET notes: " + " | ".join(pet.notes), 120), fontsize=7)


def render_pdf(content: ReportContent, algorithm: AlgorithmInfo | None = None) -> bytes:
    """Render the summary as PDF bytes (deterministic: no creation date is embedded).

    Parameters
    ----------
    content
        What to summarise.
    algorithm
        The segmentation model, shown with the volumes.

    Returns
    -------
    bytes
        A PDF of one to three A4 pages (:func:`render_pages`).
    """
    buffer = io.BytesIO()
    with PdfPages(
        buffer,
        metadata={
            "Title": DOCUMENT_TITLE,
            "Creator": f"rgcds {__version__}",
            "Producer": "rgcds",
            "CreationDate": None,
        },
    ) as pdf:
        for fig in render_pages(content, algorithm):
            pdf.savefig(fig)
    return buffer.getvalue()


def render_pages(content: ReportContent, algorithm: AlgorithmInfo | None = None) -> list[Figure]:
    """The PDF's pages as figures: the one-page summary (what was found, how sure, what was
    not done and why), the PET page when ``content.pet`` is set, the radiomic features."""
    pages: list[Figure] = []
    study = content.study
    fig = Figure(figsize=(8.27, 11.69))
    _banner(fig, 1)
    heading = "Glioblastoma radiogenomics summary"
    if content.postoperative:
        heading += " (post-operative)"
    fig.text(0.06, 0.925, heading, fontsize=15, fontweight="bold")
    fig.text(
        0.06,
        0.905,
        f"Patient ID {study.patient_id or '-'}   Study date {study.study_date or '-'}   "
        f"Accession {study.accession_number or '-'}",
        fontsize=9,
    )
    status = content.status.value
    if content.reason:
        status += f": {content.reason}"
    fig.text(
        0.06,
        0.885,
        f"Analysis status: {status}",
        fontsize=9,
        color="black" if content.status is ReportStatus.COMPLETE else _RED,
    )
    series_rows = [[s.role.value, s.series_description or "-"] for s in content.series_used]
    _table(
        fig.add_axes((0.06, 0.77, 0.88, 0.09)), "Series used", ["Role", "Series"], series_rows
    )
    if content.status is ReportStatus.COMPLETE:
        seg_name = f"{algorithm.display_name} {algorithm.version}" if algorithm else "-"
        volume_rows = [
            [
                f"{codes.region_label(m.region, content.postoperative)} ({m.region.value})",
                f"{m.volume_ml:.1f}",
            ]
            for m in content.regions
        ]
        _table(
            fig.add_axes((0.06, 0.58, 0.4, 0.16)),
            f"Volumes (model {seg_name})",
            ["Region", "Volume (ml)"],
            volume_rows,
        )
        rano_rows: list[list[str]] = []
        if content.rano is not None:
            rano_rows = [
                [
                    str(le.lesion),
                    f"{le.longest_diameter_mm:.1f}",
                    f"{le.perpendicular_diameter_mm:.1f}",
                    f"{le.product_mm2:.0f}",
                ]
                for le in content.rano.lesions
            ]
            rano_rows.append(["sum", "", "", f"{content.rano.sum_of_products_mm2:.0f}"])
        _table(
            fig.add_axes((0.52, 0.58, 0.42, 0.16)),
            "RANO bidimensional",
            ["Lesion", "Longest (mm)", "Perp. (mm)", "Product (mm²)"],
            rano_rows,
        )
        loc = content.location
        loc_text = (
            "-"
            if loc is None
            else (
                f"{loc.hemisphere.value}; "
                f"{', '.join(lobe.value for lobe in loc.lobes) or 'brain'}; "
                f"crosses midline: {'yes' if loc.crosses_midline else 'no'}"
            )
        )
        fig.text(0.06, 0.555, f"Location: {loc_text}", fontsize=9)
        pred_rows = [
            [
                p.target,
                f"{p.predicted_label} (p={p.probability:.2f})",
                f"{p.provenance.model_id} {p.provenance.model_version}",
                p.provenance.describe_metric(),
            ]
            for p in content.predictions
        ]
        _table(
            fig.add_axes((0.06, 0.40, 0.88, 0.13)),
            "Marker predictions",
            ["Target", "Prediction", "Model", "Validation"],
            pred_rows,
        )
        ax = fig.add_axes((0.1, 0.15, 0.8, 0.19))
        surv = content.survival
        if surv is not None and surv.curve:
            days = [t for t, _ in surv.curve]
            probs = [s for _, s in surv.curve]
            ax.step(days, probs, where="post", color="#1f4e79")
            if surv.median_os_days is not None:
                ax.axvline(surv.median_os_days, color="grey", linestyle="--", linewidth=0.8)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("Days")
            ax.set_ylabel("Predicted survival probability")
            median = "-" if surv.median_os_days is None else f"{surv.median_os_days:.0f} days"
            ax.set_title(
                f"Predicted overall survival: risk {surv.risk_group}, relative risk "
                f"{surv.relative_risk:.2f}, median {median}\nmodel {surv.provenance.model_id} "
                f"{surv.provenance.model_version}, {surv.provenance.describe_metric()}",
                fontsize=9,
                loc="left",
            )
            ax.grid(alpha=0.3)
        else:
            ax.axis("off")
            ax.text(0, 1.0, _summary_without_curve(content), fontsize=9, va="top")
    pet = content.pet if content.status is ReportStatus.COMPLETE else None
    if pet is not None:
        fig.text(0.6, 0.885, f"Amino-acid PET ({pet.tracer}): see page 2.", fontsize=9)
    if content.notes:
        fig.text(0.06, 0.03, _notes(content.notes), fontsize=6.5, va="bottom")
    pages.append(fig)
    page = 1
    if pet is not None:
        page += 1
        fig = Figure(figsize=(8.27, 11.69))
        _banner(fig, page)
        _pet_page(fig, pet)
        pages.append(fig)
    if content.status is ReportStatus.COMPLETE and content.features:
        page += 1
        fig = Figure(figsize=(8.27, 11.69))
        _banner(fig, page)
        rows = [
            [f.region.value, f.sequence.value, f.ibsi_name or f.name, f"{f.value:.4g}"]
            for f in content.features[:45]
        ]
        _table(
            fig.add_axes((0.06, 0.1, 0.88, 0.8)),
            "Selected radiomic features",
            ["Region", "Sequence", "Feature", "Value"],
            rows,
        )
        pages.append(fig)
    return pages


def _renderer(fig: Figure) -> RendererAgg:
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer: RendererAgg = canvas.get_renderer()  # type: ignore[no-untyped-call]
    return renderer


def _text_boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    """Every visible, non-empty text of ``fig`` with its box in display coordinates."""
    renderer = _renderer(fig)
    fig.draw(renderer)
    undrawn: set[int] = set()  # tick labels outside the axis' view interval are not drawn
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo <= tick.get_loc() <= hi:
                    undrawn.update({id(tick.label1), id(tick.label2)})
    boxes: list[tuple[str, Bbox]] = []
    for artist in fig.findobj(Text):
        if (
            not isinstance(artist, Text)
            or id(artist) in undrawn
            or not artist.get_visible()
            or not artist.get_text().strip()
        ):
            continue
        boxes.append((artist.get_text(), artist.get_window_extent(renderer)))
    return boxes


def layout_problems(fig: Figure, tolerance: float = 0.5) -> list[str]:
    """Texts of a rendered page that leave the page or overlap another text.

    Each text's box (in display units, ``tolerance`` points of slack) must lie inside the
    page and must not intersect any other text's box. Table cells are checked by their text,
    so a value too long for its column overlaps its neighbour and is reported.
    """
    page = fig.bbox
    boxes = _text_boxes(fig)
    problems = []
    for text, box in boxes:
        if (
            box.x0 < page.x0 - tolerance
            or box.y0 < page.y0 - tolerance
            or box.x1 > page.x1 + tolerance
            or box.y1 > page.y1 + tolerance
        ):
            problems.append(f"off the page: {text[:60]!r}")
    renderer = _renderer(fig)
    for table in fig.findobj(Table):
        if not isinstance(table, Table):
            continue
        for cell in table.get_celld().values():
            cell_text = cell.get_text()
            if not cell_text.get_text().strip():
                continue
            inner = cell_text.get_window_extent(renderer)
            outer = cell.get_window_extent(renderer)
            if inner.x1 > outer.x1 + tolerance or inner.x0 < outer.x0 - tolerance:
                problems.append(f"wider than its cell: {cell_text.get_text()[:60]!r}")
    for i, (text_a, a) in enumerate(boxes):
        for text_b, b in boxes[i + 1 :]:
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            if overlap_x > tolerance and overlap_y > tolerance:
                problems.append(f"overlap: {text_a[:40]!r} / {text_b[:40]!r}")
    return problems


def build_encapsulated_pdf(
    content: ReportContent,
    *,
    source: SourceSeries | None = None,
    algorithm: AlgorithmInfo | None = None,
) -> pydicom.Dataset:
    """Build the Encapsulated PDF instance of the summary.

    Parameters
    ----------
    content
        What to summarise (also for a study that was not analysed).
    source, algorithm
        The reference series and segmentation model; UIDs derive from them as for the SEG
        (or from the study alone when the study was not analysed).

    Returns
    -------
    pydicom.Dataset
        With file meta, in the source study, a new series (Modality DOC), BurnedInAnnotation
        YES, "research use only" in the title and series description.
    """
    key = report_key(content, source, algorithm)
    document = render_pdf(content, algorithm)
    study = content.study
    when = content.analysed_at or datetime.now()
    sop_uid = UID(key.instance_uid(ObjectKind.PDF))

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = when.strftime("%H%M%S")
    # Patient and General Study
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.patient_birth_date
    ds.PatientSex = study.patient_sex
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.ReferringPhysicianName = study.referring_physician_name
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    # Encapsulated Document Series
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = key.series_uid(ObjectKind.PDF)
    ds.SeriesNumber = SERIES_NUMBER[ObjectKind.PDF]
    ds.SeriesDescription = series_description(ObjectKind.PDF, content.postoperative)
    ds.SeriesDate = when.strftime("%Y%m%d")
    ds.SeriesTime = when.strftime("%H%M%S")
    # General Equipment and SC Equipment
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = __version__
    ds.ConversionType = "SYN"
    # Encapsulated Document
    ds.InstanceNumber = 1
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.RecognizableVisualFeatures = "NO"
    ds.DocumentTitle = DOCUMENT_TITLE
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(document)
    ds.EncapsulatedDocument = document + (b"\x00" if len(document) % 2 else b"")
    logger.info(
        "pdf_built",
        study_uid=study.study_instance_uid,
        sop_instance_uid=sop_uid,
        bytes=len(document),
    )
    return ds


__all__ = [
    "DOCUMENT_TITLE",
    "build_encapsulated_pdf",
    "layout_problems",
    "pet_rows",
    "prognosis_rows",
    "render_pages",
    "render_pdf",
    "residual_rows",
]
