"""Quality: the sweeps params/sweeps/quality-*.yaml (the default criterion at 1.5x/2x/3x MACs cuts; every criterion
at 2x), run with `prunelib sweep` (resumable: a second call only runs what is missing), and the table of unpruned,
pruned (before fine-tuning) and recovered mAP50-95 of each run's last step, and retention. The random criterion
shows what a criterion buys.

    .venv/bin/python bench/quality.py [--jobs 1]
"""

from __future__ import annotations

import argparse

from common import publish
from prunelib.runs import load_run, sweep

SWEEPS = ["params/sweeps/quality-targets.yaml", "params/sweeps/quality-importance.yaml"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (threads divided)")
    args = ap.parse_args()
    rows = []
    for sweep_file in SWEEPS:
        plan = sweep.load(sweep_file)
        sweep.run_sweep(plan, jobs=args.jobs)
        for row in sweep.compare(plan.root)["rows"]:
            run = load_run(plan.root / row["run"])
            last = run.read_ledger()[-1]
            rows.append({"sweep": plan.name, "importance": run.params["importance"],
                         "target": f"{run.params['target_speedup']:g}x",
                         "MACs cut": f"{row['MACs speed-up']:.2f}x", "steps": last.step,
                         "unpruned mAP50-95": f"{row['unpruned mAP50-95']:.4f}",
                         "pruned mAP50-95": f"{last.pruned_map50_95:.4f}",
                         "recovered mAP50-95": f"{row['final mAP50-95']:.4f}",
                         "retention": f"{row['retention']:.1%}"})  # fmt: skip
    publish("quality", "Quality on the embedded default (3 steps, 3 fine-tuning epochs each)", rows)


if __name__ == "__main__":
    main()
