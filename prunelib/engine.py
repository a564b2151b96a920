"""The iterative loop: prune -> validate -> fine-tune -> validate -> record, with early stop, rollback and resume.

Each step writes ``steps/step_XX/`` (pruned.pt, weights/{best,last}.pt) and only then appends its line to
``ledger.jsonl``; a step without a ledger line is incomplete and is redone from scratch on the next run. ``final.pt``
is always the last step within the mAP budget (the replaced baseline when no step is).
"""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path

from prunelib import baseline, checkpoints, measuring, pruner
from prunelib.finetuning import finetune
from prunelib.replacement import max_output_difference, replace_c3k2
from prunelib.runs import Run
from prunelib.validation import evaluate


def prepare(run: Run, log=print) -> dict:
    """The replaced baseline (replaced.pt) and its measurements (baseline.json), made once per run."""
    info = run.read_json("baseline.json")
    if info and run.replaced.is_file():
        return info
    params = run.params
    data = baseline.data_yaml(params)
    source, _ = baseline.model_path(params)
    original = checkpoints.load_model(source)
    model = copy.deepcopy(original)
    replaced = replace_c3k2(model)
    x = measuring.example_inputs(params["imgsz"])
    diff = max_output_difference(original, model, x)
    diff_train = max_output_difference(original, model, x, train=True)
    macs, n = measuring.macs_params(model, params["imgsz"])
    log(f"Replaced {len(replaced)} C3k2/C2f blocks; max |output difference| {diff:.2e}")
    checkpoints.save_model(model, run.replaced)
    t0 = time.perf_counter()
    metrics = evaluate(model, params, data, run.dir / "val" / "baseline")
    info = {
        "source": run.rel(source) if str(source).startswith(str(run.dir.parent)) else str(params["model"] or source),
        "data": str(params["data"]) or "synthetic",
        "replaced_blocks": [list(r) for r in replaced],
        "max_abs_diff": diff,
        "max_abs_diff_train": diff_train,
        "macs": macs,
        "params": n,
        "channels": pruner.prunable_channels(model, params["ignore_layers"], x),
        "seconds_validate": round(time.perf_counter() - t0, 2),
        **metrics,
    }
    run.write_json("baseline.json", info)
    log(f"Baseline: params {n / 1e6:.2f}M, MACs {macs / 1e9:.2f}G, mAP50-95 {metrics['map50_95']:.4f}")
    return info


def prune_loop(run: Run, log=print, on_step=None) -> list[dict]:
    """Run (or resume) the loop of run; return the ledger. on_step(record) is called after each step."""
    params = run.params
    base = prepare(run, log)
    data = baseline.data_yaml(params)
    ledger = run.read_ledger()
    if ledger and ledger[-1].get("stop"):
        log(f"Run {run.name!r} is complete ({ledger[-1]['stop']}); nothing to do")
        return ledger
    for stale in run.dir.glob(".*.tmp*"):  # left by a process killed mid-write; never read as complete
        stale.unlink()
    if not run.final.is_file():  # before any step, final.pt is the unpruned baseline
        _publish_final(run, run.replaced)
    done = len(ledger)
    model = checkpoints.load_model(_weights(run, done) if done else run.replaced)
    if done:
        log(f"Resuming run {run.name!r} after step {done}")
    max_steps = schedule(params)[1]
    x = measuring.example_inputs(params["imgsz"])
    # prunable channels left: each step counts them after pruning, so only a resumed run counts them here
    channels = pruner.prunable_channels(model, params["ignore_layers"], x) if done else base["channels"]
    for step in range(done + 1, max_steps + 1):
        ratio = step_ratio_now(params, step, base["channels"], channels)
        record, model = prune_step(run, model, step, ratio, base, data, x, log)
        channels = record["channels"]
        ledger.append(record)
        if on_step:
            on_step(record)
        if record["stop"]:
            break
    return ledger


def schedule(params: dict) -> tuple[float, int]:
    """(per-step ratio of current channels, most steps)."""
    n = params["iterative_steps"]
    if params["target_speedup"]:
        return pruner.speedup_step_ratio(params["target_speedup"], n), params["max_steps"] or 3 * n
    return pruner.step_ratio(params["target_prune_rate"], n), n


def step_ratio_now(params: dict, step: int, base_channels: int, current_channels: int) -> float:
    """This step's share of the current channels: on the exact schedule (rate mode) or fixed (speed-up mode)."""
    if params["target_speedup"]:
        return schedule(params)[0]
    n = params["iterative_steps"]
    return pruner.corrected_step_ratio(params["target_prune_rate"], n, step, base_channels, current_channels)


def prune_step(run: Run, model, step: int, ratio: float, base: dict, data, x, log=print):
    """One step; returns (ledger record, model to carry on with). Appends the record after its files are written."""
    params = run.params
    sd = run.step_dir(step)
    shutil.rmtree(sd, ignore_errors=True)  # a step without a ledger line was interrupted: redo it whole
    t_step = t0 = time.perf_counter()
    p = pruner.build_pruner(model, params, ratio, x)
    if params["importance"] in pruner.NEEDS_GRADIENTS:
        pruner.accumulate_gradients(model, params, data)
    p.step()
    model.zero_grad(set_to_none=True)
    seconds_prune = time.perf_counter() - t0
    t0 = time.perf_counter()
    macs, n = measuring.macs_params(model, params["imgsz"])
    channels = pruner.prunable_channels(model, params["ignore_layers"], x)
    seconds_measure = time.perf_counter() - t0
    pruned_path = checkpoints.save_model(model, sd / "pruned.pt")
    t0 = time.perf_counter()
    pruned = evaluate(model, params, data, sd / "val_pruned")
    seconds_validate = time.perf_counter() - t0
    t0 = time.perf_counter()
    if params["finetune_epochs"] > 0:
        model, _ = finetune(pruned_path, params, data, sd)
    else:
        for name in ("best.pt", "last.pt"):
            checkpoints.save_model(model, sd / "weights" / name)
    seconds_finetune = time.perf_counter() - t0
    t0 = time.perf_counter()
    recovered = evaluate(model, params, data, sd / "val")
    seconds_validate += time.perf_counter() - t0
    drop = base["map50_95"] - recovered["map50_95"]
    within = drop <= params["max_map_drop"] and (
        not params["max_map_drop_rel"] or drop <= params["max_map_drop_rel"] * base["map50_95"]
    )
    speedup = base["macs"] / macs
    reached = bool(params["target_speedup"]) and speedup >= params["target_speedup"]
    max_steps = schedule(params)[1]
    stop = "map_drop" if not within else "target_reached" if reached else "done" if step == max_steps else None
    record = {
        "step": step,
        "step_ratio": round(ratio, 6),
        "channels": channels,
        "channel_ratio": round(1 - channels / base["channels"], 6),
        "macs": macs,
        "params": n,
        "speedup": round(speedup, 6),
        "pruned_map50_95": round(pruned["map50_95"], 6),
        "pruned_map50": round(pruned["map50"], 6),
        "map50_95": round(recovered["map50_95"], 6),
        "map50": round(recovered["map50"], 6),
        "map_drop": round(drop, 6),
        "within_budget": within,
        "stop": stop,
        "final": within,
        "checkpoint": run.rel(_weights(run, step)),
        "seconds_prune": round(seconds_prune, 3),
        "seconds_finetune": round(seconds_finetune, 3),
        "seconds_validate": round(seconds_validate, 3),
        "seconds_measure": round(seconds_measure, 3),
    }
    if within:  # final.pt follows the last step within budget (rollback = it stays where it was)
        _publish_final(run, _weights(run, step))
    record["seconds_total"] = round(time.perf_counter() - t_step, 3)
    run.append_ledger(record)
    log(format_step(record, params, base))
    if stop == "map_drop":
        last_ok = max((r["step"] for r in run.read_ledger() if r["within_budget"]), default=0)
        log(f"Early stop: mAP50-95 dropped {drop:.4f} > budget; final.pt rolled back to "
            f"{'step %d' % last_ok if last_ok else 'the unpruned baseline'}")
    return record, model


def format_step(r: dict, params: dict, base: dict) -> str:
    total = schedule(params)[1]
    return (
        f"Step {r['step']}/{total}: params {r['params'] / 1e6:.2f}M, MACs {r['macs'] / 1e9:.3f}G "
        f"(speed-up {r['speedup']:.2f}x), channels pruned {r['channel_ratio']:.1%}, "
        f"mAP50-95 {base['map50_95']:.4f} -> pruned {r['pruned_map50_95']:.4f} -> recovered {r['map50_95']:.4f}"
    )


def final_step(ledger: list[dict]) -> dict | None:
    """The record final.pt comes from (None: the unpruned baseline)."""
    ok = [r for r in ledger if r["within_budget"]]
    return ok[-1] if ok else None


def _publish_final(run: Run, source: Path) -> None:
    tmp = run.final.with_name(".final.pt.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(run.final)


def _weights(run: Run, step: int) -> Path:
    wdir = run.step_dir(step) / "weights"
    return wdir / "best.pt" if (wdir / "best.pt").is_file() else wdir / "last.pt"

