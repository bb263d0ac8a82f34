"""Shared helpers of the result writers: deterministic UIDs, equipment, time stamps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import highdicom as hd
import pydicom
from pydicom.uid import PYDICOM_ROOT_UID, generate_uid

from rgcds import __version__
from rgcds.results import codes
from rgcds.results.content import PetSegment, Region

MANUFACTURER = "rgcds"
MODEL_NAME = "rgcds radiogenomics CDS"
DEVICE_SERIAL = "0"
RESEARCH_TAG = "(research use only)"


CONTENT_CREATOR = "rgcds^automated analysis"
"""Content Creator's Name (PN) of every result object: no person made it; rgcds did."""

REGION_COLOURS: dict[Region, tuple[int, int, int]] = {
    Region.NCR: (230, 40, 40),
    Region.ET: (255, 215, 0),
    Region.ED: (40, 200, 80),
}
"""Display colour (sRGB) of each segment region: red core, yellow enhancing, green oedema.
The overlays draw in it and the SEG recommends it (Recommended Display CIELab Value)."""

PET_COLOURS: dict[PetSegment, tuple[int, int, int]] = {
    PetSegment.BTV: (0, 230, 255),
    PetSegment.RESIDUAL: (230, 0, 230),
    PetSegment.CTV: (60, 220, 60),
}
"""Display colour (sRGB) of each PET segment (cyan BTV, magenta residual, green CTV)."""


def display_colour(rgb: tuple[int, int, int]) -> hd.color.CIELabColor:
    """The Recommended Display CIELab Value of an sRGB colour."""
    return hd.color.CIELabColor.from_rgb(*rgb)


class ObjectKind(StrEnum):
    """The kinds of result object; each has its own series."""

    SEG = "seg"
    SR = "sr"
    SC = "sc"
    PDF = "pdf"
    PET_SEG = "pet-seg"
    """The SEG of the PET segments (BTV, residual tumour, CTV) on the PET or the MR grid."""
    PET_SC = "pet-sc"
    """The fused PET/MR (or PET-only) overlays."""
    RANO_SR = "rano-sr"
    """The RANO key measurements: a TID 1500 SR of the lesions' long and short axes only,
    every group with image coordinates, as OHIF's SR viewport draws them."""


SERIES_NUMBER: dict[ObjectKind, int] = {
    ObjectKind.SEG: 9901,
    ObjectKind.SR: 9902,
    ObjectKind.SC: 9903,
    ObjectKind.PDF: 9904,
    ObjectKind.PET_SEG: 9905,
    ObjectKind.PET_SC: 9906,
    ObjectKind.RANO_SR: 9907,
}
"""Series numbers of the result series (high, to sort after the acquired series)."""

SERIES_DESCRIPTION: dict[ObjectKind, str] = {
    ObjectKind.SEG: f"rgcds tumour SEG {RESEARCH_TAG}",
    ObjectKind.SR: f"rgcds tumour report SR {RESEARCH_TAG}",
    ObjectKind.SC: f"rgcds tumour overlays {RESEARCH_TAG}",
    ObjectKind.PDF: f"rgcds tumour report PDF {RESEARCH_TAG}",
    ObjectKind.PET_SEG: f"rgcds PET BTV/residual/CTV SEG {RESEARCH_TAG}",
    ObjectKind.PET_SC: f"rgcds PET fusion overlays {RESEARCH_TAG}",
    ObjectKind.RANO_SR: f"rgcds RANO key measurements SR {RESEARCH_TAG}",
}

_POSTOP_SERIES_DESCRIPTION: dict[ObjectKind, str] = {
    ObjectKind.SEG: f"rgcds post-operative SEG {RESEARCH_TAG}",
    ObjectKind.SR: f"rgcds post-operative report SR {RESEARCH_TAG}",
    ObjectKind.SC: f"rgcds post-operative overlays {RESEARCH_TAG}",
    ObjectKind.PDF: f"rgcds post-operative report PDF {RESEARCH_TAG}",
    ObjectKind.RANO_SR: f"rgcds post-operative RANO axes SR {RESEARCH_TAG}",
}


def series_description(kind: ObjectKind, postoperative: bool = False) -> str:
    """The series description of ``kind``; the post-operative one for a post-operative study."""
    if postoperative and kind in _POSTOP_SERIES_DESCRIPTION:
        return _POSTOP_SERIES_DESCRIPTION[kind]
    return SERIES_DESCRIPTION[kind]


@dataclass(frozen=True, slots=True)
class ResultKey:
    """What identifies one analysis; every result UID derives from it.

    Re-exporting the same analysis (same study, reference series, model id and version)
    gives the same series and instance UIDs, so a PACS replaces rather than duplicates.
    """

    study_instance_uid: str
    reference_series_uid: str
    model_id: str
    model_version: str

    def uid(self, purpose: str, index: int = 0) -> str:
        """A UID for ``purpose`` (e.g. ``"seg-series"``) and ``index``, stable across runs."""
        sources = [
            "rgcds-result-v1",
            self.study_instance_uid,
            self.reference_series_uid,
            self.model_id,
            self.model_version,
            purpose,
            str(index),
        ]
        return str(generate_uid(prefix=PYDICOM_ROOT_UID, entropy_srcs=sources))

    def series_uid(self, kind: ObjectKind) -> str:
        """The SeriesInstanceUID of the ``kind`` result series."""
        return self.uid(f"{kind.value}-series")

    def instance_uid(self, kind: ObjectKind, index: int = 0) -> str:
        """The SOPInstanceUID of instance ``index`` of the ``kind`` result series."""
        return self.uid(f"{kind.value}-instance", index)


def contributing_equipment(when: datetime | None = None) -> list[hd.ContributingEquipment]:
    """rgcds as the processing equipment that contributed to an object (at ``when``)."""
    return [
        hd.ContributingEquipment(
            manufacturer=MANUFACTURER,
            purpose_of_reference=codes.PROCESSING_EQUIPMENT,
            manufacturer_model_name=MODEL_NAME,
            software_versions=__version__,
            contribution_description="Automated tumour analysis. Research use only.",
            contribution_datetime=when,
        )
    ]


def stamp(ds: pydicom.Dataset, when: datetime | None) -> None:
    """Set the series and content date/time of ``ds`` to ``when`` (if given).

    With the analysis time stamped, a re-export writes identical objects.
    """
    if when is None:
        return
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    for prefix in ("Series", "Content"):
        setattr(ds, f"{prefix}Date", date)
        setattr(ds, f"{prefix}Time", time)
    if "InstanceCreationDate" in ds:
        ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    if "DateOfSecondaryCapture" in ds:
        ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = date, time
    for item in ds.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = when.strftime("%Y%m%d%H%M%S")


def declare_private_scheme(ds: pydicom.Dataset) -> None:
    """Declare the private ``99RGCDS`` coding scheme in ``ds`` (Coding Scheme Identification)."""
    item = pydicom.Dataset()
    item.CodingSchemeDesignator = codes.PRIVATE_SCHEME
    item.CodingSchemeName = codes.PRIVATE_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = "rgcds project"
    existing = list(ds.get("CodingSchemeIdentificationSequence", []))
    if all(i.CodingSchemeDesignator != codes.PRIVATE_SCHEME for i in existing):
        ds.CodingSchemeIdentificationSequence = [*existing, item]
