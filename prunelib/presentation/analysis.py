"""What a run's results mean: comparisons across runs, and per-layer sensitivity to pruning."""

from __future__ import annotations

import copy

from prunelib.runs.folder import Run, load_runs
from prunelib.surgery import checkpoints, measuring, pruner
from prunelib.training.recalibration import recalibrate_batchnorm
from prunelib.training.validation import evaluate


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


def sensitivity(run: Run, data, log=print) -> dict[str, dict[float, float]]:
    """mAP50-95 after pruning one layer alone at each ratio (and BatchNorm recalibration when the run uses it), no
    fine-tuning: {'<i> <Type>': {ratio: mAP}}.

    Other layers are kept (their output channels are ignored); the scanned layer's consumers lose the matching
    input channels, as in real pruning. Results are saved to the run's sensitivity.json.
    """
    params = run.params
    model = checkpoints.load_model(run.replaced)
    x = measuring.example_inputs(params["imgsz"])
    ignored = {id(m) for m in pruner.ignored_modules(model, params["ignore_layers"])}
    layers = [i for i, layer in enumerate(model.model)
              if id(layer) not in ignored and any(p.dim() == 4 for p in layer.parameters())
              and not any(id(m) in ignored for m in layer.modules())]  # fmt: skip
    if params["sensitivity_layers"]:
        layers = layers[: params["sensitivity_layers"]]
    results = {}
    for i in layers:
        key = f"{i} {type(model.model[i]).__name__}"
        results[key] = {}
        for ratio in params["sensitivity_ratios"]:
            m = copy.deepcopy(model)
            others = [j for j in range(len(m.model)) if j != i]
            pruner.prune(m, {**params, "ignore_layers": list(params["ignore_layers"]) + others}, ratio, x, data)
            recalibrate_batchnorm(m, params, data, params["bn_recalibration"])  # as the loop does (0: off)
            results[key][ratio] = round(evaluate(m, params, data, run.val_dir("sensitivity"))["map50_95"], 6)
        log(f"layer {key}: " + ", ".join(f"{r}: {v:.4f}" for r, v in results[key].items()))
    run.write_json(run.sensitivity_json, {k: {str(r): v for r, v in d.items()} for k, d in results.items()})
    return results
