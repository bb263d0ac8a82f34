"""MONAI transforms and inferer to the card's ``monai`` section (:mod:`rgcds.inference.monai_card`).

Part of :mod:`rgcds.inference.import_monai`: each instantiated preprocessing and
postprocessing transform and the ``SlidingWindowInferer`` is read and translated into the
steps :mod:`rgcds.inference.monai_bundle` replays; anything rgcds cannot replay exactly is
refused with its name (:class:`~rgcds.inference.onnx_export.ImportRefusedError`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from rgcds.inference.onnx_export import ImportRefusedError

#: Transforms that change nothing rgcds has to replay (loading, typing, channel-first).
_PASS = {"LoadImaged", "LoadImage", "EnsureChannelFirstd", "EnsureChannelFirst", "EnsureTyped",
         "EnsureType", "ToTensord", "ToTensor", "SaveImaged", "SaveImage", "ToDeviced",
         "ToDevice", "ToNumpyd"}


def _one(value: Any, what: str) -> Any:
    """The single value of a per-key MONAI option (the transforms keep one per key)."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    if len({str(v) for v in values}) != 1:
        raise ImportRefusedError(f"{what} differs between keys ({values}); rgcds cannot tell "
                                 "which applies to the image.")
    return values[0]


def _name(obj: Any) -> str:
    return type(obj).__name__


def _to_translate(transforms: list[Any], names: list[str]) -> Iterator[tuple[Any, str]]:
    """Each transform and its class name, noting every name in ``names``; skip :data:`_PASS`."""
    for t in transforms:
        name = _name(t)
        names.append(name)
        if name in _PASS:
            continue
        yield t, name


def _translate_pre(transforms: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    steps: list[dict[str, Any]] = []
    names: list[str] = []
    for t, name in _to_translate(transforms, names):
        if name == "CastToTyped":
            if "float32" not in str(_one(t.dtype, "CastToTyped dtype")):
                raise ImportRefusedError("CastToTyped to a type other than float32 is not run "
                                         "by rgcds.")
        elif name == "Orientationd":
            o = t.ornt_transform
            if o.as_closest_canonical or o.axcodes is None or o.labels not in (
                    None, (("L", "R"), ("P", "A"), ("I", "S"))):
                raise ImportRefusedError("Orientationd with as_closest_canonical or custom labels "
                                         "is not run by rgcds; give axcodes.")
            steps.append({"transform": "Orientationd", "axcodes": str(o.axcodes)})
        elif name == "Spacingd":
            sp = t.spacing_transform
            if sp.diagonal or sp.recompute_affine or bool(_one(t.scale_extent, "scale_extent")):
                raise ImportRefusedError("Spacingd with diagonal, recompute_affine or "
                                         "scale_extent is not run by rgcds.")
            if np.isfinite(np.asarray(sp.min_pixdim, dtype=float)).any() or np.isfinite(
                    np.asarray(sp.max_pixdim, dtype=float)).any():
                raise ImportRefusedError("Spacingd with min_pixdim/max_pixdim is not run by "
                                         "rgcds.")
            if bool(_one(t.align_corners, "Spacingd align_corners")):
                raise ImportRefusedError("Spacingd with align_corners=True is not run by rgcds.")
            mode = str(getattr(_one(t.mode, "Spacingd mode"), "value", _one(t.mode, "mode")))
            mode = {"1": "bilinear", "0": "nearest"}.get(mode, mode)
            pad = str(getattr(_one(t.padding_mode, "padding"), "value",
                              _one(t.padding_mode, "padding")))
            if mode not in ("bilinear", "nearest") or pad not in ("border", "zeros"):
                raise ImportRefusedError(f"Spacingd mode={mode}, padding_mode={pad}: rgcds runs "
                                         "bilinear or nearest with border or zeros padding.")
            pixdim = [float(p) for p in np.asarray(sp.pixdim, dtype=float).ravel()]
            if len(pixdim) < 3:
                pixdim += [pixdim[-1]] * (3 - len(pixdim))
            steps.append({"transform": "Spacingd", "pixdim": pixdim[:3], "mode": mode,
                          "padding_mode": pad})
        elif name == "NormalizeIntensityd":
            n = t.normalizer
            if n.subtrahend is not None or n.divisor is not None:
                raise ImportRefusedError("NormalizeIntensityd with a fixed subtrahend or divisor "
                                         "is not run by rgcds.")
            steps.append({"transform": "NormalizeIntensityd", "nonzero": bool(n.nonzero),
                          "channel_wise": bool(n.channel_wise)})
        elif name == "ScaleIntensityRanged":
            s = t.scaler
            steps.append({"transform": "ScaleIntensityRanged", "a_min": float(s.a_min),
                          "a_max": float(s.a_max),
                          "b_min": None if s.b_min is None else float(s.b_min),
                          "b_max": None if s.b_max is None else float(s.b_max),
                          "clip": bool(s.clip)})
        else:
            raise ImportRefusedError(
                f"The bundle's preprocessing uses {name}, which rgcds cannot run exactly; rgcds "
                "runs Orientationd, Spacingd, NormalizeIntensityd, ScaleIntensityRanged (and "
                "loading/typing transforms)."
            )
    return steps, names


def _translate_post(transforms: list[Any]) -> tuple[list[str], bool, float, list[str]]:
    post: list[str] = []
    names: list[str] = []
    nearest = False
    threshold = 0.5
    for t, name in _to_translate(transforms, names):
        if name == "Activationsd":
            if any(o is not None for o in t.other):
                raise ImportRefusedError("Activationsd with 'other' is not run by rgcds.")
            sig, soft = bool(_one(t.sigmoid, "sigmoid")), bool(_one(t.softmax, "softmax"))
            if sig or soft:
                post.append("sigmoid" if sig else "softmax")
        elif name == "Invertd":
            nearest = bool(_one(t.nearest_interp, "Invertd nearest_interp"))
            post.append("invert")
        elif name == "AsDiscreted":
            argmax = bool(_one(t.argmax, "argmax"))
            thr = _one(t.threshold, "threshold")
            if any(o for o in t.to_onehot if o) or any(r for r in t.rounding if r):
                raise ImportRefusedError("AsDiscreted with to_onehot or rounding is not run by "
                                         "rgcds.")
            if argmax == (thr is not None):
                raise ImportRefusedError("AsDiscreted must do argmax or threshold (one of them).")
            post.append("argmax" if argmax else "threshold")
            if thr is not None:
                threshold = float(thr)
        else:
            raise ImportRefusedError(
                f"The bundle's postprocessing uses {name}, which rgcds cannot run exactly; rgcds "
                "runs Activationsd, Invertd, AsDiscreted (and saving/typing transforms)."
            )
    if "invert" not in post:
        raise ImportRefusedError("The bundle's postprocessing has no Invertd: its output is not "
                                 "mapped back to the input grid, so rgcds cannot place it.")
    if not any(p in ("argmax", "threshold") for p in post):
        raise ImportRefusedError("The bundle's postprocessing has no AsDiscreted (argmax or "
                                 "threshold); rgcds needs a discrete output.")
    return post, nearest, threshold, names


def _inferer(inferer: Any) -> dict[str, Any]:
    if _name(inferer) != "SlidingWindowInferer":
        raise ImportRefusedError(f"The bundle's inferer is {_name(inferer)}; rgcds runs "
                                 "SlidingWindowInferer.")
    roi = [int(r) for r in inferer.roi_size]
    if len(roi) != 3 or any(r <= 0 for r in roi):
        raise ImportRefusedError(f"SlidingWindowInferer roi_size {roi}: rgcds needs a 3D ROI "
                                 "with positive sizes.")
    overlap = inferer.overlap
    if isinstance(overlap, list | tuple):
        overlap = _one(overlap, "overlap")
    pad = str(getattr(inferer.padding_mode, "value", inferer.padding_mode))
    mode = str(getattr(inferer.mode, "value", inferer.mode))
    sigma = inferer.sigma_scale
    if isinstance(sigma, list | tuple):
        sigma = _one(sigma, "sigma_scale")
    if (pad != "constant" or mode not in ("constant", "gaussian")
            or inferer.roi_weight_map is not None):
        raise ImportRefusedError(f"SlidingWindowInferer mode={mode}, padding_mode={pad}: rgcds "
                                 "runs constant or gaussian blending with constant padding.")
    return {"roi_size": roi, "sw_batch_size": int(inferer.sw_batch_size),
            "overlap": float(overlap), "blend": mode, "sigma_scale": float(sigma),
            "pad_value": float(inferer.cval)}
