"""Real speed-up: latency of original vs pruned at batch 1 (torch and onnxruntime, median of interleaved runs in one
process) against the MACs ratio, and what changes the gap: channel alignment (round_to), global ranking, graph
slimming, threads. Pruned without fine-tuning: latency does not depend on the weights' values.

    .venv/bin/python bench/speedup.py [--target 2.0] [--runs 50]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

from common import baseline_model, default_params, publish
from prunelib.deployment import export
from prunelib.runs import policy
from prunelib.surgery import checkpoints, measuring, pruner
from prunelib.surgery.replacement import replace_c3k2

VARIANTS = [  # (label, parameter overrides, onnx simplify, threads)
    ("local, no alignment (2 threads)", {}, True, 0),
    ("local, round_to=8", {"round_to": 8}, True, 0),
    ("local, round_to=16", {"round_to": 16}, True, 0),
    ("global ranking, round_to=8", {"round_to": 8, "global_pruning": True, "max_pruning_ratio": 0.8}, True, 0),
    ("local, round_to=8, no onnxslim", {"round_to": 8}, False, 0),
    ("local, no alignment, 1 thread", {}, True, 1),
    ("local, round_to=8, 1 thread", {"round_to": 8}, True, 1),
    ("local, round_to=16, 1 thread", {"round_to": 16}, True, 1),
]


def prune_to(model, params, target, x):
    base = measuring.macs_params(model, params["imgsz"])[0]
    ratio = policy.speedup_step_ratio(target, 4)
    for _ in range(12):
        pruner.build_pruner(model, params, ratio, x).step()
        if base / measuring.macs_params(model, params["imgsz"])[0] >= target:
            break
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=float, default=2.0, help="MACs speed-up to prune to")
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    params = default_params()
    imgsz = params["imgsz"]
    x = measuring.example_inputs(imgsz)
    original = checkpoints.load_model(baseline_model(params))
    replace_c3k2(original)
    tmp = Path(tempfile.mkdtemp(prefix="bench-speedup-"))
    rows = []
    for label, overrides, simplify, n_threads in VARIANTS:
        p = {**params, **overrides}
        pruned = prune_to(copy.deepcopy(original), p, args.target, x)
        d = tmp / label.replace(" ", "_").replace(",", "").replace("=", "")
        pts = {"original": checkpoints.save_model(original, d / "original.pt"),
               "pruned": checkpoints.save_model(pruned, d / "pruned.pt")}  # fmt: skip
        models = {k: {"pt": v, "onnx": export.export(v, "onnx", imgsz, simplify=simplify)} for k, v in pts.items()}
        table = export.with_speedups(export.latency_table(models, imgsz, args.runs, 10, n_threads), "original")
        for r in table:
            if r["model"] == "pruned":
                rows.append({"variant": label, "runtime": r["runtime"], "MACs ratio": r["macs_speedup"],
                             "latency ratio": r["latency_speedup"],
                             "latency/MACs": round(r["latency_speedup"] / r["macs_speedup"], 2),
                             "pruned ms": r["latency_ms"],
                             "original ms": next(o["latency_ms"] for o in table
                                                 if o["model"] == "original" and o["runtime"] == r["runtime"])})  # fmt: skip
    publish("speedup", f"Real speed-up at a {args.target}x MACs cut (imgsz {imgsz}, batch 1)", rows,
            notes="latency/MACs = 1.0 is the physical limit: every MAC removed turned into time saved. "
                  "Rows without a thread count use all cores.")


if __name__ == "__main__":
    main()
