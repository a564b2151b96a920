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
        pts += [(r.macs / 1e9, r.map50_95) for r in run.read_ledger()]
        out[run.name] = pts
    return out


def per_class(unpruned: dict, final: dict) -> list[dict]:
    """One row per class of the data set: its instances in the val split, the metric of the unpruned and of the
    final model and the change (evaluate(..., per_class=True)'s 'classes'), the classes that lost most first; a class
    with no instances has no metric (None) and comes last."""
    rows = [
        {
            "class": name,
            "instances": u["instances"],
            "unpruned": u["map50_95"],
            "final": final["classes"][name]["map50_95"],
            "change": (final["classes"][name]["map50_95"] - u["map50_95"])
            if u["map50_95"] is not None and final["classes"][name]["map50_95"] is not None
            else None,
        }
        for name, u in unpruned["classes"].items()
    ]
    return sorted(rows, key=lambda r: (r["change"] is None, r["change"] if r["change"] is not None else 0.0))
