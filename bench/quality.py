"""Quality: on the embedded default, prune to several MACs cuts and compare importance criteria at one of them.
Reports baseline mAP50-95, pruned (before fine-tuning) and recovered mAP of the last step, and retention
(recovered / baseline). The random criterion shows what a criterion buys. Runs are ordinary kit runs under
runs/bench-quality-*/ (resumable: a second call only adds what is missing).

    .venv/bin/python bench/quality.py [--steps 3] [--epochs 3] [--targets 1.5 2 3] [--at 2]
"""

from __future__ import annotations

import argparse

from common import default_params, publish
from prunelib.runs import parameters, stages
from prunelib.runs.folder import open_run


def run_one(name, **overrides):
    params_file = parameters.resolve("params/default.yaml")
    run = open_run([params_file], {"run_name": name, "sensitivity": False, **overrides})
    stages.replace(run)
    ledger = stages.prune(run)
    return run.read_json(run.unpruned_json), ledger[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs per step")
    ap.add_argument("--targets", type=float, nargs="+", default=[1.5, 2.0, 3.0])
    ap.add_argument("--at", type=float, default=2.0, help="MACs cut at which importances are compared")
    args = ap.parse_args()
    default_params()  # checks params/default.yaml
    common = dict(iterative_steps=args.steps, finetune_epochs=args.epochs, max_map_drop=1.0, target_prune_rate=0.5)
    rows = []
    for importance in ["l2"] + [i for i in parameters.IMPORTANCES if i != "l2"]:
        targets = args.targets if importance == "l2" else [args.at]
        for target in targets:
            name = f"bench-quality-{importance}-{target:g}x"
            base, last = run_one(name, importance=importance, target_speedup=target, **common)
            rows.append({"importance": importance, "target": f"{target:g}x", "MACs cut": f"{last['speedup']:.2f}x",
                         "steps": last["step"], "baseline mAP50-95": f"{base['map50_95']:.4f}",
                         "pruned mAP50-95": f"{last['pruned_map50_95']:.4f}",
                         "recovered mAP50-95": f"{last['map50_95']:.4f}",
                         "retention": f"{last['map50_95'] / base['map50_95']:.1%}"})  # fmt: skip
    publish("quality", f"Quality on the embedded default ({args.steps} steps, {args.epochs} fine-tuning epochs each)",
            rows)


if __name__ == "__main__":
    main()
