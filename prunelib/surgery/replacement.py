"""The pruning-friendly replacement of C3k2 (and YOLOv8's C2f, its base class), numerically identical.

C2f/C3k2 split the output of one conv with ``chunk(2, 1)``: pruning that conv's channels unevenly breaks the split,
so Torch-Pruning cannot prune it. ``C3k2Prunable`` carries the two halves as two convs (``cv0``, ``cv1``), each a copy
of the original Conv holding its half of the weights and BatchNorm state, and reuses ``cv2`` and the inner blocks
``m`` as they are (Bottleneck, C3k, or Bottleneck + PSABlock). The result is exact in eval and train mode.

The class lives here, at a stable import path, so checkpoints holding it load in any process with prunelib installed.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
from ultralytics.nn.modules.block import C2f, C3k, C3k2, PSABlock

from prunelib.surgery.channels import map_outputs

ROUTING_ATTRS = ("f", "i", "type", "np")  # set by Ultralytics' parse_model; the graph runner needs them


class C3k2Prunable(nn.Module):
    """C2f/C3k2 with ``cv1`` split in two convs: ``y = [cv0(x), cv1(x), m0(y[-1]), ...]; cv2(cat(y))``."""

    def __init__(self, src: C2f):
        super().__init__()
        self.kind = block_kind(src)
        self.c = src.c
        self.cv0 = _half_of(src.cv1, 0, src.c)
        self.cv1 = _half_of(src.cv1, src.c, 2 * src.c)
        self.cv2 = src.cv2
        self.m = src.m
        for attr in ROUTING_ATTRS:
            if hasattr(src, attr):
                setattr(self, attr, getattr(src, attr))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv0(x), self.cv1(x)]
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


C3k2_v2 = C3k2Prunable  # the name used by the reference script


def replace_c3k2(model: nn.Module) -> list[tuple[str, str]]:
    """Replace every C3k2/C2f in model, in place; return [(module name, kind)] of what was replaced."""
    replaced = []
    for name, module in list(model.named_modules()):
        if type(module) in (C2f, C3k2):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            new = C3k2Prunable(module)
            setattr(parent, child, new)
            replaced.append((name, new.kind))
    return replaced


def find_blocks(model: nn.Module) -> list[tuple[str, str]]:
    """[(module name, kind)] of C3k2/C2f blocks, replaced or not."""
    out = []
    for name, m in model.named_modules():
        if type(m) in (C2f, C3k2):
            out.append((name, block_kind(m)))
        elif isinstance(m, C3k2Prunable):
            out.append((name, m.kind + " (replaced)"))
    return out


def block_kind(m: nn.Module) -> str:
    """'c2f', or for C3k2 what its inner blocks are: 'bottleneck', 'c3k' or 'attn'."""
    if isinstance(m, C3k2Prunable):
        return m.kind
    if type(m) is C2f:
        return "c2f"
    first = m.m[0] if len(m.m) else None
    if isinstance(first, nn.Sequential) and any(isinstance(s, PSABlock) for s in first):
        return "attn"
    if isinstance(first, C3k):
        return "c3k"
    return "bottleneck"


def max_output_difference(a: nn.Module, b: nn.Module, x: torch.Tensor, train: bool = False) -> float:
    """max |a(x) - b(x)| over all output tensors, element by element; train=True compares train-mode outputs
    (batch-stat BN). Infinite when the two give a different number of outputs or outputs of different shapes: a
    missing or reshaped output is the largest difference there is, never one left out.

    Runs on copies, so neither model's BatchNorm statistics move.
    """
    outs = []
    for model in (a, b):
        model = copy.deepcopy(model).train(train)
        with torch.no_grad():
            outs.append(_flatten(model(x)))
    if len(outs[0]) != len(outs[1]) or any(p.shape != q.shape for p, q in zip(*outs)):
        return math.inf
    return max((p - q).abs().max().item() for p, q in zip(*outs))


def _half_of(conv: nn.Module, start: int, stop: int) -> nn.Module:
    """A copy of an Ultralytics Conv (conv + bn + act) keeping output channels [start, stop)."""
    return map_outputs(copy.deepcopy(conv), lambda _name, t: t[start:stop].clone())


def _flatten(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in out for t in _flatten(o)]
