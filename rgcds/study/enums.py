"""Coded values of the study stage; re-exported from the leaf :mod:`rgcds.enums`."""

from __future__ import annotations

from rgcds.enums import DecayCorrectionValues, PetQuantity, PetTracer, SeriesRole, UnitsValues

__all__ = ["DecayCorrectionValues", "PetQuantity", "PetTracer", "SeriesRole", "UnitsValues"]
