"""The processing stages of one study, as plain functions.

index -> classify -> convert -> preprocess -> segment -> measure -> radiomics -> predict ->
write -> export. Each takes the :class:`StudyContext` and the previous stages' typed
results; none needs Prefect. The expensive results (segmentation with its model-space
images, the radiomics table) are kept in the work directory and reloaded by a re-run.

One module per room: :mod:`.inputs` (index, classify, convert), :mod:`.channels` (the
model's input channels and stand-ins for a missing sequence), :mod:`.segmentation`
(card, preprocessing, inference, quality control, the kept copy), :mod:`.analysis`
(measurements, radiomics, predictions, PET) and :mod:`.output` (the result objects).
:mod:`rgcds.pipeline.runner` calls them through this package's names.
"""

from __future__ import annotations

from rgcds.pipeline.stages.analysis import (
    clinical_inputs,
    measure,
    pet_notes,
    pet_only_analysis,
    pet_summary,
    predict,
    radiomics,
)
from rgcds.pipeline.stages.channels import (
    CHANNEL_SUBSTITUTES,
    REQUIRED_CHANNELS,
    SUBSTITUTION_METHOD,
    SUBSTITUTION_METHODS,
    SYNTHETIC_FLUID_T1_PERCENTILE,
    SYNTHETIC_T1_CLIP_PERCENTILE,
    SYNTHETIC_T2_FLUID_PERCENTILE,
    SYNTHETIC_TISSUE_T1_PERCENTILE,
    model_channels,
)
from rgcds.pipeline.stages.inputs import (
    ANALYSIS_ROLES,
    CT_NOT_USED_NOTE,
    Converted,
    check_pet_only_input,
    classify,
    convert,
    convert_pet_only,
    index,
    is_pet_only,
)
from rgcds.pipeline.stages.output import (
    earlier_reports,
    overlay_backgrounds,
    postoperative_labels,
    reference_datasets,
    write,
)
from rgcds.pipeline.stages.segmentation import (
    MIN_COMPONENT_ML,
    Segmentation,
    clean_labels,
    load_segmentation,
    preprocess,
    quality_control,
    remove_small_components,
    restrict_to_brain,
    run_segmentation,
    save_segmentation,
    segmentation_card,
)

__all__ = [
    "ANALYSIS_ROLES",
    "CHANNEL_SUBSTITUTES",
    "CT_NOT_USED_NOTE",
    "MIN_COMPONENT_ML",
    "REQUIRED_CHANNELS",
    "SUBSTITUTION_METHOD",
    "SUBSTITUTION_METHODS",
    "SYNTHETIC_FLUID_T1_PERCENTILE",
    "SYNTHETIC_T1_CLIP_PERCENTILE",
    "SYNTHETIC_T2_FLUID_PERCENTILE",
    "SYNTHETIC_TISSUE_T1_PERCENTILE",
    "Converted",
    "Segmentation",
    "check_pet_only_input",
    "classify",
    "clean_labels",
    "clinical_inputs",
    "convert",
    "convert_pet_only",
    "earlier_reports",
    "index",
    "is_pet_only",
    "load_segmentation",
    "measure",
    "model_channels",
    "overlay_backgrounds",
    "pet_notes",
    "pet_only_analysis",
    "pet_summary",
    "postoperative_labels",
    "predict",
    "preprocess",
    "quality_control",
    "radiomics",
    "reference_datasets",
    "remove_small_components",
    "restrict_to_brain",
    "run_segmentation",
    "save_segmentation",
    "segmentation_card",
    "write",
]
