"""Gradients of a model's own task loss on a few training batches (no augmentation): what gradient-based channel
importances (Taylor) rank by. The pruner takes them as a callable, so model surgery needs nothing of training."""

from __future__ import annotations

from functools import partial

import torch.nn as nn

from prunelib.core.settings import Training
from prunelib import tasks
from prunelib.training.arguments import ultralytics_cfg
from prunelib.training.datasets import training_batches


def for_pruning(settings: Training, data):
    """The pruner's gradients argument: gradients(model) accumulates them on data's training images."""
    return partial(accumulate_gradients, settings=settings, data=data)


def accumulate_gradients(model: nn.Module, settings: Training, data, batches: int = 2) -> None:
    """Gradients of the model's task loss on a few training batches (no augmentation), for Taylor importance.
    The model's own ``args`` and loss are left as they were."""
    task = tasks.of(model).name
    saved = model.__dict__.get("args", _MISSING), getattr(model, "criterion", None)
    model.args, model.criterion = ultralytics_cfg(settings, "loader", data, task=task), None
    try:
        model.train()
        model.zero_grad(set_to_none=True)
        for batch in training_batches(settings, data, batches * settings.batch, task):
            loss, _ = model.loss(batch)
            loss.sum().backward()
    finally:
        model.criterion = saved[1]
        if saved[0] is _MISSING:
            del model.args
        else:
            model.args = saved[0]


_MISSING = object()
