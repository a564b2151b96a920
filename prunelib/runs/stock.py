"""The stock alternative the kit makes on request (``stock_alternative``): the run's own model family at the width
whose measured latency matches final.pt's, trained from scratch on the run's data.

- Family: the architecture YAML the starting checkpoint carries, at its own depth; only the width changes (Ultralytics
  rounds every layer's channels to multiples of 8 as it does for its own scales).
- Width: bisected on measured latency against final.pt in the latency goal's runtime, precision and threads
  (export.Timer: both exported through Ultralytics' exporter, timed in alternating blocks of runs).
- Budget and recipe: the starting checkpoint's own training (its train_args: epochs, optimizer, learning rates,
  warm-up, nominal batch) plus the run's fine-tuning budget in epochs, unless stock_epochs gives them; with
  stock_distill, Ultralytics' distillation from the unpruned model. A model trained by others from pretrained weights
  is thus compared with one trained from nothing on the run's data: the record says so.
- Selection: the same rule as final.pt's, which is the best val fitness among the epochs of the run's last
  fine-tuning: the stock model keeps its best val fitness among as many last epochs (BestOfLast), not its best of
  all (Ultralytics' best.pt, which would have many more candidates to pick from on the same val images).

Made once per run into ``runs/<run>/stock/`` (stock.json says how); made again only when what it depends on changes.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
from ultralytics.nn import tasks as ultralytics_tasks

from prunelib import files, tasks
from prunelib.core.folder import Run
from prunelib.core.settings import Settings
from prunelib.deployment import export as exporter
from prunelib.surgery import checkpoints, measuring
from prunelib.training import embedded
from prunelib.training.finetuning import finetune

# Ultralytics arguments of the original's training that the stock model is trained with (the rest: the run's)
RECIPE = (
    "optimizer",
    "lr0",
    "lrf",
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "warmup_momentum",
    "warmup_bias_lr",
    "cos_lr",
    "nbs",
    "close_mosaic",
)
SEARCH = (0.125, 1.0)  # the width factors (of the family's own width) the bisection searches between
TRIES = 5  # timed widths: the interval shrinks to 1/32 of its log-width


@dataclass(frozen=True)
class Stock:
    """stock.json: how the stock alternative was sized and trained."""

    family: str  # the architecture YAML it comes from
    width_factor: float  # of the family's own width
    depth: float
    width: float
    latency_ratio: float  # its measured latency over final.pt's (1 = matched), median of the timed blocks
    low: float
    high: float
    runtime: str
    precision: str
    threads: int
    tries: tuple  # (width factor, latency ratio) of each timed width
    macs: int
    params: int
    epochs: int
    epochs_from: str  # how the epochs were chosen, in words
    recipe: dict  # the Ultralytics arguments taken from the original's training
    pretrained_original: bool  # the original started from pretrained weights; the stock model from nothing
    distilled: bool
    minutes: float
    key: str  # what it depends on (final.pt, data, settings): made again when this changes
    candidate_epochs: int = 0  # the last epochs it kept its best of (as many as final.pt's last fine-tuning had)
    kept_epoch: int = 0  # the epoch kept (1-based)

    def record(self) -> dict:
        return asdict(self)


def make(run: Run, log=print, out=None, distill: bool | None = None, epochs: int | None = None):
    """The stock alternative's checkpoint (out: the run's stock folder unless given; distill and epochs: the run's
    stock_distill and stock_epochs unless given); made when missing or out of date, else reused."""
    s = run.settings
    out = out or run.stock_dir
    distill = s.alternatives.stock_distill if distill is None else distill
    source, _ = embedded.model_path(s, train=False)
    args = checkpoints.train_args(source)
    n_epochs, said = planned_epochs(s, args, epochs)
    window = candidate_epochs(s, n_epochs)
    key = _key(run, distill, n_epochs, window)
    best = kept(out)
    stored = run.read_json(out / "stock.json")
    if stored and stored.get("key") == key and best.is_file():
        log(f"Reused the stock alternative {run.rel(best)}")
        return best
    original = checkpoints.load_model(source)
    task, nc = tasks.of(original).name, tasks.classes(original)
    arch = original.yaml
    factor, timing = matched_width(run, arch, task, nc, log)
    model = at_width(arch, factor, task, nc)
    macs, n = measuring.macs_params(model, s.training.imgsz)
    recipe = {k: args[k] for k in RECIPE if k in args}
    name = family(arch, args)
    log(
        f"Stock alternative: {name} at {factor:.3f}x its width ({macs / 1e9:.2f} G MACs, "
        f"{timing['speedup'] ** -1:.2f}x final.pt's latency), trained from scratch for {n_epochs} epochs ({said})"
        + (", distilled from the unpruned model" if distill else "")
        + f"; it keeps its best val fitness of its last {window} epochs, as final.pt of its last fine-tuning's"
    )
    t0 = time.perf_counter()
    keeps = _train(run, model, out, n_epochs, window, distill, recipe)
    depth, width = _multiples(model.yaml)
    record = Stock(
        family=name,
        width_factor=round(factor, 4),
        depth=depth,
        width=round(width, 4),
        latency_ratio=round(1 / timing["speedup"], 4),
        low=round(1 / timing["high"], 4),
        high=round(1 / timing["low"], 4),
        runtime=timing["runtime"],
        precision=timing["precision"],
        threads=timing["threads"],
        tries=tuple(timing["tries"]),
        macs=macs,
        params=n,
        epochs=n_epochs,
        epochs_from=said,
        recipe=recipe,
        pretrained_original=_pretrained(args),
        distilled=distill,
        minutes=round((time.perf_counter() - t0) / 60, 1),
        key=key,
        candidate_epochs=window,
        kept_epoch=keeps.epoch,
    )
    run.write_json(out / "stock.json", record.record())
    return best


def _train(run: Run, model: nn.Module, out: Path, epochs: int, window: int, distill: bool, recipe: dict):
    """Train the stock model from scratch into out with the original's recipe (distilled from the unpruned model when
    asked); returns its BestOfLast (the epoch kept)."""
    training = run.settings.training
    if distill:
        training = replace(training, distill_weight=training.distill_weight or 1.0)
    teacher = run.unpruned_pt if distill else None
    keeps = BestOfLast(window)
    data = embedded.data_yaml(run.settings)
    finetune(model, training, data, out, epochs, teacher=teacher, callbacks={"on_model_save": keeps}, **recipe)
    return keeps


class BestOfLast:
    """An Ultralytics callback (on_model_save) that keeps the checkpoint of the best val fitness among a training's
    last ``epochs`` epochs as weights/best-of-last.pt: the selection final.pt gets, among the epochs of its last
    fine-tuning, given to a model trained for longer."""

    FILE = "best-of-last.pt"

    def __init__(self, epochs: int):
        self.epochs, self.fitness, self.epoch = max(epochs, 1), None, 0

    def __call__(self, trainer) -> None:
        if trainer.epoch + 1 <= trainer.epochs - self.epochs or trainer.fitness is None:
            return  # an earlier epoch than the candidates, or one not validated
        if self.fitness is None or trainer.fitness > self.fitness:
            self.fitness, self.epoch = float(trainer.fitness), trainer.epoch + 1
            files.copy(trainer.last, Path(trainer.wdir) / self.FILE)


def kept(folder: Path) -> Path:
    """The checkpoint a stock training into folder keeps (BestOfLast: Ultralytics' weights folder)."""
    return Path(folder) / "weights" / BestOfLast.FILE


def candidate_epochs(settings: Settings, epochs: int) -> int:
    """How many last epochs the stock model keeps its best of: as many as final.pt's last fine-tuning has (the final
    fine-tune, else a step's), at most its own epochs."""
    planned = settings.schedule.epochs()
    return max(1, min(planned["final"] or planned["step"] or epochs, epochs))


def matched_width(run: Run, arch: dict, task: str, nc: int, log=print) -> tuple[float, dict]:
    """The width factor whose model runs as fast as final.pt (the latency goal's runtime, precision and threads), by
    bisection in log-width over SEARCH; the try closest to a ratio of 1 wins. Returns (factor, its timing with every
    try as (factor, latency ratio) in "tries")."""
    goal, timing = run.settings.goal, run.settings.timing
    timer = exporter.Timer(
        run.final, run.settings.training.imgsz, goal.latency_runtime, timing.latency_threads, goal.latency_precision
    )
    lo, hi = (math.log(f) for f in SEARCH)
    tries = []
    for _ in range(TRIES):
        factor = math.exp((lo + hi) / 2)
        measured = timer.against(at_width(arch, factor, task, nc), timing.latency_runs, timing.latency_warmup)
        tries.append((factor, measured))
        log(f"  width {factor:.3f}x: {1 / measured['speedup']:.2f}x final.pt's latency")
        if measured["speedup"] < 1:  # slower than final.pt: narrower
            hi = math.log(factor)
        else:
            lo = math.log(factor)
    factor, measured = min(tries, key=lambda t: abs(math.log(t[1]["speedup"])))
    return factor, {**measured, "tries": [(round(f, 4), round(1 / t["speedup"], 4)) for f, t in tries]}


def at_width_yaml(arch: dict, factor: float) -> dict:
    """The architecture YAML (a model's ``yaml`` dict) at factor times its own width, its depth kept."""
    d = copy.deepcopy(arch)
    if d.get("scales"):
        scale = d.get("scale") or next(iter(d["scales"]))
        depth, width, max_channels = d["scales"][scale]
        d["scales"], d["scale"] = {scale: [depth, width * factor, max_channels]}, scale
    else:
        d["width_multiple"] = d.get("width_multiple", 1.0) * factor
    return d


def at_width(arch: dict, factor: float, task: str, nc: int) -> nn.Module:
    """A new model of the task at factor times the architecture's width, with fresh weights (seeded: the same width
    gives the same model)."""
    torch.manual_seed(0)
    cls = getattr(ultralytics_tasks, tasks.TASKS[task].model)
    return cls(cfg=at_width_yaml(arch, factor), nc=nc, verbose=False)


def _multiples(d: dict) -> tuple[float, float]:
    if d.get("scales"):
        depth, width, _ = d["scales"][d["scale"]]
        return depth, width
    return d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0)


def family(arch: dict, args: dict) -> str:
    """The architecture's name: its YAML file, else the model its training started from (a checkpoint saved by an
    older Ultralytics keeps no YAML name: 'yolov8n' from train_args' 'yolov8n.pt'), else what it is."""
    started = Path(str(args.get("model") or "")).stem
    return str(arch.get("yaml_file") or started or "the checkpoint's architecture")


def _pretrained(args: dict) -> bool:
    """Did the original start from trained weights (a .pt model with pretrained on), not from its YAML?"""
    return bool(args.get("pretrained")) and str(args.get("model", "")).endswith(".pt")


def planned_epochs(settings: Settings, args: dict, asked: int | None = None) -> tuple[int, str]:
    """The stock model's epochs and how they were chosen, in words."""
    asked = settings.alternatives.stock_epochs if asked is None else asked
    if asked:
        return asked, "stock_epochs"
    budget = settings.schedule.epochs()["budget"]
    own = args.get("epochs")
    if not own:
        return max(budget, 1), "the run's fine-tuning budget (the checkpoint records no training epochs)"
    return own + budget, f"the original's {own} training epochs + the run's {budget} fine-tuning epochs"


def _key(run: Run, distill: bool, epochs: int, window: int) -> str:
    s = run.settings
    blob = [
        hashlib.sha256(run.final.read_bytes()).hexdigest(),
        str(embedded.data_yaml(s)),
        distill,
        epochs,
        window,
        s.training.imgsz,
        s.training.batch,
        s.training.seed,
        s.goal.latency_runtime,
        s.goal.latency_precision,
        s.timing.latency_threads,
    ]
    return hashlib.sha256(repr(blob).encode()).hexdigest()[:12]
