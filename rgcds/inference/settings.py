"""The ``[inference]`` settings section; re-exported from :mod:`rgcds.settings.inference`."""

from __future__ import annotations

from rgcds.settings.inference import BackendPreference, InferenceSettings

__all__ = ["BackendPreference", "InferenceSettings"]
