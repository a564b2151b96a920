"""Adaptive BatchNorm (EagleEye, ECCV 2020): after channels are removed, the BatchNorm layers behind them see other
inputs than their running statistics describe. Re-estimating those statistics on a few hundred training images,
forward only, brings the pruned model's accuracy back before any fine-tuning, so "mAP after pruning" measures what
the pruning kept rather than stale statistics.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from prunelib.core.settings import Training
from prunelib import tasks
from prunelib.training.datasets import training_batches


def recalibrate_batchnorm(model: nn.Module, settings: Training, data, images: int) -> int:
    """Replace the running mean/var of every BatchNorm of model by their average over ``images`` training images
    (train-mode forward, no gradients, weights untouched); return the images used. The model's mode is restored."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or images <= 0:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches, not an exponential one
    was_training, used = model.training, 0
    model.train()
    try:
        with torch.no_grad():
            for batch in training_batches(settings, data, images, tasks.of(model).name):
                model(batch["img"])
                used += len(batch["img"])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return used
