"""The line a run starts with: its goal, its recipe, its fine-tuning budget, where its time is measured, and about
how long it will take (``first_line``); and, where fine-tuning runs on a GPU, that the latency goal is still timed on
this machine's CPU (``device_note``)."""

from __future__ import annotations

import time

import torch

from prunelib import machine
from prunelib.core import parameters
from prunelib.core.folder import Run
from prunelib.core.settings import Settings, Source, Timing
from prunelib.errors import UserError
from prunelib.offline import threads
from prunelib.surgery import checkpoints
from prunelib.runs import stock
from prunelib.training import datasets, embedded, pseudo_labels

# What decides how a run cuts and recovers: the recipe. The built-in defaults are the measured best (README, bench/).
RECIPE = (
    "importance",
    "prune_head",
    "round_to",
    "layer_ratios",
    "global_pruning",
    "iterative_steps",
    "optimizer",
    "lr0",
    "warmup_epochs",
    "nbs",
    "bn_recalibration",
    "compensation",
    "distill_weight",
    "match_original",
    "label_weight",
    "match_features",
    "sparse_epochs",
    "final_share",
    "freeze_bn_stats",
)


def announce(run: Run, log=print, when: bool = True) -> None:
    """The run's first line, and the device note where it applies (nothing when not when: said already)."""
    if not when:
        return
    log(first_line(run))
    if note := device_note(run.settings):
        log(note)


def first_line(run: Run) -> str:
    """One plain line: goal; recipe; budget; where the goal is timed; the estimate."""
    s = run.settings
    return f"{goal(s)}; {recipe(s, parameters.changed(run.params, RECIPE))}; {budget(s)}; {estimate(run)}"


def goal(settings: Settings) -> str:
    g = settings.goal
    if g.target_latency_speedup:
        where = f"{g.latency_runtime} {g.latency_precision}, batch 1, {timing_threads(settings.timing)}"
        return f"Goal: {g.target_latency_speedup:g}x faster, timed in {where}, on this machine"
    if g.target_speedup:
        return f"Goal: {g.target_speedup:g}x fewer MACs (counted, not timed)"
    return f"Goal: {g.target_prune_rate:.0%} of the prunable channels removed"


def timing_threads(timing: Timing) -> str:
    n = timing.latency_threads or threads(0)
    every = " (all cores)" if not timing.latency_threads else ""
    return f"{n} thread{'s' if n != 1 else ''}{every}"


def recipe(settings: Settings, changed: list[str]) -> str:
    """The recipe in words; changed: the RECIPE parameters the user set away from the built-in defaults."""
    pruning, training = settings.pruning, settings.training
    head = "head pruned" if pruning.prune_head else "head whole"
    multiple = pruning.channel_multiple
    if multiple == 0:
        block = "any channel count"
    elif multiple == machine.channel_block():
        block = f"whole blocks of {multiple} channels"
    else:
        block = f"multiples of {multiple} channels"
    lr = "Ultralytics' optimizer rule" if training.optimizer == "auto" else f"{training.optimizer} lr0 {training.lr0:g}"
    which = "the kit's recipe" if not changed else f"your recipe ({', '.join(changed)} changed)"
    targets = ", on the labels and the original's outputs" if training.match_original else ""
    targets = ", on the original's outputs alone" if not training.label_weight else targets
    frozen = ", BatchNorm statistics frozen" if training.freeze_bn_stats else ""
    repairs = settings.schedule.repairs
    best_of = "the best of " if len(repairs) > 1 else ""
    repair = "" if repairs == ("none",) else f", each cut repaired by {best_of}{' / '.join(repairs)}"
    return f"{which}: {head}, {block}, {lr}{targets}{frozen}{repair}"


def budget(settings: Settings) -> str:
    schedule = settings.schedule
    if not schedule.epochs()["budget"]:
        return "no fine-tuning"
    steps, epochs = schedule.iterative_steps, schedule.finetune_epochs
    said = f"fine-tuning {steps} step{'s' if steps > 1 else ''} x {epochs} epoch{'s' if epochs != 1 else ''}"
    n = _alternatives(settings)
    return said + (f", beside {n} alternative{'s' if n > 1 else ''}" if n else "")


def _alternatives(settings: Settings) -> int:
    """How many alternatives the export stage exports beside the pruned model (the stock model counts)."""
    return len(settings.alternatives.alternatives) + settings.alternatives.stock_alternative


TEACHER_SHARE = 1 / 3  # a forward pass without gradients, against a training step's forward and backward


def estimate(run: Run) -> str:
    """About how long the run takes: fine-tuning timed from one training batch of the model here, plus the overheads
    of a run (validation, latency timing, export); or that the embedded baseline is trained first."""
    s = run.settings
    try:
        source, _ = embedded.model_path(s, train=False)
    except UserError:  # the embedded baseline is not made yet: stage 00 trains it (its time is its own)
        return "the embedded baseline is trained first"
    n_train, n_val = _images(s.source)
    per_image = _training_seconds_per_image(source, s.training.imgsz)
    # matching the original runs it forward on every batch too: about a third of a training step of the same model
    epochs = s.schedule.epochs()["budget"] * (1 + TEACHER_SHARE if s.training.match_original else 1)
    if s.alternatives.stock_alternative:  # trained from scratch: at most the unpruned model's time per image
        epochs += stock.planned_epochs(s, checkpoints.train_args(source))[0]
    fine_tuning = epochs * (n_train + n_val / 3) * per_image
    timing = 90 if s.goal.target_latency_speedup else 0  # each candidate exported and timed against the unpruned one
    models = 2 + _alternatives(s)
    export = (75 + 0.25 * n_val * per_image) * models  # each model exported, quantized, validated and timed
    minutes = (fine_tuning + timing + export) / 60
    return f"about {max(1, round(minutes))} min here"


def device_note(settings: Settings) -> str | None:
    """Said when fine-tuning runs on a GPU while the latency goal is timed on this machine's CPU."""
    device = settings.training.device
    if device == "cpu" or not settings.goal.target_latency_speedup:
        return None
    return (
        f"Note: the latency goal is timed on this machine's CPU ({machine.describe()}), not on device "
        f"{device}; to prune for another device, run there or use target_speedup (MACs)"
    )


def _images(source: Source) -> tuple[int, int]:
    if not source.data:
        return source.synth_train, source.synth_val
    if source.image_folder:  # unlabelled images: a share held back for validation
        held = pseudo_labels.split(pseudo_labels.images_in(parameters.resolve(source.data)), source.seed)
        return len(held["train"]), len(held["val"])
    info = datasets.check_data_yaml(parameters.resolve(source.data))
    return len(info["train"]), len(info["val"])


def _training_seconds_per_image(source, imgsz: int) -> float:
    """One forward and backward pass of a batch of 4 at imgsz, after one untimed pass: seconds per image."""
    model = checkpoints.load_model(source)
    x = torch.rand(4, 3, imgsz, imgsz)
    seconds = []
    for _ in range(3):
        t0 = time.perf_counter()
        sum(t.float().mean() for t in _tensors(model(x))).backward()
        seconds.append(time.perf_counter() - t0)
    return min(seconds[1:]) / 4


def _tensors(out):
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, dict):
        for v in out.values():
            yield from _tensors(v)
    elif isinstance(out, (list, tuple)):
        for v in out:
            yield from _tensors(v)
