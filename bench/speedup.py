"""Real speed-up: batch-1 latency of the unpruned model and of 2x cuts made with each alignment (round_to) and layer
share (layer_ratios) against their MACs ratio, on both cases (the embedded default at 320 px, the user-style model
of bench/user_case.py at 256 px), in onnxruntime at one thread and at all cores.

Every model of a case and thread count is timed in one series of alternating blocks of runs (ratios within one run: the
machine is noisy). Each cut is one step to the target by the loop's own speed-up goal (pruned copies measured until the
MACs land); pruned without fine-tuning, as latency does not depend on the weights' values.

    .venv/bin/python bench/speedup.py [--target 2.0] [--runs 100] [--cases embedded user]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from functools import partial
from pathlib import Path

import user_case
from common import HEAD_WHOLE, baseline_model, default_params, publish
from prunelib.core.settings import Pruning, Timing
from prunelib.deployment import export
from prunelib.offline import cores
from prunelib.runs import layer_time, loop, policy
from prunelib.surgery import checkpoints, measuring, pruner
from prunelib.surgery.replacement import replace_c3k2

VARIANTS = {  # label -> parameter overrides of the defaults
    "no alignment": {"round_to": 0},
    "round_to 4": {"round_to": 4},
    "round_to 8": {"round_to": 8},
    "round_to 16": {"round_to": 16},
    "latency shares": {"round_to": 0, "layer_ratios": "latency"},
    "latency shares, round_to 8": {"round_to": 8, "layer_ratios": "latency"},
}


def cut(model, params: dict, target: float):
    """A copy of model cut to target x fewer MACs in one step, as the loop's speed-up goal cuts it."""
    x = measuring.example_inputs(params["imgsz"])
    weights = (
        layer_time.profile(model, params["imgsz"], Pruning.of(params), Timing.of(params), log=lambda _: None)
        if params["layer_ratios"] == "latency"
        else None
    )
    shares = partial(policy.layer_ratios, weights, most=0.9)
    settings = Pruning.of(params)
    unpruned = {"channels": pruner.prunable_channels(model, settings, x),
                "macs": measuring.macs_params(model, params["imgsz"])[0]}  # fmt: skip
    trial = loop.trial(model, settings, params["imgsz"], x, layer_ratios=shares)
    ratio = policy.SpeedupGoal(target, 1, 1).ratio(1, unpruned, unpruned, trial=trial)
    m = copy.deepcopy(model)
    pruner.prune(m, settings, ratio, x, layer_ratios=shares(ratio))
    return m


def case_rows(case: str, args) -> list[dict]:
    params = default_params(**HEAD_WHOLE) if case == "embedded" else default_params(imgsz=256, **HEAD_WHOLE)
    source = baseline_model(params) if case == "embedded" else user_case.model()
    original = checkpoints.load_model(source)
    replace_c3k2(original)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-speedup-{case}-"))
    models = {"unpruned": {"pt": checkpoints.save_model(original, tmp / "unpruned.pt")}}
    for label, overrides in VARIANTS.items():
        pt = checkpoints.save_model(cut(original, {**params, **overrides}, args.target), tmp / f"{len(models)}.pt")
        models[label] = {"pt": pt}
    for m in models.values():
        m |= {"torch": False, "onnx": export.export(m["pt"], "onnx", params["imgsz"])}
    rows = []
    for n in sorted({1, cores()}):
        table = export.with_speedups(export.latency_table(models, params["imgsz"], args.runs, 10, n), "unpruned")
        rows += [{"case": case, "threads": n, "cut": r["model"], "MACs ratio": r["macs_speedup"],
                  "latency ratio": r["latency_speedup"],
                  "latency/MACs": round(r["latency_speedup"] / r["macs_speedup"], 2), "ms": r["latency_ms"]}
                 for r in table]  # fmt: skip
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", type=float, default=2.0, help="MACs speed-up to cut to")
    ap.add_argument("--runs", type=int, default=100, help="timed runs per model (in blocks of measuring.BLOCK, models in turn)")
    ap.add_argument("--cases", nargs="+", default=["embedded", "user"], choices=["embedded", "user"])
    args = ap.parse_args()
    rows = [row for case in args.cases for row in case_rows(case, args)]
    publish("speedup", f"Real speed-up of {args.target:g}x MACs cuts in onnxruntime (batch 1)", rows, notes=NOTES)


NOTES = """
latency/MACs = 1.0 would mean every MAC removed turned into time saved. 'latency shares' = `layer_ratios: latency`
(each layer's share of the cut by the time it saved per MAC in a timed trial cut, prunelib/runs/layer_time.py).
"""

if __name__ == "__main__":
    main()
