"""rgcds: radiogenomics clinical decision support for glioblastoma. Research use only.

A DICOM daemon that receives MR/PET studies, segments and measures the tumour, extracts
radiomics, predicts molecular markers and prognosis, and returns DICOM SEG and TID 1500 SR
to the PACS.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rgcds")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"

RESEARCH_USE_ONLY = "Research use only. Not for clinical diagnosis or treatment decisions."

__all__ = ["RESEARCH_USE_ONLY", "__version__"]
