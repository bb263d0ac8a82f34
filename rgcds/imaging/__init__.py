"""Registration, bias correction, brain extraction, normalisation and model-space resampling.

Everything here takes and returns SimpleITK images and frozen dataclasses; no DICOM.
"""

from rgcds.imaging.bias import n4_correct
from rgcds.imaging.brain import (
    AtlasAlignedExtractor,
    BrainExtractor,
    TemplateBrainExtractor,
    make_brain_extractor,
)
from rgcds.imaging.normalise import zscore
from rgcds.imaging.preprocess import (
    REFERENCE_ORDER,
    PreprocessedStudy,
    choose_reference,
    preprocess_study,
)
from rgcds.imaging.registration import (
    Initializer,
    RegistrationResult,
    RegistrationSettings,
    register_affine,
    register_rigid,
)
from rgcds.imaging.resample import (
    GridGeometry,
    ModelSpace,
    Orientation,
    is_label_image,
    model_grid,
    resample_onto,
)

__all__ = [
    "REFERENCE_ORDER",
    "AtlasAlignedExtractor",
    "BrainExtractor",
    "GridGeometry",
    "Initializer",
    "ModelSpace",
    "Orientation",
    "PreprocessedStudy",
    "RegistrationResult",
    "RegistrationSettings",
    "TemplateBrainExtractor",
    "choose_reference",
    "is_label_image",
    "make_brain_extractor",
    "model_grid",
    "n4_correct",
    "preprocess_study",
    "register_affine",
    "register_rigid",
    "resample_onto",
    "zscore",
]
