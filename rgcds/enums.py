"""Coded values shared by the stages, named after the DICOM attributes they encode.

A leaf module: it imports nothing from ``rgcds``, so settings and records can use it.
"""

from __future__ import annotations

from enum import StrEnum


class SeriesRole(StrEnum):
    """The role a series plays in the analysis (what sequence it is)."""

    T1 = "T1"
    T1C = "T1c"
    T2 = "T2"
    FLAIR = "FLAIR"
    DWI = "DWI"
    ADC = "ADC"
    SWI = "SWI"
    PET = "PET"
    CT = "CT"
    IGNORED = "IGNORED"


class PetTracer(StrEnum):
    """PET tracers recognised from the Radiopharmaceutical Information Sequence."""

    MET = "MET"
    FET = "FET"
    FDOPA = "FDOPA"
    FDG = "FDG"
    UNKNOWN = "UNKNOWN"


class UnitsValues(StrEnum):
    """Units (0054,1001) of PET pixel values after rescale."""

    BQML = "BQML"
    CNTS = "CNTS"
    GML = "GML"
    OTHER = "OTHER"


class DecayCorrectionValues(StrEnum):
    """Decay Correction (0054,1102): the time to which pixel values are decay corrected."""

    NONE = "NONE"
    START = "START"
    ADMIN = "ADMIN"


class PetQuantity(StrEnum):
    """What the voxel values of a converted PET volume mean."""

    SUVBW = "SUVbw"
    BQML = "Bq/ml"
    RAW = "raw"


__all__ = ["DecayCorrectionValues", "PetQuantity", "PetTracer", "SeriesRole", "UnitsValues"]
