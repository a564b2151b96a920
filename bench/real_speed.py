"""Real speed: where pruning saves time, and what it costs in accuracy, on two cases (the embedded default at 320 px;
the user-style YOLO11n of bench/user_case.py, trained with plain Ultralytics for 100 epochs, at 256 px).

- ``--part latency``: one-step cuts without fine-tuning (latency does not depend on the weights' values), each to a
  goal in MACs (1.5 / 2 / 2.5 / 3x fewer) or in measured latency (1.5 / 2x, onnxruntime, one thread, sized by timed
  trial copies as the loop sizes them), cut uniformly or time-guided (``layer_ratios: time``), with the head whole or
  pruned (``prune_head``) and the attention's feed-forward too (``prune_attention``). Every model of a case is then
  exported and timed in one series of alternating blocks of runs, at one thread and at all cores; and where the
  unpruned model's time goes, layer by layer, against its MACs.
- ``--part accuracy``: the kit's runs with fine-tuning (one step, 10 epochs, no early stop) as `prunelib sweep`s:
  a 2x latency goal and a 3x MACs goal, uniform or time-guided, head whole or pruned; each final.pt timed again outside
  the loop against the unpruned model; beside them the control, the unpruned model fine-tuned the same 10 epochs
  (what training alone adds). The user case is also validated on held-out images nothing trained or selected on.
- ``--part aligned``: the same, for a 2x latency goal with the head pruned in whole channel blocks of the runtime's
  kernels (``round_to: auto``) and AdamW at lr0 0.002, uniform and time-guided.

    .venv/bin/python bench/real_speed.py --part latency [--cases embedded user] [--runs 100]
    .venv/bin/python bench/real_speed.py --part accuracy [--cases embedded user] [--goals latency-2x macs-3x]
    .venv/bin/python bench/real_speed.py --part aligned [--cases embedded user]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import user_case
from common import HEAD_WHOLE, baseline_model, control, default_params, publish
from prunelib.core.ledger import outcome, prune_steps
from prunelib.core.settings import Pruning, Timing, Training
from prunelib.deployment import export
from prunelib.offline import cores
from prunelib.runs import layer_time, load_run, loop, policy, sweep
from prunelib.surgery import checkpoints, measuring, pruner
from prunelib.surgery.replacement import replace_c3k2
from prunelib.training.validation import evaluate

VARIANTS = {  # label -> parameter overrides of the defaults
    "uniform, head whole": {},
    "uniform, head pruned": {"prune_head": True},
    "time, head whole": {"layer_ratios": "time"},
    "time, head pruned": {"layer_ratios": "time", "prune_head": True},
    "time, head + attention": {"layer_ratios": "time", "prune_head": True, "prune_attention": True},
    "uniform, head pruned, round_to auto": {"prune_head": True, "round_to": "auto"},  # the demo's cut
}
GOALS = [("MACs", 1.5), ("MACs", 2.0), ("MACs", 2.5), ("MACs", 3.0), ("latency", 1.5), ("latency", 2.0)]
TRIAL_RUNS = 30  # timed runs per trial copy of a latency goal (the loop's latency_runs default)


def case_params(case: str) -> dict:
    """The case's parameters with the cut the variants are named against (HEAD_WHOLE: head whole, no alignment)."""
    return default_params(**HEAD_WHOLE) if case == "embedded" else default_params(imgsz=256, **HEAD_WHOLE)


def case_model(case: str, params: dict):
    source = baseline_model(params) if case == "embedded" else user_case.model(converged=True)
    model = checkpoints.load_model(source)
    replace_c3k2(model)
    return model


def cut(model, params: dict, goal: tuple[str, float]):
    """A copy of model cut to goal in one step, sized as the loop sizes it: pruned trial copies measured (MACs) or
    exported and timed against model (latency) until one lands."""
    imgsz, x, settings = params["imgsz"], measuring.example_inputs(params["imgsz"]), Pruning.of(params)
    times = layer_time.node_times(model, imgsz, Timing.of(params)) if params["layer_ratios"] == "time" else None
    unpruned = {"channels": pruner.prunable_channels(model, settings, x), "macs": measuring.macs_params(model, imgsz)[0]}
    kind, target = goal
    timed = None
    if kind == "latency":
        timer = export.Timer(model, imgsz, "onnxruntime", params["latency_threads"])
        timed = lambda m: timer.against(m, TRIAL_RUNS, params["latency_warmup"])  # noqa: E731
    trial = loop.trial(model, settings, imgsz, x, timed=timed, times=times)
    rule = policy.LatencyGoal(target, 1, 1) if kind == "latency" else policy.SpeedupGoal(target, 1, 1)
    ratio = rule.ratio(1, unpruned, unpruned, trial=trial)
    m = copy.deepcopy(model)
    pruner.prune(m, settings, ratio, x, times=times)
    return m


def latency_rows(case: str, args) -> tuple[list[dict], list[dict]]:
    cuts = [(goal, variant, overrides) for goal in GOALS for variant, overrides in VARIANTS.items()
            if not variant.endswith("attention") or goal[1] == 2.0]  # the attention's feed-forward is small: 2x only
    rows, models, params = timed_cuts(case, cuts, args.runs)
    return rows, where_time_goes(case, models["unpruned"], params)


def timed_cuts(case: str, cuts: list[tuple[tuple[str, float], str, dict]], runs: int):
    """Each (goal, variant label, parameter overrides) of cuts cut from the case's model in one step, exported, and
    timed with the unpruned model in one series of alternating blocks, at one thread and at all cores: (rows, the
    models by key with their files, the case's parameters)."""
    params = case_params(case)
    original = case_model(case, params)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-real-speed-{case}-"))
    models, labels = {"unpruned": {"pt": checkpoints.save_model(original, tmp / "unpruned.pt")}}, {}
    for goal, variant, overrides in cuts:
        key = f"{len(models)}"
        print(f"{case}: {goal[0]} {goal[1]:g}x, {variant}", flush=True)
        models[key] = {"pt": checkpoints.save_model(cut(original, {**params, **overrides}, goal), tmp / f"{key}.pt")}
        labels[key] = (goal, variant)
    for m in models.values():
        m |= {"torch": False, "onnx": export.export(m["pt"], "onnx", params["imgsz"])}
    rows = []
    for n in sorted({1, cores()}):
        table = export.with_speedups(export.latency_table(models, params["imgsz"], runs, 10, n), "unpruned")
        for r in table:
            (kind, target), variant = labels.get(r["model"], (("-", 1.0), "unpruned"))
            rows.append({"case": case, "threads": n, "goal": f"{target:g}x {kind}" if kind != "-" else "-",
                         "cut": variant, "MACs ratio": r["macs_speedup"], "latency ratio": r["latency_speedup"],
                         "latency/MACs": round(r["latency_speedup"] / r["macs_speedup"], 2), "ms": r["latency_ms"]})
    return rows, models, params


def where_time_goes(case: str, unpruned: dict, params: dict) -> list[dict]:
    """The unpruned model's time per layer at one thread (onnxruntime's profiler) beside its MACs: how much of the
    time follows MACs."""
    ms = export.layer_times(unpruned["onnx"], params["imgsz"], 100, 10, 1)
    table = measuring.layer_table(checkpoints.load_model(unpruned["pt"]), params["imgsz"])
    total_ms, total_macs = sum(ms.values()), sum(r["macs"] for r in table)
    rows = [{"case": case, "layer": r["layer"], "type": r["type"], "ms": round(ms.get(str(r["layer"]), 0.0), 3),
             "time share": f"{ms.get(str(r['layer']), 0.0) / total_ms:.1%}", "MACs share": f"{r['macs'] / total_macs:.1%}"}
            for r in table]  # fmt: skip
    return rows + [{"case": case, "layer": "other", "type": "(no layer)", "ms": round(ms.get("other", 0.0), 3),
                    "time share": f"{ms.get('other', 0.0) / total_ms:.1%}", "MACs share": "0.0%"}]


ACCURACY = dict(iterative_steps=1, max_steps=1, finetune_epochs=10, max_map_drop=1.0, sensitivity=False,
                export_formats=["onnx"], int8=False)  # one step, 10 epochs, no early stop; the loop's own export
UNALIGNED = [f"{k}={v}" for k, v in HEAD_WHOLE.items() if k != "prune_head"]  # the cut these grids were measured on
ACCURACY_GRIDS = {  # sweep -> its goal and grid (the head pruned costs time at equal MACs: --part latency)
    "latency-2x": ["target_latency_speedup=2.0", "layer_ratios=uniform,time", "prune_head=false", *UNALIGNED],
    "macs-3x": ["target_speedup=3.0", "layer_ratios=uniform", "prune_head=false,true", *UNALIGNED],
}
ALIGNED_GRIDS = {  # --part aligned: the head pruned with its channels in whole blocks of the runtime's kernels
    # (round_to: auto), and the recipe that recovered best at 3x (archive/recovery-deep.md: AdamW at lr0 0.002)
    "latency-2x-aligned": ["target_latency_speedup=2.0", "layer_ratios=uniform,time", "prune_head=true",
                           "round_to=auto", "optimizer=AdamW", "lr0=0.002"],
}


def accuracy_sweep(case: str, name: str) -> sweep.Sweep:
    fixed = dict(ACCURACY)
    if case == "user":
        fixed |= {"model": str(user_case.model(converged=True)), "data": str(user_case.data_yaml()), "imgsz": 256}
    return sweep.load(params_files=["params/default.yaml"], grid_items={**ACCURACY_GRIDS, **ALIGNED_GRIDS}[name],
                      set_items=[f"{k}={json.dumps(v)}" for k, v in fixed.items()], name=f"speed-{name}-{case}")


def accuracy_rows(case: str, runs: int, grids: dict) -> list[dict]:
    rows, first = [], None
    for name in grids:
        plan = accuracy_sweep(case, name)
        status = plan.folder.statuses()
        for combo in plan.combinations():
            if status.get(sweep.run_name(combo), {}).get("status") != "done":
                continue
            run = load_run(plan.root / sweep.run_name(combo))
            first = first or run
            unpruned, final = run.read_json(run.unpruned_json), run.final_step()
            step = prune_steps(run.read_ledger())[0]
            achieved = outcome(unpruned, final)
            timed = export.Timer(run.unpruned_pt, run.params["imgsz"], "onnxruntime", 1).against(run.final, runs, 10)
            row = {"case": case, "goal": name.replace("-", " "), "cut": combo["layer_ratios"],
                   "head": "pruned" if combo["prune_head"] in (True, "true") else "whole",
                   "round_to": (f"auto ({run.read_json(run.manifest)['channel_block']})"
                                if run.params["round_to"] == "auto" else run.params["round_to"]),
                   "optimizer": f"{run.params['optimizer']} {run.params['lr0']:g}" if run.params["optimizer"] != "auto"
                   else "auto",
                   "MACs ratio": round(achieved["macs_speedup"], 2),
                   "latency ratio (loop)": step.latency_speedup or "-",
                   "latency ratio (re-timed)": timed["speedup"], "blocks": f"{timed['low']:.2f}-{timed['high']:.2f}",
                   "ms": timed["ms"], "unpruned mAP50-95": round(unpruned["map50_95"], 4),
                   "pruned (no fine-tune)": round(step.pruned_map50_95, 4),
                   "final": round(achieved["map50_95"], 4), "retention": f"{achieved['retention']:.1%}",
                   "held-out retention": "-"}  # every row has every column (the table takes the first row's)
            if case == "user":
                holdout = user_case.holdout_yaml()
                training = Training.of(run.params)
                base = evaluate(checkpoints.load_model(run.unpruned_pt), training, holdout, run.val_dir("holdout"))
                test = evaluate(checkpoints.load_model(run.final), training, holdout, run.val_dir("holdout"))
                row |= {"held-out retention": f"{test['map50_95'] / base['map50_95']:.1%}"}
            rows.append(row)
    if first is not None:
        c = control(case, first, ACCURACY["finetune_epochs"], user_case.holdout_yaml() if case == "user" else None)
        unpruned = first.read_json(first.unpruned_json)
        row = {"case": case, "goal": "control", "cut": "none (unpruned, fine-tuned 10 epochs)", "head": "whole",
               "MACs ratio": 1.0, "final": round(c["val"], 4), "unpruned mAP50-95": round(unpruned["map50_95"], 4),
               "retention": f"{c['val'] / unpruned['map50_95']:.1%}", "held-out retention": "-"}
        if "held-out" in c:
            base = evaluate(checkpoints.load_model(first.unpruned_pt), Training.of(first.params),
                            user_case.holdout_yaml(), first.val_dir("holdout"))
            row["held-out retention"] = f"{c['held-out'] / base['map50_95']:.1%}"
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["latency", "accuracy", "aligned"], required=True)
    ap.add_argument("--cases", nargs="+", default=["embedded", "user"], choices=["embedded", "user"])
    ap.add_argument("--runs", type=int, default=100, help="timed runs per model (in blocks, models in turn)")
    ap.add_argument("--goals", nargs="+", default=list(ACCURACY_GRIDS), choices=list(ACCURACY_GRIDS),
                    help="--part accuracy: the sweeps to run (the table shows every finished run)")
    args = ap.parse_args()
    if args.part == "latency":
        rows, layers = [], []
        for case in args.cases:
            r, lt = latency_rows(case, args)
            rows, layers = rows + r, layers + lt
        publish("real-speed", "Real speed: MACs and latency goals, uniform and time-guided cuts, head whole and pruned "
                "(onnxruntime, batch 1, no fine-tuning)", rows, notes=LATENCY_NOTES)
        publish("where-time-goes", "Where the unpruned model's time goes (onnxruntime, one thread, batch 1)", layers)
        return
    grids = ALIGNED_GRIDS if args.part == "aligned" else ACCURACY_GRIDS
    for case in args.cases:
        for name in grids if args.part == "aligned" else args.goals:
            sweep.run_sweep(accuracy_sweep(case, name))
    rows = [row for case in ("embedded", "user") for row in accuracy_rows(case, args.runs, grids)]
    if args.part == "aligned":
        return publish("real-speed-aligned", "Real speed with fine-tuning: a 2x latency goal with the head pruned in "
                       "whole channel blocks, one step of 10 epochs", rows, notes=ACCURACY_NOTES + ALIGNED_NOTES)
    publish("real-speed-accuracy", "Real speed with fine-tuning: a 2x latency goal and a 3x MACs goal, one step of "
            "10 epochs", rows, notes=ACCURACY_NOTES)


LATENCY_NOTES = """
latency/MACs = 1.0 would mean every MAC removed turned into time saved. 'time' = `layer_ratios: time` (channels ranked
across all groups by importance per ms their group's layers take, from the model profiled node by node in
onnxruntime); 'head pruned' = `prune_head: true`; '+ attention' = `prune_attention: true`. A latency goal is sized by
timing trial copies (one thread, 30 runs each) as the loop does; every figure in the table comes from the one timing
series at the end, in which all models of a case and thread count run in alternating blocks.
"""

ACCURACY_NOTES = """
Retention = final / unpruned mAP50-95 (val; the user case also on its held-out test images). 'latency ratio (loop)' is
what the loop measured for its step; 're-timed' is final.pt timed again afterwards against the unpruned model
(onnxruntime, one thread, alternating blocks; 'blocks' = the range of the block ratios). The control row is the
unpruned model fine-tuned the same 10 epochs: what training alone adds to the baseline.
"""

ALIGNED_NOTES = """round_to auto = the channel block of onnxruntime's convolutions on this CPU (measured: prunelib.machine.channel_block;
16 with AVX-512, 8 with AVX2): they compute channels in whole blocks, so a count between two multiples saves MACs, not
time. The head's hidden layers, at full resolution, are where that costs most (real-speed.md: the head pruned without
alignment ran slower at equal MACs).
"""

if __name__ == "__main__":
    main()
