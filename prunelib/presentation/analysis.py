"""What a run's results mean across runs (the per-layer sensitivity scan is prunelib.runs.sensitivity)."""

from __future__ import annotations

from prunelib.core.folder import load_runs


def pareto_series(runs_root) -> dict[str, list[tuple[float, float]]]:
    """{run name: [(GMACs, recovered mAP50-95)]} for every run with a ledger, its unpruned model first."""
    out = {}
    for run in load_runs(runs_root):
        unpruned = run.read_json(run.unpruned_json)
        if not unpruned or not run.ledger.is_file():
            continue
        pts = [(unpruned["macs"] / 1e9, unpruned["map50_95"])]
        pts += [(r["macs"] / 1e9, r["map50_95"]) for r in run.read_ledger()]
        out[run.name] = pts
    return out
