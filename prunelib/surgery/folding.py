"""Folding the prunable blocks back into Ultralytics' own C3k2 / C2f, so a published checkpoint loads, trains and
exports wherever ``ultralytics`` is installed, without prunelib.

A ``C3k2Prunable`` computes ``cv2(cat(cv0(x), cv1(x), m0(...), ...))``; the stock block computes the same with one
conv ``cv1`` whose output is chunked in two equal halves of ``c`` channels. Folding concatenates ``cv0`` and ``cv1``
into that conv. When pruning left the halves unequal (global ranking), the smaller half is padded to the larger with
channels whose output is exactly zero (conv weights 0, BatchNorm gamma = beta = 0, so SiLU gives 0) and every conv
reading them gets zero input weights, so ``chunk(2, 1)`` and ``split((c, c), 1)`` stay exact in eval and train mode.
Padding the half that feeds the inner blocks also pads the residual outputs of Bottlenecks; a block it cannot pad
(the attention kind) stays prunable and is reported.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from ultralytics.nn.modules.block import C2f, C3k, C3k2, Bottleneck

from prunelib.surgery.channels import map_outputs, tensor_of
from prunelib.surgery.replacement import ROUTING_ATTRS, C3k2Prunable


class NotFoldable(Exception):
    pass


def fold(model: nn.Module) -> dict:
    """Replace every C3k2Prunable in model by the stock block, in place. Returns {'folded': n, 'padded_channels':
    zero channels added, 'kept': [names of blocks left prunable]}."""
    folded, padded, kept = 0, 0, []
    for name, module in list(model.named_modules()):
        if not isinstance(module, C3k2Prunable):
            continue
        try:
            stock, pad = fold_block(module)
        except NotFoldable:
            kept.append(name)
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, stock)
        folded, padded = folded + 1, padded + pad
    return {"folded": folded, "padded_channels": padded, "kept": kept}


def fold_block(block: C3k2Prunable) -> tuple[nn.Module, int]:
    """(the stock C2f/C3k2 computing what block computes, zero channels padded); block is left as it was."""
    a0, a1 = block.cv0.conv.out_channels, block.cv1.conv.out_channels
    c = max(a0, a1)
    halves = [copy.deepcopy(block.cv0), copy.deepcopy(block.cv1)]
    inner = copy.deepcopy(block.m)
    cv2 = copy.deepcopy(block.cv2)
    for half, real in zip(halves, (a0, a1)):
        _pad_outputs(half, c - real)
    pieces = [(a0, c - a0), (a1, c - a1)]  # (real, zero) channels of each input piece of cv2, in order
    pad = c - a1  # zero channels entering the next inner block
    for m in inner:
        if not pad:  # nothing to pad from here on: the remaining pieces insert nothing, their sizes do not matter
            break
        real = _out_channels(m)
        pad = _pad_block_input(m, pad)
        pieces.append((real, pad))
    start, total = 0, 0
    for real, zeros in pieces:
        _insert_inputs(cv2.conv, start + real, zeros)
        start += real + zeros
        total += zeros
    stock = (C2f if block.kind == "c2f" else C3k2).__new__(C2f if block.kind == "c2f" else C3k2)
    nn.Module.__init__(stock)
    stock.c = c
    stock.cv1 = _concatenated(*halves)
    stock.cv2 = cv2
    stock.m = inner
    for attr in ROUTING_ATTRS:
        if hasattr(block, attr):
            setattr(stock, attr, getattr(block, attr))
    stock.train(block.training)
    return stock, total


def _out_channels(m: nn.Module) -> int:
    if isinstance(m, Bottleneck):
        return m.cv2.conv.out_channels
    if isinstance(m, C3k):
        return m.cv3.conv.out_channels
    raise NotFoldable(type(m).__name__)


def _pad_block_input(m: nn.Module, n: int) -> int:
    """Give inner block m n more (zero) input channels at the end; returns the zero channels it now outputs."""
    if isinstance(m, Bottleneck):
        _insert_inputs(m.cv1.conv, m.cv1.conv.in_channels, n)
        if m.add:  # x + cv2(...): the sum keeps x's zero channels only if cv2 outputs zeros there too
            _pad_outputs(m.cv2, n)
            return n
        return 0
    if isinstance(m, C3k):
        for conv in (m.cv1.conv, m.cv2.conv):
            _insert_inputs(conv, conv.in_channels, n)
        return 0
    raise NotFoldable(type(m).__name__)


def _pad_outputs(conv: nn.Module, n: int) -> None:
    """Append n output channels that are exactly zero after BatchNorm and activation (an Ultralytics Conv): zero
    weights, γ = β = 0, running mean 0 and variance 1."""
    if n <= 0:
        return
    if conv.conv.groups != 1:
        raise NotFoldable("grouped conv")
    map_outputs(
        conv,
        lambda name, t: torch.cat([t, (t.new_ones if name == "bn.running_var" else t.new_zeros)((n, *t.shape[1:]))]),
    )


def _insert_inputs(conv: nn.Conv2d, at: int, n: int) -> None:
    """Insert n input channels with zero weights at position at."""
    if n <= 0:
        return
    if conv.groups != 1:
        raise NotFoldable("grouped conv")
    w = conv.weight.data
    zeros = w.new_zeros((w.shape[0], n, *w.shape[2:]))
    conv.weight = nn.Parameter(torch.cat([w[:, :at], zeros, w[:, at:]], 1))
    conv.in_channels += n


def _concatenated(a: nn.Module, b: nn.Module) -> nn.Module:
    """One Ultralytics Conv whose output is cat(a(x), b(x)): the inverse of replacement._half_of."""
    return map_outputs(copy.deepcopy(a), lambda name, t: torch.cat([t, tensor_of(b, name)]))
