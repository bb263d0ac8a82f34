"""From DICOM instances to typed series, sequence roles and 3D volumes.

This is the only package that handles pydicom Datasets; everything it returns is a frozen
dataclass or a SimpleITK image.
"""

from rgcds.study.classify import (
    ClassificationRule,
    ClassificationSettings,
    SequenceSelection,
    SeriesClassification,
    classify_series,
    classify_study,
    identify_tracer,
)
from rgcds.study.convert import (
    FourDimensionalSeriesError,
    GantryTiltError,
    MissingSlicesError,
    MixedOrientationError,
    MultipleStacksError,
    NonUniformSpacingError,
    PixelDataError,
    StackGeometry,
    Volume,
    load_volume,
    stack_geometry,
)
from rgcds.study.enums import (
    DecayCorrectionValues,
    PetQuantity,
    PetTracer,
    SeriesRole,
    UnitsValues,
)
from rgcds.study.index import (
    InstanceRef,
    NoDicomFilesError,
    RadiopharmaceuticalInfo,
    SeriesInfo,
    StudyIndex,
    index_study,
)
from rgcds.study.selection import select_sequences
from rgcds.study.suv import SuvResult, compute_suv_factor

__all__ = [
    "ClassificationRule",
    "ClassificationSettings",
    "DecayCorrectionValues",
    "FourDimensionalSeriesError",
    "GantryTiltError",
    "InstanceRef",
    "MissingSlicesError",
    "MixedOrientationError",
    "MultipleStacksError",
    "NoDicomFilesError",
    "NonUniformSpacingError",
    "PetQuantity",
    "PetTracer",
    "PixelDataError",
    "RadiopharmaceuticalInfo",
    "SequenceSelection",
    "SeriesClassification",
    "SeriesInfo",
    "SeriesRole",
    "StackGeometry",
    "StudyIndex",
    "SuvResult",
    "UnitsValues",
    "Volume",
    "classify_series",
    "classify_study",
    "compute_suv_factor",
    "identify_tracer",
    "index_study",
    "load_volume",
    "select_sequences",
    "stack_geometry",
]
