# SimpleITK ships no type hints: its calls are untyped and return Any.
"""The amino-acid PET read together with the MR: CTV, PET measurements, masks for the PET SEG.

A study is read as **post-operative** when ``[processing] postoperative`` says so, or, with
the default ``"auto"``, when its amino-acid PET came in its own (paired) PET/CT study: the
workflow of the reference post-operative [11C]methionine PET study. Then:

* the CTV comes from an RT Structure Set of the patient when one holds a CTV ROI
  (``[pet] ctv_roi_patterns``), else it is derived as the ESTRO-EANO 2023 guideline does
  (resection cavity + residual enhancement + 15 mm, clipped to the brain);
* the PET is measured on its own grid (no interpolation of uptake) with the MR masks mapped
  through the PET-to-MR registration, whose quality (NMI) is checked first; a failed
  registration gives a PET-grid-only analysis with the reason;
* the CTV must be plausible (:func:`rgcds.analysis.ctv.ctv_refusal`): one too large is
  refused with its reason, is not used as the search region, and the residual-tumour call
  is not made;
* the BTV's plausibility rules (:mod:`rgcds.analysis.btv`) get the resection cavity and a
  grey-matter prior: the template's grey matter carried through the brain extraction's
  template registration;
* the BTV, the CTV and (when residual tumour is assessed present) the BTV inside the CTV are
  returned on the PET grid for the PET study's SEG.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import structlog

from rgcds import __version__
from rgcds.analysis.pet import (
    PetMeasurements,
    PetNotAnalysed,
    RegistrationQuality,
    analyse_pet,
    registration_quality,
)
from rgcds.analysis.prognosis import PrognosisPrediction, predict_prognosis
from rgcds.analysis.residual import ResidualPrediction, predict_residual, residual_inputs
from rgcds.exceptions import DicomInputError, ModelError
from rgcds.imaging.registration import RegistrationResult
from rgcds.imaging.resample import GridGeometry, resample_onto
from rgcds.inference.registry import DEFAULT_MODELS_ROOT
from rgcds.pipeline.context import StudyContext
from rgcds.pipeline.postop_ctv import (
    CTV_DERIVED,
    LABEL_CAVITY,
    LABEL_RESIDUAL_ENHANCING,
    CtvChoice,
    _onto,
    choose_ctv,
)
from rgcds.pipeline.postop_ctv import LABEL_OEDEMA as LABEL_OEDEMA
from rgcds.pipeline.stages import Converted, Segmentation
from rgcds.results.content import AlgorithmInfo, PetImages
from rgcds.study import SeriesRole, StudyIndex, identify_tracer

logger = structlog.get_logger(__name__)

#: Template grey-matter probability at or above which a voxel is in the grey-matter prior.
GREY_MATTER_PRIOR_PROBABILITY = 0.5


def is_postoperative(ctx: StudyContext, converted: Converted) -> bool:
    """Whether the MR + PET are read as a post-operative study (see the module docstring)."""
    mode = ctx.settings.processing.postoperative
    if mode != "auto":
        return mode == "always"
    pet = converted.series.get(SeriesRole.PET)
    t1c = converted.series.get(SeriesRole.T1C)
    return (
        pet is not None and t1c is not None
        and pet.study_instance_uid != t1c.study_instance_uid
    )


def check_registration(
    ctx: StudyContext, converted: Converted, seg: Segmentation
) -> RegistrationQuality | None:
    """Score the preprocessing's PET-to-MR registration (NMI on the head)."""
    volume = converted.volumes.get(SeriesRole.PET)
    if volume is None or seg.pet_transform is None:
        return None
    mr = seg.model_images.get(SeriesRole.T1.value) or seg.model_images.get(
        SeriesRole.T1C.value
    )
    if mr is None:
        return None
    result = RegistrationResult(seg.pet_transform, float("nan"), "preprocessing")
    return registration_quality(
        mr, volume.image, result, seg.brain_mask_model,
        threshold=ctx.settings.pet.nmi_threshold,
    )


def cavity_mask(seg: Segmentation, postoperative: bool) -> sitk.Image | None:
    """The resection cavity on the model grid (post-operative labels), else ``None``."""
    if not postoperative:
        return None
    result: sitk.Image = sitk.Cast(sitk.Equal(seg.labels_model, LABEL_CAVITY), sitk.sitkUInt8)
    return result


def grey_matter_prior(seg: Segmentation) -> sitk.Image | None:
    """The template's grey matter (probability >= 0.5) on the model grid, through ``to_mni``.

    ``None`` without a template registration (e.g. a learned brain extractor run alone).
    """
    if seg.to_mni is None:
        return None
    from rgcds.templates import template_grey_matter

    probability = resample_onto(
        template_grey_matter(), GridGeometry.of(seg.labels_model), transform=seg.to_mni
    )
    result: sitk.Image = sitk.Cast(probability >= GREY_MATTER_PRIOR_PROBABILITY, sitk.sitkUInt8)
    return result


def tumour_mask(seg: Segmentation, postoperative: bool) -> sitk.Image:
    """Where the tumour is on the model grid: cavity + residual enhancement, or NCR + ET."""
    labels = seg.labels_model
    first = LABEL_CAVITY if postoperative else 1
    tumour: sitk.Image = sitk.Cast(
        sitk.Or(sitk.Equal(labels, first), sitk.Equal(labels, LABEL_RESIDUAL_ENHANCING)),
        sitk.sitkUInt8,
    )
    return tumour


def measure_pet(
    ctx: StudyContext,
    converted: Converted,
    seg: Segmentation,
    ctv: CtvChoice | None,
    postoperative: bool,
) -> PetMeasurements | PetNotAnalysed | None:
    """TBR, SUV and BTV on the PET's own grid with the MR masks mapped onto it."""
    volume = converted.volumes.get(SeriesRole.PET)
    info = converted.series.get(SeriesRole.PET)
    if volume is None or info is None or seg.pet_transform is None:
        return None
    tracer = identify_tracer(info)
    quality = check_registration(ctx, converted, seg)
    try:
        return analyse_pet(
            volume.image,
            tracer=tracer,
            suv=volume.pet,
            brain_mask=seg.brain_mask_model,
            tumour_mask=tumour_mask(seg, postoperative),
            ctv=ctv.image if ctv is not None and ctv.usable else None,
            transform=seg.pet_transform,
            registration=quality,
            settings=ctx.settings.pet,
            cavity_mask=cavity_mask(seg, postoperative),
            grey_matter=grey_matter_prior(seg),
        )
    except DicomInputError as exc:
        logger.warning("PET not analysed", reason=str(exc))
        return PetNotAnalysed(tracer=tracer, reason=str(exc))


@dataclass(frozen=True)
class PetRead:
    """The PET read with the MR: measurements, CTV and the PET-grid masks for the SEG.

    Attributes
    ----------
    result
        The measurements, or why the PET was not analysed.
    postoperative
        Whether the study was read as post-operative.
    ctv
        The CTV used (model grid), if any.
    pet_masks
        Segment name -> bool mask (z, y, x) on the PET's native grid, in the PET volume's
        slice order: ``BTV``, ``CTV`` and, when residual tumour is assessed present,
        ``RESIDUAL`` (the BTV inside the CTV).
    notes
        Sentences for the report.
    residual
        Residual-tumour detection (post-operative, with a CTV), when its models ran.
    prognosis
        Time to recurrence and overall survival, when their models ran.
    """

    result: PetMeasurements | PetNotAnalysed
    postoperative: bool
    ctv: CtvChoice | None = None
    pet_masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    notes: tuple[str, ...] = ()
    residual: ResidualPrediction | None = None
    prognosis: PrognosisPrediction | None = None


def site_mgmt_status(ctx: StudyContext, accession_number: str) -> bool | None:
    """MGMT status from the site clinical-data file (CSV: accession_number,mgmt_methylated).

    ``None`` when no file is configured, the study is not in it, or the value is empty.
    The accession number is PHI: it is compared, never logged.
    """
    path = ctx.settings.processing.clinical_data_file
    if path is None or not accession_number.strip():
        return None
    try:
        with Path(path).open(newline="") as handle:
            for row in csv.DictReader(handle):
                if str(row.get("accession_number", "")).strip() == accession_number.strip():
                    value = str(row.get("mgmt_methylated", "")).strip().lower()
                    if value in ("1", "true", "yes", "methylated"):
                        return True
                    if value in ("0", "false", "no", "unmethylated"):
                        return False
                    return None
    except (OSError, csv.Error) as exc:
        logger.warning("clinical data file unreadable", error=type(exc).__name__)
    return None


def assess_residual(
    ctx: StudyContext,
    seg: Segmentation,
    ctv: CtvChoice,
    age_years: float | None = None,
    mgmt_methylated: bool | None = None,
) -> tuple[ResidualPrediction | None, PrognosisPrediction | None, list[str]]:
    """Residual tumour in the CTV (PET DenseNet + T1c radiomics) and the Cox prognosis.

    Runs on the model grid: the PET resampled through the PET-to-MR registration, the T1c,
    the CTV and the brain mask. Missing or unvalidated models give a note, not an error.
    """
    notes: list[str] = []
    root = Path(ctx.settings.inference.models_root or DEFAULT_MODELS_ROOT)
    research = ctx.settings.research_mode or ctx.settings.inference.research_mode
    pet = seg.model_images.get(SeriesRole.PET.value)
    t1c = seg.model_images.get(SeriesRole.T1C.value)
    try:
        inputs = residual_inputs(pet, t1c, ctv.image, seg.brain_mask_model,
                                 settings=ctx.settings.pet)
        residual = predict_residual(root, inputs.pet_input, inputs.t1c_features,
                                    research_mode=research)
    except (ModelError, DicomInputError) as exc:
        notes.append(f"Residual-tumour detection not run: {exc}")
        return None, None, notes
    notes += [*inputs.notes, *residual.notes]
    try:
        prognosis = predict_prognosis(root, residual.covariates(inputs), age_years,
                                      mgmt_methylated,
                                      research_mode=research)
    except (ModelError, DicomInputError) as exc:
        notes.append(f"Prognosis not run: {exc}")
        return residual, None, notes
    notes += list(prognosis.notes)
    logger.info(
        "residual assessed", present=residual.present,
        probability=round(float(residual.probability_combined or residual.probability_pet
                                or residual.probability_radiomics or 0.0), 3),
        mgmt_used=prognosis.mgmt_used,
    )
    return residual, prognosis, notes


def read_pet(
    ctx: StudyContext,
    study_index: StudyIndex,
    converted: Converted,
    seg: Segmentation,
    postoperative: bool,
    age_years: float | None = None,
    mgmt_methylated: bool | None = None,
) -> PetRead | None:
    """Measure the PET with the MR's masks; ``None`` when the study has no usable PET.

    A post-operative study with a CTV also gets the residual-tumour assessment and the
    prognosis (:func:`assess_residual`).
    """
    if SeriesRole.PET not in converted.volumes or seg.pet_transform is None:
        return None
    ctv = choose_ctv(ctx, study_index, converted, seg, postoperative)
    result = measure_pet(ctx, converted, seg, ctv, postoperative)
    if result is None:
        return None
    notes = list(ctv.notes) if ctv is not None else []
    masks: dict[str, np.ndarray] = {}
    residual = prognosis = None
    if isinstance(result, PetMeasurements):
        pet = converted.volumes[SeriesRole.PET].image
        masks["BTV"] = np.asarray(sitk.GetArrayFromImage(result.btv_pet)) > 0
        if ctv is not None and ctv.usable:
            masks["CTV"] = on_pet_grid(ctv.image, pet, seg.pet_transform)
        if postoperative and ctv is not None and ctv.usable:
            residual, prognosis, more = assess_residual(
                ctx, seg, ctv, age_years, mgmt_methylated
            )
            notes += more
            if residual is not None and residual.present and "CTV" in masks:
                inside = masks["BTV"] & masks["CTV"]
                if inside.any():
                    masks["RESIDUAL"] = inside
        logger.info(
            "PET read with the MR", tracer=result.tracer.value, postoperative=postoperative,
            tbr_max=round(result.tbr_max, 2), btv_ml=round(result.btv_ml, 1),
            ctv=ctv.source if ctv is not None else None,
        )
    return PetRead(result, postoperative, ctv, masks, tuple(notes), residual, prognosis)


#: Identification of the PET analysis in the PET SEG (its UIDs derive from it).
PET_ALGORITHM = AlgorithmInfo(
    model_id="rgcds-amino-acid-pet", version=__version__,
    name="rgcds amino-acid PET analysis (EANM/EANO/RANO/SNMMI TBR, BTV)",
)


def _native(image: sitk.Image, seg: Segmentation, linear: bool = False) -> np.ndarray:
    """A model-grid mask (nearest neighbour) or map (linear) on the reference's native grid."""
    if not linear:
        return np.asarray(sitk.GetArrayFromImage(_onto(image, seg.labels_native)))
    resampled = sitk.Resample(image, seg.labels_native, sitk.Transform(), sitk.sitkLinear,
                              0.0, sitk.sitkFloat32)
    return np.asarray(sitk.GetArrayFromImage(resampled))


def pet_images(read: PetRead, seg: Segmentation) -> PetImages | None:
    """The PET SEG masks (PET grid and reference T1c grid) and the TBR map for the overlays."""
    result = read.result
    if not isinstance(result, PetMeasurements) or not read.pet_masks:
        return None
    masks_mr: dict[str, np.ndarray] = {}
    if result.btv_mr is not None:
        masks_mr["BTV"] = _native(result.btv_mr, seg) > 0
    if read.ctv is not None and read.ctv.usable:
        masks_mr["CTV"] = _native(read.ctv.image, seg) > 0
    if "RESIDUAL" in read.pet_masks and "BTV" in masks_mr and "CTV" in masks_mr:
        masks_mr["RESIDUAL"] = masks_mr["BTV"] & masks_mr["CTV"]
    tbr = None
    pet_model = seg.model_images.get(SeriesRole.PET.value)
    if pet_model is not None and result.background_mean > 0:
        tbr = _native(sitk.Cast(pet_model, sitk.sitkFloat32), seg, linear=True)
        tbr = (tbr / result.background_mean).astype(np.float32)
    return PetImages(
        algorithm=PET_ALGORITHM, masks=dict(read.pet_masks),
        masks_mr=masks_mr or None, tbr=tbr,
    )


def pet_only_images(result: PetMeasurements, pet: sitk.Image) -> PetImages:
    """The BTV on the PET grid and the TBR map, for a PET analysed without MR."""
    values = np.asarray(sitk.GetArrayFromImage(sitk.Cast(pet, sitk.sitkFloat32)))
    tbr = (values / result.background_mean).astype(np.float32) if result.background_mean > 0 \
        else None
    return PetImages(
        algorithm=PET_ALGORITHM,
        masks={"BTV": np.asarray(sitk.GetArrayFromImage(result.btv_pet)) > 0},
        tbr=tbr,
    )


def on_pet_grid(mask_model: sitk.Image, pet: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    """A model-grid mask on the PET's native grid (bool, z, y, x)."""
    inverse = transform.GetInverse()
    resampled = sitk.Resample(mask_model, pet, inverse, sitk.sitkNearestNeighbor, 0,
                              sitk.sitkUInt8)
    return np.asarray(sitk.GetArrayFromImage(resampled)) > 0


__all__ = [
    "CTV_DERIVED",
    "PET_ALGORITHM",
    "CtvChoice",
    "PetRead",
    "assess_residual",
    "check_registration",
    "choose_ctv",
    "is_postoperative",
    "measure_pet",
    "on_pet_grid",
    "pet_images",
    "pet_only_images",
    "read_pet",
    "site_mgmt_status",
    "tumour_mask",
]
