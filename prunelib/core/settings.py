"""Settings as they cross from the parameter table into model surgery and training: a small frozen dataclass per
concern, built from a run's merged parameters in one place (``of``), so that a function's signature says what it
reads. Each field is the parameter of the same name (prunelib.core.parameters: its meaning, default and checks)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from prunelib import machine


class _FromParameters:
    @classmethod
    def of(cls, params: dict):
        """The settings from a run's merged parameters (lists as tuples: settings are frozen)."""
        return cls(**{f.name: tuple(v) if isinstance(v := params[f.name], list) else v for f in fields(cls)})


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
    round_to: int  # round_to: auto is the channel block measured on this machine

    @classmethod
    def of(cls, params: dict):
        settings = super().of(params)
        return replace(settings, round_to=machine.channel_block()) if settings.round_to == "auto" else settings


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
    baseline_epochs: int
    baseline_lr0: float
    baseline_nbs: int
