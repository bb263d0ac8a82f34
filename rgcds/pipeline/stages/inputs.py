"""Index, classify and convert: the study's series found, given roles and read as volumes."""


from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from rgcds.analysis.pet import PetGeometryError
from rgcds.exceptions import (
    DicomInputError,
    MissingSequenceError,
)
from rgcds.pipeline.context import StudyContext
from rgcds.study import (
    SequenceSelection,
    SeriesInfo,
    SeriesRole,
    StudyIndex,
    Volume,
    load_volume,
    select_sequences,
)
from rgcds.study import index_study as _index_study

logger = structlog.get_logger(__name__)

#: The roles the analysis converts, in the order they are reported.
ANALYSIS_ROLES: tuple[SeriesRole, ...] = (
    SeriesRole.T1,
    SeriesRole.T1C,
    SeriesRole.T2,
    SeriesRole.FLAIR,
    SeriesRole.PET,
)



# --- index and classify ---------------------------------------------------------------


def index(ctx: StudyContext) -> StudyIndex:
    """Group the study's instances by series (headers only).

    The series of a paired study (``ctx.partner_inputs``: the MR study of a PET/CT study,
    or the reverse) are indexed with the study's own.

    Raises
    ------
    DicomInputError
        If the inputs hold no DICOM image, or more studies than the study and its partner.
    """
    study_index = _index_study((*ctx.inputs, *ctx.partner_inputs))
    uids = study_index.study_instance_uids
    expected = 2 if ctx.partner_inputs else 1
    if len(uids) != expected:
        raise DicomInputError(
            f"The inputs hold {len(uids)} studies ({', '.join(uids) or 'none'}); "
            + (
                "give the files of exactly one study."
                if expected == 1
                else "expected the study and its paired study of the same patient."
            )
        )
    logger.info("study indexed", n_series=len(study_index.series), study_uid=uids[0])
    return study_index


def classify(ctx: StudyContext, study_index: StudyIndex) -> SequenceSelection:
    """Classify every series and choose one per role; writes ``classification.json``."""
    selection = select_sequences(study_index, ctx.settings.classification)
    record = {
        "chosen": {
            role.value: series.series_instance_uid for role, series in selection.chosen.items()
        },
        "series": [
            {
                "series_instance_uid": c.series_instance_uid,
                "role": c.role.value,
                "confidence": round(c.confidence, 3),
                "reasons": list(c.reasons),
                "tracer": c.tracer.value if c.tracer is not None else None,
            }
            for c in selection.classifications
        ],
        "ambiguities": list(selection.ambiguities),
    }
    ctx.path("classification.json").write_text(json.dumps(record, indent=2))
    logger.info(
        "sequences identified",
        roles=sorted(role.value for role in selection.chosen),
        ambiguities=len(selection.ambiguities),
    )
    return selection


# --- convert --------------------------------------------------------------------------


@dataclass(frozen=True)
class Converted:
    """The converted volumes of the analysed roles, and notes on what was left out."""

    volumes: Mapping[SeriesRole, Volume]
    series: Mapping[SeriesRole, SeriesInfo]
    notes: tuple[str, ...]


CT_NOT_USED_NOTE = (
    "The CT series of the PET/CT study was recognised and not used: the PET is registered "
    "directly to the MR (mutual information); the CT served the PET's attenuation correction."
)


def _ct_notes(selection: SequenceSelection) -> list[str]:
    return [CT_NOT_USED_NOTE] if selection.series_for(SeriesRole.CT) is not None else []


def is_pet_only(selection: SequenceSelection) -> bool:
    """Whether the study (with its partner, if any) has a PET and no MR series at all.

    An MR study without T1c is not analysed (the report says T1c is missing), PET or not.
    """
    mr_roles = (SeriesRole.T1, SeriesRole.T1C, SeriesRole.T2, SeriesRole.FLAIR)
    return selection.series_for(SeriesRole.PET) is not None and all(
        selection.series_for(role) is None for role in mr_roles
    )


def check_pet_only_input(study_index: StudyIndex, selection: SequenceSelection) -> None:
    """Say why a PET/CT study without MR cannot be analysed when its PET is not a volume.

    Raises
    ------
    PetGeometryError
        If the study has no T1c and its PET series has fewer than three slices.
    """
    if selection.series_for(SeriesRole.T1C) is not None:
        return
    if selection.series_for(SeriesRole.PET) is not None:
        return
    if any(series.modality == "MR" for series in study_index.series):
        return
    for series in study_index.series:
        if series.modality == "PT" and series.n_frames < 3:
            raise PetGeometryError(
                f"The PET series {series.series_number} {series.series_description!r} has "
                f"{series.n_frames} slice(s); a PET volume needs at least three slices (send "
                "the whole series), and the study has no MR to analyse instead."
            )


def convert_pet_only(ctx: StudyContext, selection: SequenceSelection) -> Converted:
    """Convert the PET of a study without MR (a PET-grid-only analysis).

    Raises
    ------
    DicomInputError
        If the PET cannot be converted (one slice, broken geometry, ...).
    """
    info = selection.series_for(SeriesRole.PET)
    if info is None:
        raise MissingSequenceError("The study has no PET series to analyse.")
    volume = load_volume(info)
    notes = _ct_notes(selection)
    if volume.pet is not None and not volume.pet.is_suv:
        notes.append(f"PET is not in SUV: {volume.pet.reason}")
    return Converted(
        volumes={SeriesRole.PET: volume}, series={SeriesRole.PET: info}, notes=tuple(notes)
    )


def convert(ctx: StudyContext, selection: SequenceSelection) -> Converted:
    """Convert the chosen series to volumes.

    T1c is required (the reference frame of the results); a PET or MR series that cannot be
    converted is left out with a note, except T1c. A missing or left-out T1, T2 or FLAIR does
    not stop the analysis: the segmentation substitutes it (:func:`model_channels`). Of a
    T2 series with several echoes (dual-echo PD/T2) the longest echo is converted.

    Raises
    ------
    MissingSequenceError
        If the study has no usable T1c series.
    """
    if selection.series_for(SeriesRole.T1C) is None:
        raise MissingSequenceError(
            "The study has no contrast-enhanced T1 (T1c) series, which the tumour "
            "segmentation needs; send the post-contrast T1 series, or add a "
            "[[classification.rules]] entry if it was not recognised."
        )
    volumes: dict[SeriesRole, Volume] = {}
    series: dict[SeriesRole, SeriesInfo] = {}
    notes: list[str] = _ct_notes(selection)
    for role in ANALYSIS_ROLES:
        info = selection.series_for(role)
        if info is None:
            continue
        try:
            # A dual-echo PD/T2 series is one volume per echo: the T2 is the late echo.
            volumes[role] = load_volume(info, echo="longest" if role is SeriesRole.T2 else "all")
        except DicomInputError as exc:
            if role is SeriesRole.T1C:
                raise
            notes.append(f"{role.value} series left out: {exc}")
            logger.warning("series left out", role=role.value, reason=str(exc))
            continue
        series[role] = info
        pet = volumes[role].pet
        if pet is not None and not pet.is_suv:
            notes.append(f"PET is not in SUV: {pet.reason}")
    return Converted(volumes=volumes, series=series, notes=tuple(notes))
