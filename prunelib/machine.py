"""The CPU a run or a benchmark is measured on: its model name and the instruction-set flags that change which kernels
the runtimes pick (and so their speed, and in OpenVINO their default precision)."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

# The flags that decide the kernels: vector width (AVX2, AVX-512), 8-bit dot products (VNNI), bfloat16 and the AMX
# tile units. Reported in this order, those the CPU has.
KERNEL_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


@lru_cache(maxsize=1)
def cpu() -> dict:
    """{"model": name, "flags": [the KERNEL_FLAGS it has]}: from /proc/cpuinfo on Linux, else what platform says
    (flags then unknown: an empty list)."""
    model, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key in ("flags", "Features"):
                flags = set(value.split())
            if key == "" and flags:  # the first processor's block is enough: the cores are alike
                break
    return {"model": model, "flags": [f for f in KERNEL_FLAGS if f in flags]}


def describe() -> str:
    """One line for a table's header: 'AMD EPYC (avx2, fma)'."""
    c = cpu()
    return f"{c['model']} ({', '.join(c['flags']) or 'no AVX2'})"


@lru_cache(maxsize=1)
def channel_block() -> int:
    """The channel block of onnxruntime's convolution kernels on this CPU (their NCHWc layout; the kernels pick it by
    vector width: 8 floats with AVX2, 16 with AVX-512), measured: the smallest channel count of 4, 8, 16 and 32 at
    which its graph optimizer reorders a convolution's input into blocks (below the block it reads the plain layout).
    A convolution computes its channels rounded up to whole blocks, so a cut that leaves a count between two multiples
    saves MACs but not time. 1 where the CPU has no blocked kernels (nothing to align to)."""
    import tempfile  # the probe's modules, slow to load: imported when a run first asks (once per process)
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    for c in (4, 8, 16, 32):
        w = numpy_helper.from_array(np.ones((c, c, 1, 1), np.float32), "w")
        graph = helper.make_graph(
            [helper.make_node("Conv", ["x", "w"], ["y"])],
            "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 8, 8])],
            [w],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        with tempfile.TemporaryDirectory() as tmp:
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.optimized_model_filepath = f"{tmp}/optimized.onnx"
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            opts.log_severity_level = 3  # its warning that the saved graph is specific to this CPU is the point here
            ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            optimized = onnx.load(f"{tmp}/optimized.onnx")
        if any(n.op_type == "ReorderInput" for n in optimized.graph.node):
            return c
    return 1
