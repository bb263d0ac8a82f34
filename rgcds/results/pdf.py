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
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
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
from rgcds.results.pdf_layout import layout_problems
from rgcds.results.pdf_rows import NOTE_LINES as NOTE_LINES
from rgcds.results.pdf_rows import (
    _notes,
    _summary_without_curve,
    _wrap,
    pet_rows,
    prognosis_rows,
    residual_rows,
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


def _fit(text: str, width_chars: int) -> str:
    """A table cell's text wrapped to about ``width_chars`` characters a line."""
    if len(text) <= width_chars:
        return text
    return "\n".join(textwrap.wrap(text, max(width_chars, 8))) or text


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
                codes.region_tag(m.region, content.postoperative),
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
