# SimpleITK ships no type hints: its calls are untyped and return Any.
"""Radiomic features with pyradiomics, per tumour sub-region and sequence.

Parameters come from a YAML file (``radiomics_mri.yaml`` by default, documented in
``docs/radiomics_params.md``) with a ``pyradiomics`` section (a plain pyradiomics parameter
set) and per-sequence ``sequence_overrides`` (PET is binned in SUV without z-scoring).

Every (region, sequence) pair is an independent pyradiomics run; pairs run in parallel in a
:class:`concurrent.futures.ProcessPoolExecutor` (pyradiomics is CPU bound and holds the GIL in
parts of its Python code, so processes, not threads). Shape features depend on the mask only:
they are computed once per region and reported with ``sequence = "mask"``.

The result is a tidy table with the columns :data:`FEATURE_COLUMNS`:
``study_uid, region, sequence, feature, ibsi_name, value``.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
import structlog
import yaml

from rgcds.analysis._ibsi import IBSI_NAMES, ibsi_name
from rgcds.analysis.measure import REGIONS
from rgcds.exceptions import DicomInputError, RgcdsError

logger = structlog.get_logger(__name__)

FEATURE_COLUMNS: tuple[str, ...] = (
    "study_uid",
    "region",
    "sequence",
    "feature",
    "ibsi_name",
    "value",
)

#: Sequence keys in their usual order; PET is optional.
SEQUENCES: tuple[str, ...] = ("T1", "T1c", "T2", "FLAIR", "PET")

#: Default regions for radiomics (the three BraTS labels plus the composites).
DEFAULT_REGIONS: tuple[str, ...] = ("NCR", "ET", "ED", "TC", "WT")

MRI_PARAMS = "radiomics_mri.yaml"
FAST_PARAMS = "radiomics_fast.yaml"


class RadiomicsError(RgcdsError, ValueError):
    """A radiomics parameter file is invalid or feature extraction failed."""


@dataclass(frozen=True)
class RadiomicsParams:
    """A parsed radiomics parameter file.

    Attributes
    ----------
    name
        File name, recorded with the features.
    pyradiomics
        The pyradiomics parameter dictionary (``imageType``, ``featureClass``, ``setting``).
    sequence_overrides
        Sequence -> settings replacing those in ``pyradiomics["setting"]``.
    """

    name: str
    pyradiomics: Mapping[str, Any] = field(repr=False)
    sequence_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_sequence(self, sequence: str, *, with_shape: bool) -> dict[str, Any]:
        """The pyradiomics dictionary for ``sequence`` (shape class kept only if asked)."""
        params: dict[str, Any] = copy.deepcopy(dict(self.pyradiomics))
        params.setdefault("setting", {}).update(self.sequence_overrides.get(sequence, {}))
        classes = dict(params.get("featureClass") or {})
        if not with_shape:
            classes.pop("shape", None)
        params["featureClass"] = {k: (v or []) for k, v in classes.items()}
        return params

    @property
    def feature_classes(self) -> tuple[str, ...]:
        """The enabled feature classes."""
        return tuple((self.pyradiomics.get("featureClass") or {}).keys())


def load_params(path: Path | str | None = None) -> RadiomicsParams:
    """Read a radiomics parameter YAML (``None``: the packaged MRI parameters).

    ``path`` may also be the name of a packaged file (``radiomics_fast.yaml``).

    Raises
    ------
    RadiomicsError
        If the file is missing or lacks a ``pyradiomics`` section with ``featureClass``.
    """
    if path is None:
        path = MRI_PARAMS
    text: str
    candidate = Path(path)
    if candidate.is_file():
        text = candidate.read_text(encoding="utf-8")
        name = candidate.name
    else:
        packaged = resources.files("rgcds.analysis").joinpath(str(path))
        if not packaged.is_file():
            raise RadiomicsError(
                f"The radiomics parameter file {path} does not exist; pass a YAML file or one "
                f"of the packaged names {MRI_PARAMS}, {FAST_PARAMS}."
            )
        text = packaged.read_text(encoding="utf-8")
        name = str(path)
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("pyradiomics"), dict):
        raise RadiomicsError(f"The radiomics parameter file {name} has no 'pyradiomics' mapping.")
    if not data["pyradiomics"].get("featureClass"):
        raise RadiomicsError(f"The radiomics parameter file {name} enables no feature class.")
    return RadiomicsParams(
        name=name,
        pyradiomics=data["pyradiomics"],
        sequence_overrides=data.get("sequence_overrides") or {},
    )


@dataclass(frozen=True)
class _Task:
    region: str
    sequence: str
    with_shape: bool
    params: dict[str, Any]
    image: sitk.Image
    mask: sitk.Image


def _quiet_pyradiomics() -> None:
    import radiomics

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)


def _run_task(task: _Task) -> tuple[str, str, list[tuple[str, float]], str | None]:
    """Run one pyradiomics extraction (in a worker process or inline)."""
    _quiet_pyradiomics()
    from radiomics import featureextractor

    try:
        extractor = featureextractor.RadiomicsFeatureExtractor(task.params)
        result = extractor.execute(task.image, task.mask, label=1)
    except (ValueError, RuntimeError, IndexError) as exc:
        return task.region, task.sequence, [], f"{type(exc).__name__}: {exc}"
    rows: list[tuple[str, float]] = []
    for key, value in result.items():
        if key.startswith("diagnostics_"):
            continue
        try:
            rows.append((str(key), float(np.asarray(value))))
        except (TypeError, ValueError):
            continue
    return task.region, task.sequence, rows, None


def _mask_for(labels: sitk.Image, region: str, reference: sitk.Image) -> sitk.Image | None:
    array = sitk.GetArrayViewFromImage(labels)
    mask_array = np.isin(array, REGIONS[region]).astype(np.uint8)
    if not mask_array.any():
        return None
    mask = sitk.GetImageFromArray(mask_array)
    mask.CopyInformation(labels)
    same_grid = (
        mask.GetSize() == reference.GetSize()
        and np.allclose(mask.GetSpacing(), reference.GetSpacing(), atol=1e-4)
        and np.allclose(mask.GetOrigin(), reference.GetOrigin(), atol=1e-3)
        and np.allclose(mask.GetDirection(), reference.GetDirection(), atol=1e-4)
    )
    if not same_grid:
        mask = sitk.Resample(
            mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
        )
        if not sitk.GetArrayViewFromImage(mask).any():
            return None
    return mask


def default_workers() -> int:
    """Default worker count: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def extract_radiomics(
    images: Mapping[str, sitk.Image],
    labels: sitk.Image,
    *,
    study_uid: str,
    regions: Sequence[str] = DEFAULT_REGIONS,
    params: RadiomicsParams | Path | str | None = None,
    max_workers: int | None = None,
) -> pd.DataFrame:
    """Extract radiomic features for every (region, sequence) pair.

    Parameters
    ----------
    images
        Sequence key (``T1``, ``T1c``, ``T2``, ``FLAIR``, ``PET``) -> co-registered image.
        The label map is resampled (nearest neighbour) onto an image whose grid differs.
    labels
        BraTS label map (1 NCR, 2 ED, 3 ET).
    study_uid
        Study Instance UID, written in every row.
    regions
        Sub-regions to analyse; empty regions are skipped (logged).
    params
        Parameter set or file; the packaged MRI parameters by default.
    max_workers
        Worker processes; ``1`` runs inline (no subprocess); ``None`` uses
        :func:`default_workers`.

    Returns
    -------
    pandas.DataFrame
        Tidy table with columns :data:`FEATURE_COLUMNS`.

    Raises
    ------
    DicomInputError
        If no image is given.
    RadiomicsError
        If the parameters are invalid.
    """
    if not images:
        raise DicomInputError("Radiomics needs at least one image; none was given.")
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise RadiomicsError(f"Unknown regions {unknown}; use some of {sorted(REGIONS)}.")
    if not isinstance(params, RadiomicsParams):
        params = load_params(params)
    order = [s for s in SEQUENCES if s in images] + [s for s in images if s not in SEQUENCES]
    tasks: list[_Task] = []
    for region in regions:
        shape_done = "shape" not in params.feature_classes
        for sequence in order:
            image = images[sequence]
            mask = _mask_for(labels, region, image)
            if mask is None:
                logger.info("radiomics_region_empty", region=region, sequence=sequence)
                break
            tasks.append(
                _Task(
                    region=region,
                    sequence=sequence,
                    with_shape=not shape_done,
                    params=params.for_sequence(sequence, with_shape=not shape_done),
                    image=image,
                    mask=mask,
                )
            )
            shape_done = True
    workers = default_workers() if max_workers is None else max(1, int(max_workers))
    started = time.perf_counter()
    if workers == 1 or len(tasks) <= 1:
        results = [_run_task(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            results = list(pool.map(_run_task, tasks))
    rows: list[tuple[str, str, str, str, str, float]] = []
    failures = 0
    for region, sequence, features, error in results:
        if error is not None:
            failures += 1
            logger.warning("radiomics_failed", region=region, sequence=sequence, error=error)
            continue
        for feature, value in features:
            seq = "mask" if "_shape_" in feature else sequence
            rows.append((study_uid, region, seq, feature, ibsi_name(feature), value))
    logger.info(
        "radiomics_extracted",
        study_uid=study_uid,
        pairs=len(tasks),
        failures=failures,
        features=len(rows),
        workers=workers,
        seconds=round(time.perf_counter() - started, 2),
        params=params.name,
    )
    return pd.DataFrame(rows, columns=list(FEATURE_COLUMNS))


def write_features(table: pd.DataFrame, path: Path) -> Path:
    """Write a features table: Parquet when ``pyarrow`` is importable, CSV otherwise.

    Parameters
    ----------
    table
        The tidy table from :func:`extract_radiomics`.
    path
        Target path; its suffix is replaced by ``.parquet`` or ``.csv``.

    Returns
    -------
    Path
        The file written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import pyarrow  # noqa: F401

        target = path.with_suffix(".parquet")
        table.to_parquet(target, index=False)
    except ImportError:
        target = path.with_suffix(".csv")
        table.to_csv(target, index=False)
    return target


def to_wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per study, one column per ``{region}_{sequence}_{feature}`` (for models).

    The image-type prefix ``original_`` is dropped from column names.
    """
    feature = table["feature"].str.replace(r"^original_", "", regex=True)
    key = table["region"] + "_" + table["sequence"] + "_" + feature
    wide = (
        table.assign(column=key)
        .pivot_table(index="study_uid", columns="column", values="value", aggfunc="first")
        .sort_index(axis=1)
    )
    wide.columns.name = None
    return wide


__all__ = [
    "DEFAULT_REGIONS",
    "FAST_PARAMS",
    "FEATURE_COLUMNS",
    "IBSI_NAMES",
    "MRI_PARAMS",
    "SEQUENCES",
    "RadiomicsError",
    "RadiomicsParams",
    "default_workers",
    "extract_radiomics",
    "ibsi_name",
    "load_params",
    "to_wide",
    "write_features",
]
