"""Run one study through every stage, in order, through a stage runner.

The same :func:`run_study` serves ``rgcds process`` (stages called directly) and the Prefect
flow (each stage a task): only the runner differs. A study that cannot be analysed (no T1c,
broken geometry, missing model input) still gets an SR and a PDF that say why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pydicom
import structlog

from rgcds.analysis.pet import PetMeasurements
from rgcds.analysis.predict import Predictions
from rgcds.analysis.qc import QcResult
from rgcds.exceptions import DicomInputError, ModelError
from rgcds.logging import remember_phi
from rgcds.pipeline import postop, report, stages
from rgcds.pipeline.context import StudyContext, StudyOutcome
from rgcds.results.content import StudyIdentity
from rgcds.results.fallback import write_fallback_report
from rgcds.study import SequenceSelection, SeriesRole, StudyIndex

logger = structlog.get_logger(__name__)

T = TypeVar("T")


class StageRunner(Protocol):
    """Calls ``fn(*args)`` as stage ``name`` and returns its result."""

    def __call__(self, name: str, fn: Callable[..., T], *args: Any) -> T: ...


#: Each step of the analysis in words for a radiologist (the "not analysed" report).
STEP_WORDS: dict[str, str] = {
    "index": "reading the study's images",
    "classify": "identifying the MR sequences",
    "convert": "converting the images",
    "segment-model": "loading the segmentation model",
    "preprocess": "co-registration and brain extraction",
    "segment": "tumour segmentation",
    "qc": "segmentation quality control",
    "measure": "tumour measurement",
    "radiomics": "radiomic feature extraction",
    "reference": "preparing the reference series",
    "predict": "marker and survival prediction",
    "pet": "PET analysis",
    "report": "assembling the report",
    "write": "writing the results",
    "export": "queuing the results for the PACS",
    "processing": "processing",
}


def failure_reason(step: str, exc: BaseException) -> str:
    """The report's sentence for an unexpected failure at ``step`` (no internal detail)."""
    what = STEP_WORDS.get(step, step)
    return (
        f"Automated analysis failed during {what} (step '{step}', internal error "
        f"{type(exc).__name__}). Read this study without automated results; the "
        "operators see the error in the service log and with 'rgcds status'."
    )


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        #: The step now running (a stage, or a step between stages): named on failure.
        self.step = "index"

    def at(self, step: str) -> None:
        """Name the step that runs now outside the stage runner."""
        self.step = step

    def wrap(self, inner: StageRunner) -> StageRunner:
        timer = self

        class _Timed:
            def __call__(self, name: str, fn: Callable[..., T], *args: Any) -> T:
                start = time.perf_counter()
                timer.step = name
                try:
                    return inner(name, fn, *args)
                except Exception as exc:
                    if not hasattr(exc, "stage"):
                        try:
                            exc.stage = name  # type: ignore[attr-defined]
                        except AttributeError:
                            pass
                    raise
                finally:
                    timer.seconds[name] = round(
                        timer.seconds.get(name, 0.0) + time.perf_counter() - start, 3
                    )

        return _Timed()


class _Direct:
    def __call__(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        with structlog.contextvars.bound_contextvars(stage=name):
            logger.debug("stage started")
            return fn(*args)


direct_runner: StageRunner = _Direct()


def _first_dataset(study_index: StudyIndex) -> pydicom.Dataset:
    """A header of the study the report belongs to: the MR study when there is one."""
    series = next((s for s in study_index.series if s.modality == "MR"), None)
    ref = (series or study_index.series[0]).instances[0]
    ds = pydicom.dcmread(ref.path, stop_before_pixels=True)
    remember_phi(ds)
    return ds


def run_study(ctx: StudyContext, runner: StageRunner = direct_runner) -> StudyOutcome:
    """Process one study: index to written results (export is the caller's).

    Parameters
    ----------
    ctx
        Inputs, work directory and settings.
    runner
        How each stage is called (directly, or as a Prefect task).

    Returns
    -------
    StudyOutcome
        Complete, or not analysed with the reason; the written objects either way.

    Raises
    ------
    DicomInputError
        If the inputs hold no usable DICOM study at all (nothing to report on).
    """
    timer = _Timer()
    run = timer.wrap(runner)
    study_index = run("index", stages.index, ctx)
    header = _first_dataset(study_index)
    identity = StudyIdentity.from_dataset(header)
    used: dict[str, tuple[str, str]] = {}
    notes: list[str] = [*ctx.notes, *study_index.damage_notes()]
    try:
        selection = run("classify", stages.classify, ctx, study_index)
        notes += list(selection.ambiguities)
        stages.check_pet_only_input(study_index, selection)
        if stages.is_pet_only(selection):
            return _pet_only(ctx, run, timer, identity, selection, notes)
        converted = run("convert", stages.convert, ctx, selection)
        notes += list(converted.notes)
        used = {
            role.value: (info.series_instance_uid, info.series_description)
            for role, info in converted.series.items()
        }
        timer.at("segment")
        postoperative = postop.is_postoperative(ctx, converted)
        seg = stages.load_segmentation(ctx)
        if seg is None:
            card = run("segment-model", stages.segmentation_card, ctx, postoperative)
            postop_model = ctx.settings.processing.postoperative_segmentation_model
            if postoperative and card.id != postop_model:
                notes.append(
                    f"Post-operative study segmented with the pre-operative model {card.id} "
                    "(no post-operative segmentation model installed): its necrosis label "
                    "stands in for the resection cavity."
                )
            pre, to_mni = run("preprocess", stages.preprocess, ctx, converted, card)
            seg = run("segment", stages.run_segmentation, ctx, pre, to_mni, card)
        qc = run("qc", stages.quality_control, ctx, seg)
        if qc.measures:
            notes.append(_qc_note(qc))
        measurements = run("measure", stages.measure, ctx, seg)
        table = run("radiomics", stages.radiomics, ctx, seg, identity.study_instance_uid)
        timer.at("reference")
        role = reference_role(seg)
        source = stages.reference_datasets(converted.series[role], converted.volumes[role])
        clinical = stages.clinical_inputs(source.datasets[0])
        if postoperative:
            # The marker and survival models were trained on pre-operative tumours.
            predictions = Predictions(markers=(), survival=())
            notes.append(
                "Post-operative study: the pre-operative radiogenomic marker and survival "
                "models were not applied."
            )
        else:
            predictions = run("predict", stages.predict, ctx, table, clinical)
            notes += list(predictions.notes)
        mgmt = postop.site_mgmt_status(ctx, str(header.get("AccessionNumber", "")))
        pet_read = run(
            "pet", postop.read_pet, ctx, study_index, converted, seg, postoperative,
            clinical.age_years, mgmt,
        )
        timer.at("report")
        pet = pet_read.result if pet_read is not None else None
        pet_content = pet_images = None
        pet_extra: list[str] = []
        if pet_read is not None and isinstance(pet, PetMeasurements):
            info = converted.series[SeriesRole.PET]
            pet_source = stages.reference_datasets(info, converted.volumes[SeriesRole.PET])
            pet_content = report.pet_report(
                pet, pet_source,
                ctv_source=pet_read.ctv.source if pet_read.ctv is not None else None,
                ctv_ml=pet_read.ctv.ml if pet_read.ctv is not None else None,
                ctv_refused=pet_read.ctv.refused if pet_read.ctv is not None else None,
                residual=pet_read.residual, prognosis=pet_read.prognosis,
                notes=[*pet.notes, *pet_read.notes],
            )
            pet_images = postop.pet_images(pet_read, seg)
        else:
            pet_extra = list(stages.pet_notes(pet))
        content = report.complete_report(
            identity, measurements, table, predictions, used,
            notes=[*notes, *seg.notes, *pet_extra], pet=pet_content,
            postoperative=stages.postoperative_labels(ctx, seg), analysed_at=ctx.analysed_at,
        )
        written = run("write", stages.write, ctx, content, source, seg, pet_images)
        summary = {
            "volumes_cm3": {r.region: round(r.volume_cm3, 2) for r in measurements.regions},
            "rano_sum_of_products_mm2": round(measurements.rano.sum_of_products_mm2, 1),
            "predictions": {
                m.marker: round(m.probability, 3) for m in predictions.markers
            },
        }
        if isinstance(pet, PetMeasurements):
            summary["pet"] = stages.pet_summary(pet)
            if pet_content is not None and pet_content.residual is not None:
                summary["residual_tumour"] = {
                    "present": pet_content.residual.present,
                    "probability": round(pet_content.residual.probability, 3),
                }
            if pet_content is not None:
                summary["ctv"] = pet_content.ctv_source
                summary["ctv_ml"] = (
                    None if pet_content.ctv_ml is None else round(pet_content.ctv_ml, 1)
                )
                summary["ctv_refused"] = pet_content.ctv_refused is not None
        return StudyOutcome(
            status="complete",
            reason=None,
            written=tuple(written.files()),
            stage_seconds=timer.seconds,
            summary=summary,
        )
    except (DicomInputError, ModelError) as exc:
        reason = str(exc)
        logger.warning("study not analysed", reason=reason)
        return _not_analysed(ctx, run, timer, identity, header, reason, used, notes)
    except Exception as exc:
        # Anything else (a bug, a broken library, a full disk in a writer): the study still
        # gets a report that says which step failed; the log has the traceback.
        step = getattr(exc, "stage", None) or timer.step
        step = step if isinstance(step, str) else timer.step
        logger.exception("analysis failed", stage=step, error_type=type(exc).__name__)
        return _not_analysed(
            ctx, run, timer, identity, header, failure_reason(step, exc), used, notes,
            failed_stage=step, error_type=type(exc).__name__,
        )


def _qc_note(qc: QcResult) -> str:
    """The report's line for a passed quality gate."""
    m = qc.measures
    parts = [f"whole tumour {m['whole_tumour_ml']:.1f} cm3 "
             f"({100 * m.get('whole_tumour_brain_fraction', 0.0):.1f} % of the brain)"]
    if "components" in m:
        parts.append(f"{int(m['components'])} component(s)")
    if "outside_brain_fraction" in m:
        parts.append(f"{100 * m['outside_brain_fraction']:.1f} % outside the brain mask")
    if "flip_dice" in m:
        parts.append(f"mirrored-image agreement Dice {m['flip_dice']:.2f}")
    return "Automatic segmentation passed quality control: " + ", ".join(parts) + "."


def _not_analysed(
    ctx: StudyContext,
    run: StageRunner,
    timer: _Timer,
    identity: StudyIdentity,
    header: pydicom.Dataset,
    reason: str,
    used: dict[str, tuple[str, str]],
    notes: list[str],
    *,
    failed_stage: str | None = None,
    error_type: str | None = None,
) -> StudyOutcome:
    """Write the "not analysed" SR and PDF; if that fails too, the fallback text SR."""
    try:
        content = report.not_analysed_report(
            identity, reason, used, notes=notes, analysed_at=ctx.analysed_at
        )
        written = run("write", stages.write, ctx, content).files()
    except Exception as exc:
        logger.exception(
            "the not-analysed report could not be written; sending the fallback report",
            error_type=type(exc).__name__,
        )
        written = [write_fallback_report(
            Path(str(header.filename)), ctx.work_dir / "results", reason,
            notes=[n for n in notes if len(n) < 1000][:20], key=str(ctx.job_id),
        )]
        failed_stage = failed_stage or "write"
        error_type = error_type or type(exc).__name__
    return StudyOutcome(
        status="not analysed",
        reason=reason,
        written=tuple(written),
        stage_seconds=timer.seconds,
        failed_stage=failed_stage,
        error_type=error_type,
    )


def _pet_only(
    ctx: StudyContext,
    run: StageRunner,
    timer: _Timer,
    identity: StudyIdentity,
    selection: SequenceSelection,
    notes: list[str],
) -> StudyOutcome:
    """A PET without MR: measured on its own grid; the report says what was not done."""
    converted = run("convert", stages.convert_pet_only, ctx, selection)
    notes = [*notes, *converted.notes]
    info = converted.series[SeriesRole.PET]
    used = {SeriesRole.PET.value: (info.series_instance_uid, info.series_description)}
    pet = run("pet", stages.pet_only_analysis, ctx, converted)
    images = None
    if isinstance(pet, PetMeasurements):
        volume = converted.volumes[SeriesRole.PET]
        pet_source = stages.reference_datasets(info, volume)
        study = StudyIdentity.from_dataset(pet_source.datasets[0])
        why = next((n for n in notes if "PET-only" in n),
                   "No MR study of this patient is available; PET-only analysis.")
        content = report.pet_only_report(
            study, used,
            report.pet_report(pet, pet_source, ctv_source=None, pet_only_reason=why,
                              notes=pet.notes),
            notes=notes, analysed_at=ctx.analysed_at,
        )
        images = postop.pet_only_images(pet, volume.image)
        status, reason = "complete", None
        summary: dict[str, object] = {"pet": stages.pet_summary(pet)}
    else:
        reason = f"PET ({pet.tracer.value}) not analysed: {pet.reason}"
        content = report.not_analysed_report(
            identity, reason, used, notes=notes, analysed_at=ctx.analysed_at
        )
        status, summary = "not analysed", {}
    written = run("write", stages.write, ctx, content, None, None, images)
    return StudyOutcome(
        status=status, reason=reason, written=tuple(written.files()),
        stage_seconds=timer.seconds, summary=summary,
    )


def reference_role(seg: stages.Segmentation) -> SeriesRole:
    """The reference series' role of a segmentation."""
    return SeriesRole(seg.reference_role)


__all__ = [
    "STEP_WORDS", "StageRunner", "direct_runner", "failure_reason", "reference_role",
    "run_study",
]
