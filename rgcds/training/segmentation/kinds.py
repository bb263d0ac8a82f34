"""What differs between the kinds of model: card wording, segments, scores, metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rgcds.training.segmentation.data import MODEL_ID, POSTOP_MODEL_ID
from rgcds.training.segmentation.evaluation import (
    RESIDUAL_DETECTION_ML,
    _brats_scores,
    postop_scores,
    summarise,
    summarise_postop,
)

SEGMENTS: list[dict[str, Any]] = [
    {
        "label": 1, "name": "Necrotic core",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "6574001", "scheme": "SCT", "meaning": "Necrosis"},
        "color_rgb": [255, 0, 0],
    },
    {
        "label": 2, "name": "Oedema",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "79654002", "scheme": "SCT", "meaning": "Edema"},
        "color_rgb": [0, 255, 0],
    },
    {
        "label": 3, "name": "Enhancing tumour",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "C113842", "scheme": "NCIt", "meaning": "Enhancing Lesion"},
        "color_rgb": [255, 255, 0],
    },
]


POSTOP_SEGMENTS: list[dict[str, Any]] = [
    {
        # No SNOMED CT concept for a post-surgical cavity is in the DICOM segmentation
        # context groups; "Body cavity" (CID 7192) is the nearest standard concept.
        "label": 1, "name": "Resection cavity",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "91806002", "scheme": "SCT", "meaning": "Body cavity"},
        "color_rgb": [0, 128, 255],
    },
    {
        "label": 2, "name": "Oedema",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "79654002", "scheme": "SCT", "meaning": "Edema"},
        "color_rgb": [0, 255, 0],
    },
    {
        "label": 3, "name": "Residual enhancing tumour",
        "category": {"code": "49755003", "scheme": "SCT",
                     "meaning": "Morphologically Altered Structure"},
        "type": {"code": "C113842", "scheme": "NCIt", "meaning": "Enhancing Lesion"},
        "color_rgb": [255, 255, 0],
    },
]


@dataclass(frozen=True)
class SegmentationKind:
    """What differs between the pre-operative and the post-operative model.

    Attributes
    ----------
    model_id
        The card's id (and default model folder name).
    title, what, subjects, simulator
        Card wording: name, what it segments, what the phantoms are, the simulator.
    classes
        Names of output classes 1..3.
    segments
        Coded segment definitions of labels 1..3.
    score
        Per-case scores of a prediction against a reference label map.
    summarise
        Per-case scores to the card's validation metrics.
    selection
        Keys of the summary whose mean chooses the best checkpoint on dev cases.
    notes
        The card's validation notes.
    """

    model_id: str
    title: str
    what: str
    subjects: str
    simulator: str
    classes: tuple[str, str, str]
    segments: list[dict[str, Any]]
    score: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    summarise: Callable[[list[dict[str, float]]], dict[str, float]]
    selection: tuple[str, ...]
    notes: str


_SYNTHETIC_NOTE = "Synthetic data: these figures say nothing about performance on patients."
_METHOD_NOTE = ("sliding window (card patch size, overlap 0.5), no TTA, ONNX Runtime CPU; "
                "inputs z-scored in the truth brain mask; labels more than "
                "[processing] tumour_brain_margin_mm outside it removed and components under "
                "1 ml dropped, as the pipeline's segmentation stage does.")

KINDS: dict[str, SegmentationKind] = {
    "preop": SegmentationKind(
        model_id=MODEL_ID,
        title="BraTS-style 3D U-Net trained on synthetic phantoms",
        what="glioblastoma into necrotic core, oedema and enhancing tumour",
        subjects="glioblastoma",
        simulator="simulate_subject",
        classes=("necrotic core", "oedema", "enhancing tumour"),
        segments=SEGMENTS,
        score=_brats_scores,
        summarise=summarise,
        selection=("dice_wt_mean", "dice_tc_mean", "dice_et_mean"),
        notes=("Dice per case, mean and standard deviation; WT = labels 1+2+3, TC = 1+3, "
               f"ET = 3; {_METHOD_NOTE} {_SYNTHETIC_NOTE}"),
    ),
    "postop": SegmentationKind(
        model_id=POSTOP_MODEL_ID,
        title="Post-operative glioblastoma 3D U-Net trained on synthetic phantoms",
        what=("post-operative glioblastoma into resection cavity, oedema (FLAIR "
              "hyperintensity) and residual enhancing tumour"),
        subjects="post-operative glioblastoma",
        simulator="simulate_postop",
        classes=("resection cavity", "oedema", "residual enhancing tumour"),
        segments=POSTOP_SEGMENTS,
        score=postop_scores,
        summarise=summarise_postop,
        selection=("dice_cavity_mean", "dice_whole_mean", "dice_residual_mean"),
        notes=(
            "Dice per case, mean and standard deviation; cavity = label 1, oedema = 2, whole "
            "= 1+2+3 (all cases); residual = label 3 on the n_with_residual cases whose "
            "reference has a residual enhancing tumour (the others have an empty label 3 and "
            "are left out of its Dice). residual_sensitivity / residual_specificity: a "
            f"predicted residual of at least {RESIDUAL_DETECTION_ML} ml counts as detected, "
            "on cases with / without a residual. "
            f"{_METHOD_NOTE} {_SYNTHETIC_NOTE}"
        ),
    ),
}

# The domain-randomised model: the pre-operative task, another generator.
KINDS["synth"] = dataclasses.replace(
    KINDS["preop"],
    model_id="brats-unet-synth",
    title="BraTS-style 3D U-Net trained on domain-randomised synthetic images",
    subjects="domain-randomised glioblastoma label maps (rgcds.phantom.synth)",
    simulator="synth_sample",
    notes=("Dice per case, mean and standard deviation; WT = labels 1+2+3, TC = 1+3, "
           f"ET = 3; {_METHOD_NOTE} Trained on rgcds.phantom.synth (random intensity per "
           f"label and channel; generator version in the card). {_SYNTHETIC_NOTE}"),
)
