"""Fine-tuning that keeps the pruned structure: an Ultralytics DetectionTrainer whose get_model returns the pruned
model, given in memory or as a checkpoint path (the route multi-GPU DDP workers take: they rebuild the trainer from
its arguments in fresh processes).

Plain ``YOLO.train()`` rebuilds the model from its YAML and transfers only tensors of matching shape: on a pruned
model that silently trains something else.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn
from ultralytics.cfg import DEFAULT_CFG
from ultralytics.models.yolo.detect import DetectionTrainer

from prunelib.offline import use_all_cores
from prunelib.surgery.checkpoints import load_model
from prunelib.surgery.measuring import n_params
from prunelib.training.arguments import ultralytics_args


class PrunedDetectionTrainer(DetectionTrainer):
    """DetectionTrainer for a pruned model: ``model`` (in memory) or ``overrides['model']`` (a .pt path)."""

    def __init__(self, cfg=DEFAULT_CFG, overrides=None, _callbacks=None, model: nn.Module | None = None, threads=0):
        self.pruned_model = model
        super().__init__(cfg, overrides, _callbacks)
        for event in ("on_train_start", "on_val_start"):  # Ultralytics sets cores-1 threads on CPU
            self.add_callback(event, use_all_cores(threads))

    def get_model(self, cfg=None, weights=None, verbose=True):
        """The pruned model as it is: never rebuilt from YAML."""
        model = self.pruned_model if self.pruned_model is not None else weights
        if model is None:
            model = load_model(self.args.model)
        return model


def finetune(model: nn.Module | str | Path, params: dict, data: str, save_dir) -> tuple[nn.Module, PrunedDetectionTrainer]:
    """Fine-tune model (module or checkpoint path) with the run's settings; return the best (EMA) model, FP32.

    Settings: the cfg YAML (if any) is the base, the run's fine-tuning parameters override it. Checkpoints go to
    save_dir/weights/{best,last}.pt. The parameter count after training must equal the one before.
    """
    save_dir = Path(save_dir)
    in_memory = isinstance(model, nn.Module)
    before = n_params(model if in_memory else load_model(model))
    overrides = ultralytics_args(params, "finetune", data, model="pruned" if in_memory else str(model),
                                 project=str(save_dir.parent), name=save_dir.name)
    trainer = PrunedDetectionTrainer(overrides=overrides, model=model if in_memory else None, threads=params["threads"])
    trainer.train()
    best = load_model(trainer.best if Path(trainer.best).is_file() else trainer.last)
    after = n_params(best)
    if after != before:
        raise RuntimeError(f"fine-tuning changed the model: {before} parameters before, {after} after")
    return best, trainer
