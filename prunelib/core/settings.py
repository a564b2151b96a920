"""A run's parameters as they reach every layer: typed, frozen settings built once per run (``Settings.of``; a run
holds them as ``Run.settings``), a small dataclass per concern, so that a function's signature says what it reads.
Each field is the parameter of the same name: prunelib.core.parameters holds its meaning, default and checks, and
tests/test_parameters.py checks that every parameter is a field of some concern and every field a parameter."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import get_type_hints

from prunelib import machine
from prunelib.errors import UserError
from prunelib.paths import resolve


class _FromParameters:
    @classmethod
    def of(cls, params: dict):
        """The settings from a run's merged parameters (lists as tuples: settings are frozen)."""
        return cls(**{f.name: tuple(v) if isinstance(v := params[f.name], list) else v for f in fields(cls)})


@dataclass(frozen=True)
class Place(_FromParameters):
    """Where a run lives and what it runs on (prunelib.core.folder, prunelib.runs.opening)."""

    run_name: str
    runs_dir: str
    cache_dir: str  # '' = <runs>/.cache
    device: str
    threads: int
    seed: int


def image_folder(data: str) -> bool:
    """Is the data parameter a folder of unlabelled images, which the model labels (prunelib.training.pseudo_labels),
    rather than a data YAML?"""
    return bool(data) and resolve(data).is_dir()


@dataclass(frozen=True)
class Source(_FromParameters):
    """The run's starting model and data: the user's, or the embedded baseline and synthetic set
    (prunelib.training.embedded)."""

    model: str  # '' = the embedded baseline
    data: str  # '' = the synthetic set
    imgsz: int
    seed: int
    synth_train: int
    synth_val: int
    synth_imgsz: int
    synth_classes: tuple
    baseline_cfg: str
    baseline_epochs: int
    baseline_lr0: float
    baseline_nbs: int
    batch: int

    @property
    def image_folder(self) -> bool:
        """data is a folder of unlabelled images (image_folder)."""
        return image_folder(self.data)


@dataclass(frozen=True)
class Goal(_FromParameters):
    """What the prune loop aims at and when it stops (prunelib.runs.policy)."""

    iterative_steps: int
    target_prune_rate: float
    target_speedup: float  # 0 = off
    target_latency_speedup: float  # 0 = off; the first of the three set decides (parameters.GOALS)
    latency_runtime: str
    latency_precision: str
    max_steps: int  # 0 = 3 x iterative_steps
    max_map_drop: float
    max_map_drop_rel: float  # 0 = off


@dataclass(frozen=True)
class Schedule(_FromParameters):
    """How each step of the loop cuts and recovers (prunelib.runs.loop)."""

    iterative_steps: int
    finetune_epochs: int
    final_share: float
    sparse_epochs: int
    sparse_reg: float
    layer_ratios: str
    bn_recalibration: int  # calibration images; 0 = no repair of the cut
    compensation: str  # parameters.COMPENSATIONS

    @property
    def repairs(self) -> tuple[str, ...]:
        """The repairs of a cut to measure (the best is kept): compensation's, or all three when it is 'choose';
        none without calibration images."""
        if self.bn_recalibration <= 0:
            return ("none",)
        return ("fold", "recalibrate", "none") if self.compensation == "choose" else (self.compensation,)

    def epochs(self) -> dict:
        """How the run spends its fine-tuning budget of iterative_steps x finetune_epochs epochs: {'budget',
        'sparse', 'step', 'final'}. Sparsity training and the final fine-tune (final_share of the budget, rounded,
        leaving each step at least one epoch) come out of the budget and the steps share the rest equally, so neither
        ever trains longer. Without fine-tuning (finetune_epochs 0) there is no budget."""
        steps, per_step, sparse = self.iterative_steps, self.finetune_epochs, self.sparse_epochs
        budget = steps * per_step
        if per_step == 0:
            return {"budget": 0, "sparse": 0, "step": 0, "final": 0}
        if budget - sparse < steps:
            raise UserError(
                f"sparse_epochs: {sparse} leaves fewer than one epoch per step of the budget iterative_steps "
                f"x finetune_epochs = {steps} x {per_step} = {budget}; expected at most {budget - steps}"
            )
        final = min(round(self.final_share * budget), budget - sparse - steps)
        return {"budget": budget, "sparse": sparse, "step": (budget - sparse - final) // steps, "final": final}


@dataclass(frozen=True)
class Pruning(_FromParameters):
    """What the pruner is built from (prunelib.surgery.pruner)."""

    importance: str
    ignore_layers: tuple
    prune_proto: bool
    prune_head: bool
    prune_attention: bool
    global_pruning: bool
    isomorphic: bool
    max_pruning_ratio: float
    round_to: int | str  # as asked: a multiple, 0 = any channel count, or 'auto'

    @property
    def channel_multiple(self) -> int:
        """What the cut rounds every channel count to (0 = any count): round_to, with auto resolved to the channel
        block measured on this machine (an onnxruntime probe, paid only where a cut is planned or made)."""
        return machine.channel_block() if self.round_to == "auto" else self.round_to


@dataclass(frozen=True)
class Training(_FromParameters):
    """What Ultralytics' trainers, validators and data loaders are given (prunelib.training)."""

    imgsz: int
    batch: int
    device: str
    workers: int
    threads: int
    seed: int
    cfg: str  # the fine-tuning base: an Ultralytics training-settings YAML ('' = none)
    optimizer: str
    lr0: float
    warmup_epochs: float
    nbs: int
    freeze_bn_stats: bool
    distill_weight: float
    training_seed: int  # fine-tuning's own seed (0 = seed): repeats of a run's training, its data fixed
    match_original: float  # 0 = off (prunelib.training.matching)
    match_features: float  # 0 = off: the head's inputs at the kept channels, a term of the match
    label_weight: float
    baseline_epochs: int
    baseline_lr0: float
    baseline_nbs: int


@dataclass(frozen=True)
class Timing(_FromParameters):
    """How every latency is measured (prunelib.deployment.export's timers)."""

    latency_runs: int
    latency_warmup: int
    latency_threads: int  # 0 = all cores
    throughput_batch: int

    @property
    def batch1(self) -> tuple[int, int, int]:
        """(runs, warm-up runs, threads) of a batch-1 timing, in the order the timers take them."""
        return self.latency_runs, self.latency_warmup, self.latency_threads


@dataclass(frozen=True)
class Export(_FromParameters):
    """Which files the export stage writes (prunelib.deployment)."""

    export_formats: tuple
    onnx_simplify: bool
    opset: int  # 0 = Ultralytics' default
    int8: bool
    int8_onnx_form: str
    int8_fraction: float
    max_precision_drop: float  # a lower-precision file's tolerance against its own float file


@dataclass(frozen=True)
class Shown(_FromParameters):
    """What the analysis stage measures and draws beside the loop (prunelib.runs.sensitivity, detections)."""

    sensitivity: bool
    sensitivity_ratios: tuple
    sensitivity_layers: int  # 0 = all prunable layers
    detection_images: int


@dataclass(frozen=True)
class Alternatives(_FromParameters):
    """What the pruned model is compared with at export (prunelib.deployment.alternatives, prunelib.runs.stock)."""

    alternatives: tuple
    stock_alternative: bool
    stock_epochs: int  # 0 = the model's training epochs plus the run's fine-tuning budget
    stock_distill: bool


@dataclass(frozen=True)
class Settings:
    """Every parameter of a run, by concern; built once per run (Run.settings)."""

    place: Place
    source: Source
    goal: Goal
    schedule: Schedule
    pruning: Pruning
    training: Training
    timing: Timing
    export: Export
    shown: Shown
    alternatives: Alternatives

    @classmethod
    def of(cls, params: dict) -> Settings:
        return cls(**{name: concern.of(params) for name, concern in CONCERNS.items()})


CONCERNS = get_type_hints(Settings)  # field name -> its concern's class
