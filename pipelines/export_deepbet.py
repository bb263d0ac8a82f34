"""Export deepbet's two TorchScript networks to ONNX for :mod:`rgcds.imaging.deepbet`.

deepbet 1.0.2 (MIT licence, Fisch et al. 2024) ships two TorchScript files in its wheel:
``data/models/bbox_model.pt`` (brain location on the whole volume resized to 128^3) and
``data/models/model.pt`` (brain mask on the brain's bounding box resized to 256^3). Both are
the same 3D LinkNet (input ``(N, 1, X, Y, Z)``, output the two-class softmax
``(N, 2, X, Y, Z)``, channel 1 = brain); the spatial axes are exported dynamic (any size
divisible by 32 works), so the runtime can also run smaller crops.

This is a build-time tool. It needs PyTorch, onnx and onnxruntime, which rgcds itself does
not depend on, so it runs in a separate virtual environment and imports nothing from rgcds::

    python3.11 -m venv /work/torchvenv
    /work/torchvenv/bin/pip install torch==2.13.0 numpy onnx onnxruntime
    /work/torchvenv/bin/python pipelines/export_deepbet.py \\
        --wheel deepbet-1.0.2-py3-none-any.whl --out models/deepbet-1.0.2

Without ``--wheel`` the TorchScript files of an installed deepbet are used. Nothing is
downloaded. Each source file's sha256 is checked against the wheel's RECORD (when read from
the wheel); each export is checked with the ONNX checker and run with ONNX Runtime (CPU) on
seeded random inputs at the network's own size and at one other size. The largest absolute
difference from TorchScript is printed; ONNX Runtime passes when its difference from a
float64 TorchScript run is at most ``--tolerance`` or twice float32 TorchScript's own (on
noise, float32 rounding alone moves PyTorch's softmax by about 5e-4).
The networks use instance normalisation on the input's own statistics, as in eval mode; the
exporter's warning that it exports ``instance_norm`` with ``train=True`` says just that.
ONNX Runtime's InstanceNormalization is not exact enough at 128^3 (see
:func:`two_pass_instance_norm`), so each one is rewritten as ReduceMean/Sub/Mul/Sqrt/Div.
``checksums.json`` in the output folder records the sha256 of the source ``.pt`` files and
of the ``.onnx`` files, the differences, and the versions used.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import importlib.util
import io
import json
import os
import platform
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEEPBET_VERSION = "1.0.2"
OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
DIVISOR = 32  # the LinkNet halves the grid five times


@dataclass(frozen=True)
class Network:
    """One of deepbet's networks: its file in the wheel, its ONNX name and its input size."""

    source: str
    onnx_name: str
    size: int
    other_size: int


NETWORKS = (
    Network("data/models/bbox_model.pt", "bbox_model.onnx", 128, 96),
    Network("data/models/model.pt", "model.onnx", 256, 160),
)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def read_sources(wheel: Path | None) -> dict[str, bytes]:
    """The TorchScript files by wheel path, from ``wheel`` or from an installed deepbet.

    Raises
    ------
    SystemExit
        When a file is missing or its sha256 differs from the wheel's RECORD.
    """
    if wheel is None:
        spec = importlib.util.find_spec("deepbet")
        if spec is None or spec.origin is None:
            raise SystemExit("deepbet is not installed here; pass --wheel with its .whl file.")
        root = Path(spec.origin).resolve().parents[1]
        out = {}
        for net in NETWORKS:
            path = root / net.source
            if not path.is_file():
                raise SystemExit(f"The installed deepbet has no {path}; pass --wheel instead.")
            out[net.source] = path.read_bytes()
        return out
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record_name = f"deepbet-{DEEPBET_VERSION}.dist-info/RECORD"
        if record_name not in names:
            raise SystemExit(
                f"{wheel} is not the deepbet {DEEPBET_VERSION} wheel (no {record_name})."
            )
        record = {}
        for line in archive.read(record_name).decode("utf-8").splitlines():
            parts = line.rsplit(",", 2)
            if len(parts) == 3 and parts[1].startswith("sha256="):
                record[parts[0]] = parts[1].removeprefix("sha256=")
        out = {}
        for net in NETWORKS:
            if net.source not in names:
                raise SystemExit(f"{wheel} holds no {net.source}.")
            data = archive.read(net.source)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            if record.get(net.source) != digest:
                raise SystemExit(
                    f"{net.source} in {wheel} does not match the sha256 in the wheel's RECORD."
                )
            out[net.source] = data
        return out


def two_pass_instance_norm(proto: Any) -> int:
    """Replace each InstanceNormalization node of a 3D network by an exact decomposition.

    ONNX Runtime's CPU InstanceNormalization sums a whole channel in float32 in one pass;
    at 128^3 (deepbet's first and last feature maps for a 256^3 input) that moves the
    normalised values by ~2e-4 and the softmax by ~5e-3, ten times float32 PyTorch's own
    error. Here the mean is taken one axis at a time (ReduceMean over z, then y, then x:
    no sum runs over more than one axis, so each stays short), and the variance is the mean
    of the squared deviations (two passes, no cancellation). Returns the nodes replaced.
    """
    from onnx import helper, numpy_helper

    graph = proto.graph
    constants = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t)
        for n in graph.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
    }
    constants.update({i.name: numpy_helper.to_array(i) for i in graph.initializer})
    nodes = []
    replaced = 0
    for node in graph.node:
        if node.op_type != "InstanceNormalization":
            nodes.append(node)
            continue
        x, scale, bias = node.input
        out = node.output[0]
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        tag = f"{out}/two_pass"

        def make(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
            nodes.append(helper.make_node(op, inputs, [name], name=f"{name}/{op}", **attrs))
            return name

        def spatial_mean(src: str, name: str) -> str:
            for axis in (4, 3, 2):
                src = make("ReduceMean", [src], f"{name}_{axis}", axes=[axis], keepdims=1)
            return src

        mean = spatial_mean(x, f"{tag}/mean")
        dev = make("Sub", [x, mean], f"{tag}/dev")
        var = spatial_mean(make("Mul", [dev, dev], f"{tag}/dev2"), f"{tag}/var")
        graph.initializer.append(numpy_helper.from_array(np.array(eps, np.float32), f"{tag}/eps"))
        sd = make("Sqrt", [make("Add", [var, f"{tag}/eps"], f"{tag}/var_eps")], f"{tag}/sd")
        gamma, beta = constants.get(scale), constants.get(bias)
        if gamma is not None and beta is not None and np.all(gamma == 1) and np.all(beta == 0):
            make("Div", [dev, sd], out)
            replaced += 1
            continue
        # An affine norm: the per-channel scale and bias broadcast as (C, 1, 1, 1).
        shape = f"{tag}/channel_shape"
        graph.initializer.append(
            numpy_helper.from_array(np.array([-1, 1, 1, 1], np.int64), shape)
        )
        normed = make("Div", [dev, sd], f"{tag}/normed")
        scaled = make("Mul", [normed, make("Reshape", [scale, shape], f"{tag}/scale")],
                      f"{tag}/scaled")
        make("Add", [scaled, make("Reshape", [bias, shape], f"{tag}/bias")], out)
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    # The ones/zeros constants that fed the replaced nodes are now unused: drop them.
    used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    keep = [n for n in graph.node if n.op_type != "Constant" or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(keep)
    return replaced


def export(model: Any, path: Path, size: int) -> int:
    """Export a TorchScript module to ONNX (opset 17, dynamic batch and spatial axes).

    Returns the number of InstanceNormalization nodes made exact
    (:func:`two_pass_instance_norm`).
    """
    import onnx
    import torch

    axes = {0: "batch", 2: "x", 3: "y", 4: "z"}
    tmp = path.with_name(path.name + ".tmp")
    torch.onnx.export(
        model,
        (torch.zeros(1, 1, size, size, size),),
        str(tmp),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
        opset_version=OPSET,
        dynamo=False,
    )
    proto = onnx.load(str(tmp))
    replaced = two_pass_instance_norm(proto)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return replaced


def differences(model: Any, path: Path, size: int, seed: int, threads: int) -> dict[str, float]:
    """Compare ONNX Runtime with TorchScript on a seeded random input of ``size``^3.

    The input is drawn like deepbet's normalised images (mean 0.449, sd 0.226). Returns the
    largest absolute difference of the softmax output between ONNX Runtime and TorchScript
    (both float32), and of each of them from TorchScript run in float64: on noise the
    network's float32 rounding alone moves PyTorch's probabilities by about 5e-4, so the
    float64 run tells whether ONNX Runtime is any less exact than PyTorch itself.
    """
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(seed)
    x = (0.449 + 0.226 * rng.standard_normal((1, 1, size, size, size))).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    got = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: x})[0], dtype=np.float64)
    with torch.no_grad():
        ref32 = model(torch.from_numpy(x)).numpy().astype(np.float64)
        exact = model.double()(torch.from_numpy(x).double()).numpy()
        model.float()
    if got.shape != ref32.shape:
        raise RuntimeError(f"ONNX Runtime returned shape {got.shape}, TorchScript {ref32.shape}.")
    return {
        "ort_vs_torchscript": float(np.abs(got - ref32).max()),
        "ort_vs_float64": float(np.abs(got - exact).max()),
        "torchscript_vs_float64": float(np.abs(ref32 - exact).max()),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--wheel", type=Path, default=None,
                        help=f"deepbet-{DEEPBET_VERSION}-py3-none-any.whl "
                        "(default: the TorchScript files of an installed deepbet)")
    parser.add_argument("--out", type=Path, default=Path("models") / f"deepbet-{DEEPBET_VERSION}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="ORT may differ from float64 TorchScript by this much, or by twice "
                        "float32 TorchScript's own difference when that is larger")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import onnx
    import onnxruntime as ort
    import torch

    torch.set_num_threads(args.threads)
    sources = read_sources(args.wheel)
    args.out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    failed = False
    for net in NETWORKS:
        data = sources[net.source]
        model = torch.jit.load(  # type: ignore[no-untyped-call, unused-ignore]
            io.BytesIO(data), map_location="cpu").eval()
        target = args.out / net.onnx_name
        replaced = export(model, target, net.size)
        print(f"{net.onnx_name}: {replaced} InstanceNormalization nodes made two-pass")
        diffs = {}
        for size in (net.size, net.other_size):
            d = differences(model, target, size, args.seed, args.threads)
            diffs[f"{size}^3"] = d
            print(
                f"{net.onnx_name}: input {size}^3, max |ORT - TorchScript| = "
                f"{d['ort_vs_torchscript']:.3e} (from float64: ORT {d['ort_vs_float64']:.3e}, "
                f"TorchScript {d['torchscript_vs_float64']:.3e})"
            )
            allowed = max(args.tolerance, 2.0 * d["torchscript_vs_float64"])
            failed |= not d["ort_vs_float64"] <= allowed
        files[net.onnx_name] = {
            "sha256": sha256_bytes(target.read_bytes()),
            "bytes": target.stat().st_size,
            "source": net.source,
            "source_sha256": sha256_bytes(data),
            "source_bytes": len(data),
            "instance_norms_two_pass": replaced,
            "input": INPUT_NAME,
            "output": OUTPUT_NAME,
            "trained_size": [net.size] * 3,
            "max_abs_diff": diffs,
        }
        print(f"{net.onnx_name}: {files[net.onnx_name]['bytes']} bytes, "
              f"sha256 {files[net.onnx_name]['sha256']} (from {net.source}, "
              f"sha256 {files[net.onnx_name]['source_sha256']})")
    record = {
        "model": f"deepbet {DEEPBET_VERSION}",
        "exported_by": "pipelines/export_deepbet.py",
        "exported": dt.date.today().isoformat(),
        "opset": OPSET,
        "dynamic_axes": ["batch", "x", "y", "z"],
        "spatial_divisor": DIVISOR,
        "tolerance": args.tolerance,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
        },
        "files": files,
    }
    (args.out / "checksums.json").write_text(json.dumps(record, indent=2) + "\n")
    if failed:
        print("ONNX Runtime is less exact than float32 TorchScript (see above).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
