"""The PDF summary's text: the PET page's tables as (item, value) rows (the SR's values),
the notes and page 1's prognosis lines without a survival curve.

Re-exported by :mod:`rgcds.results.pdf`.
"""

from __future__ import annotations

import textwrap

from rgcds.results.content import PetReport, ReportContent


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
