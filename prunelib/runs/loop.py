"""The iterative loop: [sparsity training] -> per step: prune -> recalibrate BatchNorm -> validate -> fine-tune ->
validate -> record -> [final fine-tune], with early stop, rollback and resume.

Each row (``steps/sparse/``, ``steps/step_XX/`` with pruned.pt, ``steps/final/``; weights/{best,last}.pt) writes its
files and only then appends its line to the ledger; a row without a ledger line is incomplete and is redone from scratch
on the next run. ``final.pt`` follows the last row within the mAP budget (the replaced, unpruned model before any;
rollback = it stays where it was), published in Ultralytics' own blocks (checkpoints.publish). What each step prunes,
when the loop stops and how the epochs are shared is the policy's and the parameters' (prunelib.runs.policy,
Schedule.epochs); this module measures."""

from __future__ import annotations

import copy
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from prunelib import files, tasks
from prunelib.core.folder import Run
from prunelib.core.ledger import FINAL, PRUNE, SPARSE, Step, final_step, prune_steps
from prunelib.core.settings import Pruning, Training
from prunelib.deployment import export as exporter
from prunelib.errors import UserError
from prunelib.runs import layer_time, policy, sensitivity
from prunelib.surgery import checkpoints, compensation, measuring, pruner
from prunelib.training import embedded
from prunelib.training import gradients as training_gradients
from prunelib.training.datasets import training_batches
from prunelib.training.finetuning import finetune
from prunelib.training.recalibration import recalibrate_batchnorm
from prunelib.training.validation import evaluate as validate


@dataclass
class Loop:
    """What every step of one run shares."""

    run: Run
    unpruned: dict  # the replaced model's measurements (unpruned.json)
    data: Path
    goal: policy.ChannelGoal | policy.SpeedupGoal | policy.LatencyGoal
    budget: policy.Budget
    epochs: dict  # the fine-tuning budget shared out: Schedule.epochs ({'budget', 'sparse', 'step', 'final'})
    x: torch.Tensor  # example inputs for tracing and counting
    evaluate: Callable = validate  # (model, Training, data, save_dir) -> {'map50_95', 'map50'}
    log: Callable = print
    weights: dict[int, float] | None = None  # layer_ratios 'sensitivity'/'latency': {layer index: share of the cut}
    timer: exporter.Timer | None = None  # a latency goal's: the unpruned model exported once, timed beside each copy

    @property
    def pruning(self) -> Pruning:
        return self.run.settings.pruning

    @property
    def training(self) -> Training:
        return self.run.settings.training

    @property
    def gradients(self):
        """The pruner's gradients(model), for an importance that ranks by them: on the run's training images."""
        return training_gradients.for_pruning(self.training, self.data)

    def layer_ratios(self, ratio: float) -> dict[int, float] | None:
        return policy.layer_ratios(self.weights, ratio, min(self.pruning.max_pruning_ratio, 0.9))

    @property
    def times(self) -> bool:
        """Does the goal judge measured time (each step and its trials exported and timed)?"""
        return isinstance(self.goal, policy.LatencyGoal)

    def timed(self, model, longer: int = 1) -> dict:
        """model against the unpruned one in the run's latency runtime (longer x latency_runs timed runs each):
        export.Timer.against."""
        goal, timing = self.run.settings.goal, self.run.settings.timing
        if self.timer is None:
            self.timer = exporter.Timer(
                self.run.unpruned_pt,
                self.training.imgsz,
                goal.latency_runtime,
                timing.latency_threads,
                goal.latency_precision,
            )
        return self.timer.against(model, longer * timing.latency_runs, timing.latency_warmup)

    def node_times(self, model) -> dict[str, float] | None:
        """layer_ratios 'time': where model spends its time, node by node (layer_time.node_times), which the step's
        cut and its trials rank channels by; None otherwise."""
        if self.run.settings.schedule.layer_ratios != "time":
            return None
        return layer_time.node_times(model, self.training.imgsz, self.run.settings.timing)


def prune_loop(run: Run, log=print, on_step=None, evaluate=validate) -> list[Step]:
    """Run (or resume) the loop of run, then its final fine-tune; return the ledger. on_step(record) is called after
    each row."""
    settings = run.settings
    unpruned = run.read_json(run.unpruned_json)
    if not (unpruned and run.unpruned_pt.is_file()):
        raise UserError(f"run {run.name!r} has no replaced model yet: run stage 20-replace-c3k2 first")
    ledger, epochs = run.read_ledger(), settings.schedule.epochs()
    if _complete(ledger, epochs):
        if not run.final.is_file():  # removed after the run (a broken copy, say): made again from what it was
            final = final_step(ledger)
            src = run.step_weights(final.step if final.kind == PRUNE else FINAL) if final else None
            checkpoints.publish(src or run.unpruned_pt, run.final)
            log(f"final.pt published again from {run.rel(src or run.unpruned_pt)}")
        log(f"Run {run.name!r} is complete ({ledger[-1].stop}); nothing to do")
        return ledger
    files.remove_stale(run.dir, recursive=True)  # left by a process killed mid-write; never read as complete
    if not run.final.is_file():  # before any step, final.pt is the unpruned model
        checkpoints.publish(run.unpruned_pt, run.final)
    loop = Loop(
        run,
        unpruned,
        embedded.data_yaml(settings),
        policy.goal(settings.goal),
        policy.budget(settings.goal),
        epochs,
        measuring.example_inputs(settings.training.imgsz),
        evaluate,
        log,
    )
    if settings.schedule.layer_ratios in ("sensitivity", "latency"):
        loop.weights = layer_weights(loop)
    if epochs["sparse"] and not ledger:
        _report(ledger, sparse_training(loop), on_step)
    if not (ledger and ledger[-1].stop):
        for record in _steps(loop, ledger):
            _report(ledger, record, on_step)
    if epochs["final"]:
        _report(ledger, final_finetune(loop), on_step)
    return ledger


def _report(ledger: list[Step], record: Step | None, on_step) -> None:
    if record is not None:
        ledger.append(record)
        if on_step:
            on_step(record)


def _steps(loop: Loop, ledger: list[Step]):
    """The prune steps still to do, one ledger record at a time (each already appended)."""
    run, unpruned = loop.run, loop.unpruned
    done = len(prune_steps(ledger))
    start = run.step_weights(done) if done else run.step_weights(SPARSE) if ledger else run.unpruned_pt
    model = checkpoints.load_model(start)
    if done:
        loop.log(f"Resuming run {run.name!r} after step {done}")
    # prunable channels and MACs now (and the measured latency): each step measures them after pruning, so only a
    # resumed run reads them here
    last = prune_steps(ledger)[-1] if done else None
    current = _now(last) if last else unpruned
    for step in range(done + 1, loop.goal.most_steps + 1):
        times = loop.node_times(model)  # profiled on the model this step cuts
        blend, note = None, None
        if loop.times:  # a latency goal says where its cut landed against the goal
            uniform = loop.run.settings.schedule.layer_ratios == "uniform"  # blends are of uniform cuts
            landing = loop.goal.landing(step, unpruned, current, **_trial(loop, model, times), blends=uniform)
            ratio, blend, note = landing.ratio, landing.blend, landing.note(loop.goal.target)
        else:
            ratio = loop.goal.ratio(step, unpruned, current, **_trial(loop, model, times))
        record, model = prune_step(loop, model, step, ratio, times, note, blend)
        current = _now(record)
        yield record
        if record.stop:
            return


def _now(record: Step) -> dict:
    """What a step hands the next one (as the goal reads it, like the unpruned model's): its prunable channels, MACs
    and (when timed) its latency speed-up."""
    timed = {"latency_speedup": record.latency_speedup} if record.timed else {}
    return {"channels": record.channels, "macs": record.macs, **timed}


TRIAL_TIMING = 2  # a latency goal's trial copies are timed this many times as long as latency_runs: the landing
# band is a twentieth wide, a short timing's spread on a noisy machine about as wide


def _trial(loop: Loop, model, times: dict | None) -> dict:
    """For a speed-up or latency goal: the trial it measures (see trial) on a copy of model."""
    if not isinstance(loop.goal, (policy.SpeedupGoal, policy.LatencyGoal)):
        return {}
    measure = trial(
        model,
        loop.pruning,
        loop.training.imgsz,
        loop.x,
        loop.gradients,
        loop.layer_ratios,
        timed=partial(loop.timed, longer=TRIAL_TIMING) if loop.times else None,
        times=times,
    )
    return {"trial": measure}


def trial(
    model,
    settings: Pruning,
    imgsz: int,
    example_inputs: torch.Tensor,
    gradients=None,
    layer_ratios=None,
    timed=None,
    times: dict | None = None,
) -> Callable:
    """trial(ratio, blend=None) -> {'channels', 'macs'} of a copy of model pruned at ratio (layer_ratios(ratio): the
    per-layer shares, or None; blend: a blended cut, policy.blend_ratios; times: node times that guide the cut,
    pruner.TimeGuided), and its 'latency_speedup' when timed(model) -> export.Timer.against's measurement is given:
    what a speed-up or latency goal measures before it cuts (policy.SpeedupGoal.ratio, LatencyGoal.landing). The
    loop's steps and bench/speedup.py's one-step cuts both size their cut with it."""
    layers = pruner.prunable_layers(model, settings)

    def measure(ratio: float, blend: policy.Blend | None = None) -> dict:
        m = copy.deepcopy(model)
        pruner.prune(m, settings, ratio, example_inputs, gradients, shares(layers, layer_ratios, ratio, blend), times)
        macs = measuring.macs_params(m, imgsz)[0]
        out = {"channels": pruner.prunable_channels(m, settings, example_inputs), "macs": macs}
        return out | ({"latency_speedup": timed(m)["speedup"]} if timed else {})

    return measure


def shares(layers: list[int], layer_ratios, ratio: float, blend: policy.Blend | None = None) -> dict | None:
    """{layer index: ratio} of a cut at ratio: a blend's (policy.blend_ratios over the prunable layers), else the
    run's own (layer_ratios(ratio), or None when it cuts every layer alike)."""
    if blend:
        return policy.blend_ratios(layers, ratio, blend)
    return layer_ratios(ratio) if layer_ratios else None


def layer_weights(loop: Loop) -> dict[int, float]:
    """The run's {layer index: weight}: by the sensitivity scan of every prunable layer at the run's
    sensitivity_ratios, or by the time each layer saves per MAC in a timed trial cut (measured once; kept in the run
    folder, so a resumed run shares its cuts as it began)."""
    run = loop.run
    stored = run.read_json(run.layer_weights_json)
    if stored is None:
        if run.settings.schedule.layer_ratios == "latency":
            loop.log("Timing every layer before and after a trial cut to share the cut (layer_ratios: latency)")
            model = checkpoints.load_model(run.unpruned_pt)
            stored = layer_time.profile(model, loop.training.imgsz, loop.pruning, run.settings.timing, loop.log)
        else:
            loop.log("Scanning every layer's sensitivity to share the cut (layer_ratios: sensitivity)")
            scan = sensitivity.scan(run, loop.data, loop.log, every_layer=True)
            stored = policy.layer_weights(scan, loop.unpruned["map50_95"])
        run.write_json(run.layer_weights_json, {str(i): round(w, 6) for i, w in stored.items()})
    return {int(i): w for i, w in stored.items()}


def _complete(ledger: list[Step], epochs: dict) -> bool:
    """The loop stopped, and the final fine-tune (when asked for, and possible) has its row."""
    if not (ledger and ledger[-1].stop):
        return False
    return ledger[-1].kind == FINAL or not epochs["final"] or _final_start(ledger) is None


def _final_start(ledger: list[Step]) -> Step | None:
    """The row the final fine-tune starts from: final.pt's, when it is a pruned step."""
    start = final_step(ledger)
    return start if start and start.kind == PRUNE else None


def prune_step(
    loop: Loop,
    model,
    step: int,
    ratio: float,
    times: dict | None = None,
    landing: str | None = None,
    blend: policy.Blend | None = None,
):
    """One step; returns (ledger record, model to carry on with). Appends the record after its files are written.
    times: node times of model that guide the cut (layer_ratios 'time'); landing: where a latency goal's trials put
    the cut against the goal (policy.Landing.note), kept in the ledger; blend: a blended cut (policy.Blend), else
    the run's own per-layer shares (Loop.layer_ratios)."""
    layers = shares(pruner.prunable_layers(model, loop.pruning), loop.layer_ratios, ratio, blend)
    run = loop.run
    shutil.rmtree(run.step_dir(step), ignore_errors=True)  # a step without a ledger line was interrupted: redo it
    clock = Clock()
    with clock("total"):

        def cut(m, fold=None):
            pruner.prune(m, loop.pruning, ratio, loop.x, loop.gradients, layers, times, fold)

        models = repairs(loop, model, cut, clock)
        with clock("validate"):
            model, repair, pruned = kept(loop, models, step)
        with clock("measure"):
            macs, n = measuring.macs_params(model, loop.training.imgsz)
            channels = pruner.prunable_channels(model, loop.pruning, loop.x)
            measured = _confirmed(loop, model) if loop.times else None
        pruned_path = checkpoints.save_model(model, run.pruned_checkpoint(step))
        with clock("finetune"):
            model = _finetune(loop, model, pruned_path, step)
        with clock("validate"):
            recovered = loop.evaluate(model, loop.training, loop.data, run.step_val_dir(step, "recovered"))
        within = _publish_if_within(loop, step, recovered)
    speedup = loop.unpruned["macs"] / macs
    record = Step(
        step=step,
        kind=PRUNE,
        step_ratio=round(ratio, 6),
        channels=channels,
        channel_ratio=round(1 - channels / loop.unpruned["channels"], 6),
        macs=macs,
        params=n,
        speedup=round(speedup, 6),
        **(_latency_fields(measured) if measured else {}),
        landing=landing,
        **repair,
        epochs=loop.epochs["step"],
        **_maps(pruned, "pruned_"),
        **_maps(recovered),
        **_drop(loop, recovered, within),
        stop=policy.stop_reason(loop.goal, step, within, measured or speedup),
        checkpoint=run.rel(run.step_weights(step)),
        **clock.seconds(),
    )
    run.append_ledger(record)
    _log_step(loop, record)
    return record, model


def repairs(loop: Loop, model, cut: Callable, clock: Clock) -> dict:
    """{repair: model cut (cut(model, fold=None): pruner.prune at the step's ratio) and repaired by it} for each
    repair the run measures (Schedule.repairs): 'fold' (each removed channel's mean, measured before the cut on the
    calibration images, folded into its consumers: compensation.Folding), 'recalibrate' (BatchNorm statistics
    re-estimated on them) or 'none'. The two exclude each other: re-estimation would undo the fold. The last repair
    cuts model itself, the others a copy."""
    schedule = loop.run.settings.schedule
    names = schedule.repairs
    means = None
    if "fold" in names:
        with clock("recalibrate"):
            task = tasks.of(model).name
            images = training_batches(loop.training, loop.data, schedule.bn_recalibration, task)
            means = compensation.input_means(model, (b["img"] for b in images))
    models = {}
    for name in names:
        m, m_means = (model, means) if name == names[-1] else copy.deepcopy((model, means))  # means keyed by m's convs
        with clock("prune"):
            cut(m, compensation.Folding(m, m_means) if name == "fold" else None)
        if name == "recalibrate":
            with clock("recalibrate"):
                recalibrate_batchnorm(m, loop.training, loop.data, schedule.bn_recalibration)
        models[name] = m
    return models


def kept(loop: Loop, models: dict, step: int) -> tuple:
    """The repaired cut to carry on with: with one, it; with more, each validated and the best mAP50-95 kept.
    Returns (the model, its ledger fields: the repair kept and each measured one's mAP50-95, its validation
    {'map50_95', 'map50'})."""
    run, scores = loop.run, {}
    for name, m in models.items():
        which = "pruned" if len(models) == 1 else f"pruned-{name}"
        scores[name] = loop.evaluate(m, loop.training, loop.data, run.step_val_dir(step, which))
    best = max(scores, key=lambda k: scores[k]["map50_95"])
    fields = {"compensation": best} | {f"pruned_{k}_map50_95": round(v["map50_95"], 6) for k, v in scores.items()}
    return models[best], fields, scores[best]


def sparse_training(loop: Loop) -> Step:
    """Train the unpruned model with Torch-Pruning's group regularisation for sparse_epochs, so the groups the first
    step removes hold little; its ledger row (kind 'sparse', step 0). The first step starts from its last epoch."""
    run, reg = loop.run, loop.run.settings.schedule.sparse_reg
    shutil.rmtree(run.step_dir(SPARSE), ignore_errors=True)  # no ledger row yet: interrupted, redo it
    epochs = loop.epochs["sparse"]
    share = partial(pruner.weak_channel_share, settings=loop.pruning, ratio=0.5, example_inputs=loop.x)
    before = share(checkpoints.load_model(run.unpruned_pt))
    clock = Clock()
    with clock("total"):
        with clock("finetune"):
            regularizer = partial(pruner.build_pruner, settings=loop.pruning, ratio=0.5, example_inputs=loop.x, reg=reg)
            model = finetune(
                run.unpruned_pt, loop.training, loop.data, run.step_dir(SPARSE), epochs, regularizer=regularizer
            )[0]
        with clock("validate"):
            recovered = loop.evaluate(model, loop.training, loop.data, run.step_val_dir(SPARSE, "recovered"))
        within = _publish_if_within(loop, SPARSE, recovered)
    u = loop.unpruned
    record = Step(
        step=0,
        kind=SPARSE,
        step_ratio=0.0,
        channels=u["channels"],
        channel_ratio=0.0,
        macs=u["macs"],
        params=u["params"],
        speedup=1.0,
        epochs=epochs,
        pruned_map50_95=u["map50_95"],
        pruned_map50=u["map50"],
        **_maps(recovered),
        **_drop(loop, recovered, within),
        stop=None,
        checkpoint=run.rel(run.step_weights(SPARSE)),
        weak_share_before=round(before, 6),
        weak_share=round(share(model), 6),
        **clock.seconds(),
    )
    run.append_ledger(record)
    loop.log(
        f"Sparsity training ({epochs} epochs, reg {reg:g}): mAP50-95 {u['map50_95']:.4f} -> "
        f"{recovered['map50_95']:.4f}; weaker half of each group holds {before:.1%} -> "
        f"{record.weak_share:.1%} of the stronger half's importance"
    )
    return record


def final_finetune(loop: Loop) -> Step | None:
    """Fine-tune final.pt (the last row within budget) once more; its ledger row, or None when no step is within
    budget. Budget and rollback as for a step: final.pt follows it only when it is within budget."""
    run = loop.run
    ledger = run.read_ledger()
    start = _final_start(ledger)
    if start is None:
        loop.log("Final fine-tune skipped: no pruned step is within the mAP budget")
        return None
    shutil.rmtree(run.step_dir(FINAL), ignore_errors=True)  # no ledger row yet: interrupted, redo it
    clock = Clock()
    with clock("total"):
        with clock("finetune"):
            epochs = loop.epochs["final"]
            src = run.step_weights(start.step)  # what final.pt was published from
            model = finetune(src, loop.training, loop.data, run.step_dir(FINAL), epochs, teacher=run.unpruned_pt)[0]
        with clock("validate"):
            recovered = loop.evaluate(model, loop.training, loop.data, run.step_val_dir(FINAL, "recovered"))
        within = _publish_if_within(loop, FINAL, recovered)
    record = Step(
        step=max(r.step for r in ledger) + 1,
        kind=FINAL,
        step_ratio=0.0,
        channels=start.channels,
        channel_ratio=start.channel_ratio,
        macs=start.macs,
        params=start.params,
        speedup=start.speedup,
        epochs=epochs,
        pruned_map50_95=start.map50_95,
        pruned_map50=start.map50,
        **_maps(recovered),
        **_drop(loop, recovered, within),
        stop=ledger[-1].stop,
        checkpoint=run.rel(run.step_weights(FINAL)),
        **clock.seconds(),
    )
    run.append_ledger(record)
    loop.log(
        f"Final fine-tune of step {start.step} ({epochs} epochs): mAP50-95 {start.map50_95:.4f} -> "
        f"{recovered['map50_95']:.4f}" + ("" if within else "; over the mAP budget, final.pt stays")
    )
    return record


def _publish_if_within(loop: Loop, step, recovered: dict) -> bool:
    """Is the step's model within budget? If so it becomes final.pt (published: folded into Ultralytics' blocks)."""
    within = loop.budget.within(loop.unpruned["map50_95"], recovered["map50_95"])
    if within:
        done = checkpoints.publish(loop.run.step_weights(step), loop.run.final)
        if done["padded_channels"] or done["kept"]:
            loop.log(
                f"final.pt: {done['padded_channels']} zero channels pad unequal halves of folded blocks"
                + (f"; left prunable (needs prunelib): {', '.join(done['kept'])}" if done["kept"] else "")
            )
    return within


def _drop(loop: Loop, recovered: dict, within: bool) -> dict:
    return {"map_drop": round(loop.unpruned["map50_95"] - recovered["map50_95"], 6), "within_budget": within}


def format_step(r: Step, goal, unpruned: dict) -> str:
    """One line per step: 'Step 2/3' for a plan of 3 steps; 'Step 1/1 (up to 3 until 2.00x)' for a MACs goal, which
    steps on past its plan until reached."""
    more = f" (up to {goal.most_steps} until {goal.target:.2f}x)" if goal.most_steps > goal.steps else ""
    timed = ""
    if r.timed:
        landed = f"; trials: {r.landing}" if r.landing else ""
        timed = (
            f", latency {r.latency_ms:.2f} ms in {r.latency_runtime} {r.latency_precision} "
            f"({r.latency_speedup:.2f}x, blocks {r.latency_low:.2f}-{r.latency_high:.2f}x{landed})"
        )
    return (
        f"Step {r.step}/{goal.steps}{more}: params {r.params / 1e6:.2f}M, MACs {r.macs / 1e9:.3f}G "
        f"(speed-up {r.speedup:.2f}x){timed}, channels pruned {r.channel_ratio:.1%}, "
        f"mAP50-95 {unpruned['map50_95']:.4f} -> pruned {r.pruned_map50_95:.4f} -> recovered {r.map50_95:.4f}"
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


def _confirmed(loop: Loop, model) -> dict:
    """The step's timing; timed once more, three times as long, when its median is near the goal (within the landing
    band's width below it) but the goal's rule does not call it reached: a goal is reached on a figure the blocks
    confirm, never on noise, and a noisy block does not cost a step more either."""
    measured = loop.timed(model)
    near = measured["speedup"] >= loop.goal.target * (1 - policy.LANDING_BAND)
    if near and not loop.goal.reached(measured):
        measured = loop.timed(model, longer=3)
    return measured


def _latency_fields(measured: dict) -> dict:
    """A step's latency in the ledger: its and the unpruned model's medians, the ratio and how far it spread."""
    return {
        "latency_ms": measured["ms"],
        "unpruned_latency_ms": measured["reference_ms"],
        "latency_speedup": measured["speedup"],
        "latency_low": measured["low"],
        "latency_high": measured["high"],
        "latency_runtime": measured["runtime"],
        "latency_precision": measured["precision"],
    }


def _finetune(loop: Loop, model, pruned_path: Path, step: int):
    """The fine-tuned model (from the pruned checkpoint, as DDP needs; distilled from the unpruned model when asked),
    or the pruned one saved as the step's weights when fine-tuning is off."""
    run, epochs = loop.run, loop.epochs["step"]
    if epochs > 0:
        return finetune(pruned_path, loop.training, loop.data, run.step_dir(step), epochs, teacher=run.unpruned_pt)[0]
    for path in run.step_checkpoints(step):
        checkpoints.save_model(model, path)
    return model


def _maps(metrics: dict, prefix: str = "") -> dict:
    return {f"{prefix}map50_95": round(metrics["map50_95"], 6), f"{prefix}map50": round(metrics["map50"], 6)}


def _log_step(loop: Loop, record: Step) -> None:
    loop.log(format_step(record, loop.goal, loop.unpruned))
    if record.stop == "map_drop":
        last = loop.run.final_step()
        loop.log(
            f"Early stop: mAP50-95 dropped {record.map_drop:.4f} > budget; final.pt rolled back to "
            f"{'step %d' % last.step if last else 'the unpruned model'}"
        )
