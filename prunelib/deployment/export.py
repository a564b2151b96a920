"""ONNX export through Ultralytics' exporter, checked with onnxruntime against torch; latency of both runtimes."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch

from prunelib.surgery import checkpoints, measuring
from prunelib.offline import threads


def export_onnx(pt_path, imgsz: int, simplify: bool = True, opset: int = 0) -> Path:
    """Export a checkpoint to ONNX next to it (batch 1, static shape); return the .onnx path."""
    from ultralytics import YOLO

    out = YOLO(str(pt_path)).export(
        format="onnx", imgsz=imgsz, simplify=simplify, opset=opset or None, dynamic=False, device="cpu", verbose=False
    )
    return Path(out)


def session(onnx_path, n_threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads(n_threads)
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def torch_runner(model):
    """A callable running model (eval, fused as Ultralytics does for inference) on a tensor, no grad."""
    m = copy.deepcopy(model).float().eval()
    if hasattr(m, "fuse"):
        m = m.fuse(verbose=False) if "verbose" in m.fuse.__code__.co_varnames else m.fuse()

    def run(x):
        with torch.inference_mode():
            return m(x)

    return run


def onnx_runner(sess):
    name = sess.get_inputs()[0].name

    def run(x):
        return sess.run(None, {name: x.numpy() if isinstance(x, torch.Tensor) else x})

    return run


def check_onnx(pt_path, onnx_path, imgsz: int) -> float:
    """max |torch - onnxruntime| over the detection output for one random image."""
    model = checkpoints.load_model(pt_path)
    x = measuring.example_inputs(imgsz)
    ref = torch_runner(model)(x)
    ref = ref[0] if isinstance(ref, (list, tuple)) else ref
    got = onnx_runner(session(onnx_path))(x)[0]
    return float(np.abs(ref.numpy() - got).max())


def latency_table(models: dict, imgsz: int, runs: int, warmup: int, n_threads: int = 0) -> list[dict]:
    """Latency (ms, batch 1, median, interleaved) of each {label: (pt_path, onnx_path)} in torch and onnxruntime."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads(n_threads))
    x = measuring.example_inputs(imgsz)
    fns, loaded = {}, {}
    for label, (pt, onnx_path) in models.items():
        loaded[label] = checkpoints.load_model(pt)
        fns[(label, "torch")] = torch_runner(loaded[label])
        if onnx_path:
            fns[(label, "onnxruntime")] = onnx_runner(session(onnx_path, n_threads))
    try:
        med = measuring.compare_latency(fns, x, runs, warmup)
    finally:
        torch.set_num_threads(before)
    rows = []
    for (label, runtime), ms in med.items():
        pt, onnx_path = models[label]
        macs, n = measuring.macs_params(loaded[label], imgsz)
        rows.append(dict(model=label, runtime=runtime, threads=threads(n_threads), latency_ms=round(ms, 2), macs=macs,
                         params=n,
                         file_mb=round(os.path.getsize(onnx_path if runtime == "onnxruntime" else pt) / 2**20, 2)))
    return rows


def with_speedups(rows: list[dict], reference: str) -> list[dict]:
    """Add latency and MACs speed-up vs the reference model in the same runtime."""
    ref = {r["runtime"]: r for r in rows if r["model"] == reference}
    out = []
    for r in rows:
        b = ref[r["runtime"]]
        out.append({**r, "latency_speedup": round(b["latency_ms"] / r["latency_ms"], 2),
                    "macs_speedup": round(b["macs"] / r["macs"], 2)})
    return out
