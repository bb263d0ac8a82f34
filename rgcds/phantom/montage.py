# (SimpleITK ships no type information.)
"""A one-figure overview of a phantom study: one axial slice per sequence with the truth outline.

Every series is read back from its DICOM files and resampled onto the T1c grid through the
known head poses (``truth/transforms``), so the panels show exactly what was written.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import SimpleITK as sitk
import structlog

from rgcds.phantom.study import PhantomStudy

logger = structlog.get_logger(__name__)

_ROLE_TITLES: dict[str, str] = {
    "T1": "T1 MPRAGE",
    "T1c": "T1 MPRAGE + gadobutrol",
    "T2": "T2 TSE",
    "FLAIR": "FLAIR",
    "PET": "[11C]methionine PET",
}


def read_series(directory: Path) -> sitk.Image:
    """Read a DICOM series folder as one float32 volume (rescale applied per slice).

    Parameters
    ----------
    directory : pathlib.Path
        Folder with the series' files only.

    Returns
    -------
    SimpleITK.Image
        The volume.
    """
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(directory)))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    image: sitk.Image = reader.Execute()
    return image


def suv_per_bqml(dataset: pydicom.Dataset) -> float:
    """SUVbw per Bq/ml from a PET header (QIBA: decay-corrected to the series start).

    Parameters
    ----------
    dataset : pydicom.Dataset
        Any instance of a PET series with Units BQML and DecayCorrection START.

    Returns
    -------
    float
        Multiply activity concentration in Bq/ml by this to get SUVbw.
    """
    rp = dataset.RadiopharmaceuticalInformationSequence[0]
    start = dt.datetime.strptime(str(rp.RadiopharmaceuticalStartDateTime)[:14], "%Y%m%d%H%M%S")
    scan = dt.datetime.strptime(
        str(dataset.SeriesDate) + str(dataset.SeriesTime)[:6], "%Y%m%d%H%M%S"
    )
    decay = math.exp(
        -math.log(2.0) * (scan - start).total_seconds() / float(rp.RadionuclideHalfLife)
    )
    return float(dataset.PatientWeight) * 1000.0 / (float(rp.RadionuclideTotalDose) * decay)


def _onto_reference(study: PhantomStudy, role: str, reference: sitk.Image) -> sitk.Image:
    image = read_series(study.series_by_role(role).directory)
    if role == "T1c":
        return image
    t1c_pose = sitk.ReadTransform(str(study.transforms_dir / "T1c_template_to_scanner.tfm"))
    pose = sitk.ReadTransform(str(study.transforms_dir / f"{role}_template_to_scanner.tfm"))
    composite = sitk.CompositeTransform(3)
    composite.AddTransform(pose)  # applied second: template -> this series' scanner space
    composite.AddTransform(t1c_pose.GetInverse())  # applied first: T1c scanner -> template
    return sitk.Resample(image, reference, composite, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _window(values: npt.NDArray[np.float32]) -> tuple[float, float]:
    inside = values[values > np.percentile(values, 60)]
    if inside.size == 0:
        return 0.0, 1.0
    return 0.0, float(np.percentile(inside, 99.7))


def write_montage(study: PhantomStudy, png_path: Path) -> None:
    """Save one axial slice through the tumour per sequence, with the truth outline, as PNG.

    Each series (T1, T1c, T2, FLAIR and PET if present) is read from its DICOM files and
    resampled onto the T1c grid; the slice is the T1c slice through the centre of the tumour
    core. Outlines: enhancing tumour red, necrosis yellow, oedema cyan.

    Parameters
    ----------
    study : PhantomStudy
        A study written by :func:`rgcds.phantom.write_study`.
    png_path : pathlib.Path
        Output file (parent folders are created).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    reference = read_series(study.series_by_role("T1c").directory)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(study.labels_native_path)))
    core = np.nonzero((labels == 1) | (labels == 3))
    k = round(float(np.mean(core[0]))) if core[0].size else labels.shape[0] // 2
    roles = [r for r in ("T1", "T1c", "T2", "FLAIR", "PET") if r in {s.role for s in study.series}]
    slices: dict[str, npt.NDArray[np.float32]] = {}
    for role in roles:
        arr = sitk.GetArrayFromImage(_onto_reference(study, role, reference))[k]
        if role == "PET":
            first = next(iter(sorted(study.series_by_role("PET").directory.glob("*.dcm"))))
            arr = arr * np.float32(suv_per_bqml(pydicom.dcmread(first, stop_before_pixels=True)))
        slices[role] = np.asarray(arr, dtype=np.float32)

    # Crop to the head (rows/columns where T1c has signal) for larger panels.
    t1c = slices["T1c"]
    head = t1c > 0.25 * float(np.percentile(t1c, 99))
    rows = np.nonzero(head.any(axis=1))[0]
    cols = np.nonzero(head.any(axis=0))[0]
    r0, r1 = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, t1c.shape[0])
    c0, c1 = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, t1c.shape[1])
    crop = (slice(max(r0 - 3, 0), r1 + 3), slice(max(c0 - 3, 0), c1 + 3))

    n = len(roles)
    fig, axes = plt.subplots(1, n, figsize=(2.9 * n, 3.6), facecolor="black")
    label_crop = labels[k][crop]
    for ax, role in zip(np.atleast_1d(axes), roles, strict=True):
        ax.set_facecolor("black")
        if role == "PET":
            im = ax.imshow(
                slices["PET"][crop], cmap="hot", vmin=0.0, vmax=4.5, interpolation="bilinear"
            )
            cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            cbar.ax.tick_params(colors="white", labelsize=7)
            cbar.set_label("SUVbw", color="white", fontsize=7)
        else:
            lo, hi = _window(slices[role])
            ax.imshow(slices[role][crop], cmap="gray", vmin=lo, vmax=hi, interpolation="bilinear")
        for value, colour in ((2, "cyan"), (1, "yellow"), (3, "red")):
            mask = (label_crop == value).astype(float)
            if mask.any():
                ax.contour(mask, levels=[0.5], colors=[colour], linewidths=0.7)
        ax.set_title(_ROLE_TITLES[role], color="white", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ("R", "L"):
            x = 0.03 if side == "R" else 0.97
            ax.text(
                x,
                0.03,
                side,
                transform=ax.transAxes,
                color="white",
                fontsize=7,
                ha="left" if side == "R" else "right",
            )
    c = study.clinical
    t = c.tumour
    fig.suptitle(
        f"rgcds phantom, seed {study.seed} ({study.size}) - SYNTHETIC, research use only - "
        f"{t.lobe} lobe, {t.hemisphere}; necrosis {t.necrosis_ml:.0f} ml, enhancing "
        f"{t.enhancing_ml:.0f} ml, oedema {t.oedema_ml:.0f} ml",
        color="white",
        fontsize=9,
    )
    handles = [
        Line2D([], [], color="red", label="enhancing (3)"),
        Line2D([], [], color="yellow", label="necrotic core (1)"),
        Line2D([], [], color="cyan", label="oedema (2)"),
    ]
    fig.legend(
        handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=8, labelcolor="white"
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110, facecolor="black")
    plt.close(fig)
    logger.info("phantom.montage_written", study_uid=study.study_instance_uid, panels=n)
