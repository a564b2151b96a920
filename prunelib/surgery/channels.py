"""An Ultralytics ``Conv`` (conv + BatchNorm + activation) changed in its output channels: every per-output tensor,
the conv's rows and bias and BatchNorm's four vectors, edited by one function so they never disagree."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

# (submodule, tensor, trained?) of every tensor indexed by the output channel
OUTPUT_TENSORS = (
    ("conv", "weight", True),
    ("conv", "bias", True),
    ("bn", "weight", True),
    ("bn", "bias", True),
    ("bn", "running_mean", False),
    ("bn", "running_var", False),
)


def map_outputs(conv: nn.Module, edit: Callable[[str, torch.Tensor], torch.Tensor]) -> nn.Module:
    """Replace, in place, each per-output tensor t of conv named 'conv.weight', 'bn.running_var', ... by
    edit(name, t); the channel counts follow the new first dimension. Returns conv."""
    for part, key, trained in OUTPUT_TENSORS:
        module = getattr(conv, part, None)
        tensor = getattr(module, key, None) if module is not None else None
        if tensor is not None:
            new = edit(f"{part}.{key}", tensor.data)
            setattr(module, key, nn.Parameter(new) if trained else new)
    conv.conv.out_channels = conv.conv.weight.shape[0]
    if getattr(conv, "bn", None) is not None:
        conv.bn.num_features = conv.conv.out_channels
    return conv


def tensor_of(conv: nn.Module, name: str) -> torch.Tensor:
    part, key = name.split(".")
    return getattr(getattr(conv, part), key).data
