"""What a run's results mean across runs (the per-layer sensitivity scan is prunelib.runs.sensitivity)."""

from __future__ import annotations

from prunelib.core.folder import Run, load_run, sweep_runs


def pareto_runs(run: Run) -> list[Run]:
    """The runs a run's Pareto plot shows: the run alone, or every run of its sweep (as the sweep last asked) when it
    is one; never other runs that happen to share its runs folder."""
    names = sweep_runs(run.dir.parent)
    if not names or run.name not in names:
        return [run]
    return [load_run(run.dir.parent / n) for n in names if (run.dir.parent / n / run.params_yaml.name).is_file()]


def pareto_series(runs: list[Run]) -> dict[str, list[tuple[float, float]]]:
    """{run name: [(GMACs, recovered mAP50-95)]} for each run with a ledger, its unpruned model first."""
    out = {}
    for run in runs:
        unpruned = run.read_json(run.unpruned_json)
        if not unpruned or not run.ledger.is_file():
            continue
        pts = [(unpruned["macs"] / 1e9, unpruned["map50_95"])]
        pts += [(r["macs"] / 1e9, r["map50_95"]) for r in run.read_ledger()]
        out[run.name] = pts
    return out
