"""Fine-tuning that keeps the pruned structure: the task's own Ultralytics trainer (DetectionTrainer,
SegmentationTrainer, PoseTrainer, OBBTrainer) whose get_model returns the pruned model, given in memory or as a
checkpoint path (the route multi-GPU DDP workers take: they rebuild the trainer from its arguments in fresh
processes).

Plain ``YOLO.train()`` rebuilds the model from its YAML and transfers only tensors of matching shape: on a pruned
model that silently trains something else.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import torch.nn as nn
from ultralytics.cfg import DEFAULT_CFG
from ultralytics.utils.torch_utils import unwrap_model

from prunelib import console, tasks
from prunelib.core.settings import Settings, Training
from prunelib.offline import use_all_cores
from prunelib.paths import resolve
from prunelib.surgery import lineage
from prunelib.surgery.checkpoints import load_model
from prunelib.surgery.folding import fold
from prunelib.surgery.measuring import n_params
from prunelib.training.arguments import ultralytics_args
from prunelib.training.embedded import data_yaml
from prunelib.training.matching import MatchesOriginal


class KeepsPrunedModel:
    """What makes a task's trainer train a pruned model: ``model`` (in memory) or ``overrides['model']`` (a .pt
    path), never rebuilt from YAML; sparsity training in the optimizer step. Mixed in before the task's trainer."""

    def __init__(
        self,
        cfg=DEFAULT_CFG,
        overrides=None,
        _callbacks=None,
        model: nn.Module | None = None,
        threads=0,
        regularizer: Callable[[nn.Module], Any] | None = None,
        freeze_bn_stats: bool = False,
        original: nn.Module | None = None,
        match_original: float = 0.0,
        label_weight: float = 1.0,
        match_features: float = 0.0,
    ):
        self.pruned_model = model
        self.freeze_bn_stats = freeze_bn_stats
        self.regularizer, self._pruner, self._reg = regularizer, None, 0.0
        self.original, self.match_original, self.label_weight = original, match_original, label_weight
        self.match_features = match_features
        super().__init__(cfg, overrides, _callbacks)
        for event in ("on_train_start", "on_val_start"):  # Ultralytics sets cores-1 threads on CPU
            self.add_callback(event, use_all_cores(threads))
        if original is not None and match_original > 0:
            self.add_callback("on_train_start", KeepsPrunedModel._matches_original)

    def _matches_original(self):
        """The trained model's criterion matches the original too (matching.MatchesOriginal); set once training
        starts, after the EMA copy was made: the EMA, which validates and is saved, keeps the task's own loss."""
        model = unwrap_model(self.model)
        labels = model.init_criterion()
        model.criterion = MatchesOriginal(
            labels,
            self.original.to(self.device),
            self.match_original,
            self.label_weight,
            self.match_features,
            lineage.kept(model),
        )

    def get_model(self, cfg=None, weights=None, verbose=True):
        """The pruned model as it is: never rebuilt from YAML."""
        model = self.pruned_model if self.pruned_model is not None else weights
        if model is None:
            model = load_model(self.args.model)
        for p in model.parameters():  # a model that was validated or timed comes back without gradients; the
            p.requires_grad_(p.dtype.is_floating_point)  # trainer would warn once per tensor, then enable them
        return model

    def _model_train(self):
        """Train mode, as Ultralytics sets it each epoch (BatchNorm of its frozen layers kept in eval mode); with
        freeze_bn_stats every BatchNorm keeps its running statistics (eval mode: it normalizes with them and does not
        update them), while its scale and shift still train."""
        super()._model_train()
        if self.freeze_bn_stats:
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def optimizer_step(self):
        """Sparsity training: with a regularizer (model -> Torch-Pruning pruner with reg > 0), its regularize() adds
        to the gradients after backward and before the optimizer step (in the loss scaler's units under AMP)."""
        if self.regularizer is not None:
            model = unwrap_model(self.model)
            if self._pruner is None:
                frozen = [p for p in model.parameters() if not p.requires_grad]  # e.g. the DFL conv
                self._pruner = self.regularizer(model)  # tracing needs gradients everywhere
                self._reg = self._pruner.reg
                for p in frozen:
                    p.requires_grad_(False)
            self._pruner.reg = self._reg * (self.scaler.get_scale() if self.scaler.is_enabled() else 1.0)
            self._pruner.regularize(model)
        super().optimizer_step()


@functools.cache
def trainer_for(task: str) -> type:
    """The task's own Ultralytics trainer (prunelib.tasks) for a pruned model: KeepsPrunedModel mixed in before it,
    e.g. ``PrunedSegmentationTrainer(KeepsPrunedModel, SegmentationTrainer)``."""
    base = tasks.TASKS[task].trainer_class()
    return type(
        f"Pruned{base.__name__}",
        (KeepsPrunedModel, base),
        {"__module__": __name__, "__doc__": f"{base.__name__} for a pruned model."},
    )


def finetune(
    model: nn.Module | str | Path,
    settings: Training,
    data: str,
    save_dir,
    epochs: int,
    teacher: str | Path | None = None,
    regularizer=None,
    callbacks: dict[str, Callable] | None = None,
    **arguments,
) -> tuple[nn.Module, KeepsPrunedModel]:
    """Fine-tune model (module or checkpoint path) for epochs with the run's settings; return the best (EMA) model,
    FP32 (the last one when training with a regularizer: sparsity grows with the epochs). With
    settings.distill_weight and a teacher checkpoint, Ultralytics' knowledge distillation learns from it (features
    at the Detect head's inputs); the checkpoints it saves hold the student alone. With settings.match_original and a
    teacher (the original), the loss matches its outputs too, the labels' loss weighted by label_weight
    (matching.MatchesOriginal). callbacks: {Ultralytics event: function of the trainer}, added to the trainer's own.

    Settings: the cfg YAML (if any) is the base, the run's fine-tuning parameters override it, arguments (Ultralytics'
    own, e.g. another model's training recipe) override both. Checkpoints go to
    save_dir/weights/{best,last}.pt. The parameter count after training must equal the one before.
    """
    save_dir = Path(save_dir)
    in_memory = isinstance(model, nn.Module)
    loaded = model if in_memory else load_model(model)
    before, task = n_params(loaded), tasks.of(loaded).name
    wanted = teacher and settings.distill_weight
    distill = {"distill_model": str(teacher), "dis": settings.distill_weight} if wanted else {}
    original = load_model(teacher) if teacher and settings.match_original else None
    overrides = ultralytics_args(
        settings,
        "finetune",
        data,
        model="pruned" if in_memory else str(model),
        project=str(save_dir.parent),
        name=save_dir.name,
        epochs=epochs,
        **distill,
        **arguments,
    )
    with console.captured():  # its whole argument list, in the run's log instead of the console
        trainer = trainer_for(task)(
            overrides=overrides,
            model=model if in_memory else None,
            threads=settings.threads,
            regularizer=regularizer,
            freeze_bn_stats=settings.freeze_bn_stats,
            original=original,
            match_original=settings.match_original,
            label_weight=settings.label_weight,
            match_features=settings.match_features,
        )
    for event, callback in (callbacks or {}).items():
        trainer.add_callback(event, callback)
    trainer.train()
    best = load_model(trainer.best if Path(trainer.best).is_file() and not regularizer else trainer.last)
    after = n_params(best)
    if after != before:
        raise RuntimeError(f"fine-tuning changed the model: {before} parameters before, {after} after")
    return best, trainer


def continue_training(settings: Settings, out_dir, teacher=None) -> tuple[Path, Path]:
    """Train the model parameter, a pruned checkpoint, further on data for finetune_epochs with its
    structure kept (plain ``YOLO(path).train()`` rebuilds it from its YAML). The model is folded into Ultralytics'
    own blocks first, so the checkpoints Ultralytics writes, out_dir/weights/{best,last}.pt, load without prunelib.
    With a teacher checkpoint, Ultralytics' distillation learns from it (weight distill_weight).
    Returns (best, last)."""
    model = load_model(resolve(settings.source.model), "model")
    fold(model)
    data = data_yaml(settings)
    _, trainer = finetune(model, settings.training, data, out_dir, settings.schedule.finetune_epochs, teacher=teacher)
    return Path(trainer.best), Path(trainer.last)
