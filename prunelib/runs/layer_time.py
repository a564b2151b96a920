"""Where a model's time goes, as the cut is guided by it: node by node for ``layer_ratios: time`` (node_times, on
the model each step cuts), and how much latency each layer gives back per MAC it loses for ``layer_ratios: latency``
(profile, once per run).

Layers do not save time in proportion to their MACs: elementwise work and memory traffic shrink with the channels,
not with their square, and narrow convolutions use the CPU's vector units less well. So the unpruned model and a
uniform trial cut of it (policy.TRIAL_RATIO of the prunable channels) are exported to ONNX and timed layer by layer
in onnxruntime's profiler, on the run's ``latency_threads``; a layer's gain is the time it saved over the MACs it lost,
and layers that save more time per MAC than the others take more of each step's cut (policy.gain_weights).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from prunelib.core.settings import Pruning, Timing
from prunelib.deployment import export
from prunelib.runs import policy
from prunelib.surgery import checkpoints, measuring, pruner

WARMUP = 5  # untimed runs before the profiled ones


def node_times(model, imgsz: int, timing: Timing) -> dict[str, float]:
    """ms per run of each of model's exported nodes, by module path (export.node_times): the model exported to ONNX
    through Ultralytics' exporter and run in onnxruntime's profiler on the run's latency_threads."""
    with tempfile.TemporaryDirectory(prefix="node-time-") as tmp:
        onnx = export.export(checkpoints.save_model(model, Path(tmp) / "model.pt"), "onnx", imgsz)
        return export.node_times(onnx, imgsz, timing.latency_runs, WARMUP, timing.latency_threads)


def profile(model, imgsz: int, settings: Pruning, timing: Timing, log=print) -> dict[int, float]:
    """{layer index: weight} of model's prunable layers from one timed trial cut of it (model is left as it was)."""
    trial = copy.deepcopy(model)
    pruner.prune(trial, settings, policy.TRIAL_RATIO, measuring.example_inputs(imgsz))
    layers = pruner.prunable_layers(model, settings)
    ms, macs = {}, {}
    with tempfile.TemporaryDirectory(prefix="layer-time-") as tmp:
        for label, m in (("before", model), ("after", trial)):
            onnx = export.export(checkpoints.save_model(m, Path(tmp) / f"{label}.pt"), "onnx", imgsz)
            ms[label] = export.layer_times(onnx, imgsz, timing.latency_runs, WARMUP, timing.latency_threads)
            macs[label] = {row["layer"]: row["macs"] for row in measuring.layer_table(m, imgsz)}
    saved_ms = {i: ms["before"].get(str(i), 0.0) - ms["after"].get(str(i), 0.0) for i in layers}
    saved_macs = {i: macs["before"][i] - macs["after"][i] for i in layers}
    weights = policy.gain_weights(saved_ms, saved_macs)
    for i in weights:
        log(
            f"layer {i} {type(model.model[i]).__name__}: {ms['before'].get(str(i), 0.0):.3f} -> "
            f"{ms['after'].get(str(i), 0.0):.3f} ms for {macs['before'][i] / max(macs['after'][i], 1):.2f}x fewer "
            f"MACs: weight {weights[i]:.2f}"
        )
    return weights
