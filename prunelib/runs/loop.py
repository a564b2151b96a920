"""The iterative loop: prune -> validate -> fine-tune -> validate -> record, with early stop, rollback and resume.

Each step writes ``steps/step_XX/`` (pruned.pt, weights/{best,last}.pt) and only then appends its line to the
ledger; a step without a ledger line is incomplete and is redone from scratch on the next run. ``final.pt`` follows
the last step within the mAP budget (the replaced, unpruned model before any step; rollback = it stays where it
was). What each step prunes and when the loop stops is the policy's (prunelib.runs.policy); this module measures.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from prunelib import files
from prunelib.errors import UserError
from prunelib.runs import policy
from prunelib.runs.folder import Run
from prunelib.surgery import checkpoints, measuring, pruner
from prunelib.training import embedded
from prunelib.training.finetuning import finetune
from prunelib.training.validation import evaluate as validate


@dataclass
class Loop:
    """What every step of one run shares."""

    run: Run
    unpruned: dict  # the replaced model's measurements (unpruned.json)
    data: Path
    goal: policy.ChannelGoal | policy.SpeedupGoal
    budget: policy.Budget
    x: torch.Tensor  # example inputs for tracing and counting
    evaluate: Callable = validate  # (model, params, data, save_dir) -> {'map50_95', 'map50'}
    log: Callable = print


def prune_loop(run: Run, log=print, on_step=None, evaluate=validate) -> list[dict]:
    """Run (or resume) the loop of run; return the ledger. on_step(record) is called after each step."""
    params = run.params
    unpruned = run.read_json(run.unpruned_json)
    if not (unpruned and run.replaced.is_file()):
        raise UserError(f"run {run.name!r} has no replaced model yet: run stage 20-replace-c3k2 first")
    ledger = run.read_ledger()
    if ledger and ledger[-1].get("stop"):
        log(f"Run {run.name!r} is complete ({ledger[-1]['stop']}); nothing to do")
        return ledger
    files.remove_stale(run.dir, recursive=True)  # left by a process killed mid-write; never read as complete
    if not run.final.is_file():  # before any step, final.pt is the unpruned model
        files.copy(run.replaced, run.final)
    loop = Loop(run, unpruned, embedded.data_yaml(params), policy.goal(params), policy.budget(params),
                measuring.example_inputs(params["imgsz"]), evaluate, log)  # fmt: skip
    done = len(ledger)
    model = checkpoints.load_model(run.step_weights(done) if done else run.replaced)
    if done:
        log(f"Resuming run {run.name!r} after step {done}")
    # prunable channels and MACs now: each step measures them after pruning, so only a resumed run counts them here
    current = {"channels": ledger[-1]["channels"], "macs": ledger[-1]["macs"]} if done else unpruned
    for step in range(done + 1, loop.goal.most_steps + 1):
        ratio = loop.goal.ratio(step, unpruned, current)
        record, model = prune_step(loop, model, step, ratio)
        current = {"channels": record["channels"], "macs": record["macs"]}
        ledger.append(record)
        if on_step:
            on_step(record)
        if record["stop"]:
            break
    return ledger


def prune_step(loop: Loop, model, step: int, ratio: float):
    """One step; returns (ledger record, model to carry on with). Appends the record after its files are written."""
    run, params = loop.run, loop.run.params
    shutil.rmtree(run.step_dir(step), ignore_errors=True)  # a step without a ledger line was interrupted: redo it
    clock = Clock()
    with clock("total"):
        with clock("prune"):
            pruner.prune(model, params, ratio, loop.x, loop.data)
        with clock("measure"):
            macs, n = measuring.macs_params(model, params["imgsz"])
            channels = pruner.prunable_channels(model, params["ignore_layers"], loop.x)
        pruned_path = checkpoints.save_model(model, run.pruned_checkpoint(step))
        with clock("validate"):
            pruned = loop.evaluate(model, params, loop.data, run.step_val_dir(step, "pruned"))
        with clock("finetune"):
            model = _finetune(model, pruned_path, run, step, loop.data)
        with clock("validate"):
            recovered = loop.evaluate(model, params, loop.data, run.step_val_dir(step, "recovered"))
        within = loop.budget.within(loop.unpruned["map50_95"], recovered["map50_95"])
        if within:
            files.copy(run.step_weights(step), run.final)
    speedup = loop.unpruned["macs"] / macs
    record = {
        "step": step, "step_ratio": round(ratio, 6), "channels": channels,
        "channel_ratio": round(1 - channels / loop.unpruned["channels"], 6), "macs": macs, "params": n,
        "speedup": round(speedup, 6), **_maps(pruned, "pruned_"), **_maps(recovered),
        "map_drop": round(loop.unpruned["map50_95"] - recovered["map50_95"], 6), "within_budget": within,
        "stop": policy.stop_reason(loop.goal, step, within, speedup), "checkpoint": run.rel(run.step_weights(step)),
        **clock.seconds(),
    }  # fmt: skip
    run.append_ledger(record)
    _log_step(loop, record)
    return record, model


def format_step(r: dict, most_steps: int, unpruned: dict) -> str:
    return (
        f"Step {r['step']}/{most_steps}: params {r['params'] / 1e6:.2f}M, MACs {r['macs'] / 1e9:.3f}G "
        f"(speed-up {r['speedup']:.2f}x), channels pruned {r['channel_ratio']:.1%}, "
        f"mAP50-95 {unpruned['map50_95']:.4f} -> pruned {r['pruned_map50_95']:.4f} -> recovered {r['map50_95']:.4f}"
    )


class Clock:
    """Wall seconds by name, summed over every ``with clock(name):`` block."""

    def __init__(self):
        self._seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] = self._seconds.get(name, 0.0) + time.perf_counter() - t0

    def seconds(self) -> dict[str, float]:
        return {f"seconds_{k}": round(v, 3) for k, v in self._seconds.items()}


def _finetune(model, pruned_path: Path, run: Run, step: int, data):
    """The fine-tuned model (from the pruned checkpoint, as DDP needs), or the pruned one saved as the step's
    weights when fine-tuning is off."""
    if run.params["finetune_epochs"] > 0:
        return finetune(pruned_path, run.params, data, run.step_dir(step))[0]
    for path in run.step_checkpoints(step):
        checkpoints.save_model(model, path)
    return model


def _maps(metrics: dict, prefix: str = "") -> dict:
    return {f"{prefix}map50_95": round(metrics["map50_95"], 6), f"{prefix}map50": round(metrics["map50"], 6)}


def _log_step(loop: Loop, record: dict) -> None:
    loop.log(format_step(record, loop.goal.most_steps, loop.unpruned))
    if record["stop"] == "map_drop":
        last = loop.run.final_step()
        loop.log(f"Early stop: mAP50-95 dropped {record['map_drop']:.4f} > budget; final.pt rolled back to "
                 f"{'step %d' % last['step'] if last else 'the unpruned model'}")
