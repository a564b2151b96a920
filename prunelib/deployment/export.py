"""Export through Ultralytics' exporter (ONNX, TorchScript, OpenVINO; INT8 ONNX by its static quantization), each
export checked against torch; batch-1 latency in every runtime; per-layer time in onnxruntime's profiler."""

from __future__ import annotations

import copy
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from prunelib.offline import threads
from prunelib.surgery import checkpoints, measuring

RUNTIMES = {"onnx": "onnxruntime", "torchscript": "torchscript", "openvino": "openvino"}  # format -> what runs it


def export(pt_path, fmt: str, imgsz: int, simplify: bool = True, opset: int = 0, int8_data=None,
           int8_fraction: float = 1.0) -> Path:
    """Export a checkpoint next to it (batch 1, static shape) in an Ultralytics format; return the file or folder.

    int8_data: a data YAML whose train split calibrates an INT8 ONNX export, written as ``<name>_int8.onnx``
    (Ultralytics deletes the float ``<name>.onnx`` it quantized: export INT8 before the float file you keep)."""
    from ultralytics import YOLO

    args = dict(format=fmt, imgsz=imgsz, dynamic=False, device="cpu", verbose=False)
    if fmt == "onnx":
        args |= dict(simplify=simplify, opset=opset or None)
    if int8_data:
        args |= dict(quantize=8, data=str(int8_data), split="train", fraction=int8_fraction)
    return Path(YOLO(str(pt_path)).export(**args))


def session(onnx_path, n_threads: int = 0, profile_prefix: str = ""):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads(n_threads)
    opts.inter_op_num_threads = 1
    if profile_prefix:
        opts.enable_profiling, opts.profile_file_prefix = True, profile_prefix
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def _first(y) -> np.ndarray:
    """The first output of a model: the predictions a runtime's output0 holds (a segmentation model's first output is
    itself a list of predictions and mask prototypes)."""
    while isinstance(y, (list, tuple)):
        y = y[0]
    return y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)


def torch_runner(model):
    """A callable running model (eval, fused as Ultralytics does for inference) on a tensor; its first output."""
    m = copy.deepcopy(model).float().eval()
    if hasattr(m, "fuse"):
        m = m.fuse(verbose=False) if "verbose" in m.fuse.__code__.co_varnames else m.fuse()

    def run(x):
        with torch.inference_mode():
            return _first(m(x))

    return run


def runner(path, fmt: str, n_threads: int = 0):
    """A callable running an exported model (batch 1) on a tensor in the format's runtime; its first output."""
    if fmt == "onnx":
        sess = session(path, n_threads)
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x.numpy()})[0]
    if fmt == "torchscript":
        m = torch.jit.load(str(path), map_location="cpu").eval()

        def run(x):
            with torch.inference_mode():
                return _first(m(x))

        return run
    if fmt == "openvino":
        import openvino as ov

        xml = next(Path(path).glob("*.xml"))
        compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_NUM_THREADS": threads(n_threads)})
        return lambda x: compiled(x.numpy())[0]
    raise ValueError(f"format {fmt!r}: expected one of {', '.join(RUNTIMES)}")


def max_abs_diff(pt_path, exported: dict, imgsz: int) -> dict[str, float]:
    """{format: max |torch - exported|} over the first output for one random image; exported: {format: path}. The
    checkpoint runs in torch once."""
    x = measuring.example_inputs(imgsz)
    ref = torch_runner(checkpoints.load_model(pt_path))(x)
    return {fmt: float(np.abs(ref - runner(path, fmt)(x)).max()) for fmt, path in exported.items()}


def latency_table(models: dict, imgsz: int, runs: int, warmup: int, n_threads: int = 0) -> list[dict]:
    """Latency (ms, batch 1, median of interleaved runs) of each model in each runtime, with MACs, parameters and
    file size. models: {label: {"pt": checkpoint (MACs, parameters), "torch": bool (default True: time the
    checkpoint in torch too), <format>: exported file, ...}}."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads(n_threads))
    x = measuring.example_inputs(imgsz)
    fns, files, size, counted = {}, {}, {}, {}
    for label, paths in models.items():
        model = checkpoints.load_model(paths["pt"])
        if paths["pt"] not in counted:  # a checkpoint behind several labels (FP32 and INT8) is counted once
            counted[paths["pt"]] = measuring.macs_params(model, imgsz)
        size[label] = counted[paths["pt"]]
        if paths.get("torch", True):
            fns[(label, "torch")], files[(label, "torch")] = torch_runner(model), paths["pt"]
        for fmt, runtime in RUNTIMES.items():
            if paths.get(fmt):
                fns[(label, runtime)], files[(label, runtime)] = runner(paths[fmt], fmt, n_threads), paths[fmt]
    try:
        med = measuring.compare_latency(fns, x, runs, warmup)
    finally:
        torch.set_num_threads(before)
    return [dict(model=label, runtime=rt, threads=threads(n_threads), latency_ms=round(ms, 2), macs=size[label][0],
                 params=size[label][1], file_mb=round(size_mb(files[(label, rt)]), 2))
            for (label, rt), ms in med.items()]  # fmt: skip


def size_mb(path) -> float:
    p = Path(path)
    return (sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size) / 2**20


def with_speedups(rows: list[dict], reference: str) -> list[dict]:
    """Add latency and MACs speed-up vs the reference model in the same runtime."""
    ref = {r["runtime"]: r for r in rows if r["model"] == reference}
    return [{**r, "latency_speedup": round(ref[r["runtime"]]["latency_ms"] / r["latency_ms"], 2),
             "macs_speedup": round(ref[r["runtime"]]["macs"] / r["macs"], 2)}
            for r in rows if r["runtime"] in ref]  # fmt: skip


_LAYER = re.compile(r"/model\.(\d+)/")  # Ultralytics' ONNX node names: /model.<layer>/<module path>/<op>


def layer_times(onnx_path, imgsz: int, runs: int, warmup: int, n_threads: int = 0) -> dict[str, float]:
    """Mean ms per run spent in each top-level layer's kernels (``"<i>"``; nodes of no layer: ``"other"``), from
    onnxruntime's profiler, warm-up runs left out."""
    x = measuring.example_inputs(imgsz).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        sess = session(onnx_path, n_threads, profile_prefix=str(Path(tmp) / "profile"))
        name = sess.get_inputs()[0].name
        for _ in range(warmup + runs):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    first = starts[warmup] if len(starts) > warmup else 0
    out: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first:
            m = _LAYER.search(e["name"])
            key = m.group(1) if m else "other"
            out[key] = out.get(key, 0.0) + e["dur"] / 1000 / runs
    return out


def layer_rows(before: list[dict], after: list[dict], t_before: dict, t_after: dict) -> list[dict]:
    """Per layer (and the nodes of no layer, 'other'): onnxruntime time before and after pruning, and how much time and
    MACs fell (x = times fewer)."""
    layers = [(str(b["layer"]), b["layer"], b["type"], b["macs"] / a["macs"] if a["macs"] else None)
              for b, a in zip(before, after)] + [("other", "other", "(no layer)", None)]  # fmt: skip
    return [{"layer": layer, "type": kind, "ms_before": round(t_before[key], 3), "ms_after": round(t_after[key], 3),
             "time_ratio": round(t_before[key] / t_after[key], 2),
             "macs_ratio": round(macs, 2) if macs is not None else None}
            for key, layer, kind, macs in layers if key in t_before and key in t_after]  # fmt: skip
