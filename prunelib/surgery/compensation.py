"""Compensation at the cut: what a removed channel carried, folded into the layers that read it.

A weak channel is seldom silent: after its BatchNorm and activation it outputs a near-constant (the activation of
its BatchNorm bias), and every convolution that reads it counted on that constant. Removing the channel drops it
from their sums. Bias compensation (as in FLAP, An et al., AAAI 2024, for LLMs; the constant term of a layer-wise
reconstruction, He et al., ICCV 2017) puts it back: a consumer whose input channel c is removed loses
``sum over the kernel of W[:, c] * mean(c)`` from each output, which is added back to its bias, or taken off its
BatchNorm's running mean where a BatchNorm follows (the same shift, seen in eval mode).

Each consumer's own input means are measured (``input_means``): a Concat feeds several convs, SPPF's last conv sees a
channel four times (itself and three poolings of it), and each of those inputs has a mean of its own. Depthwise convs
lose an input channel together with its output channel: the fold happens at their consumers, which read the removed
output. The fold is exact away from the border of the image, where zero padding meets the constant.

``Folding`` is used with Torch-Pruning's interactive step (pruner.prune(..., fold=)): each group's removed input
channels are folded into their consumers before the group is pruned, and the means it holds are pruned alike.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn
import torch_pruning as tp


def input_means(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[nn.Conv2d, torch.Tensor]:
    """{conv: the mean of each of its input channels} over batches of images (eval mode, forward only), for every
    Conv2d of model that is not depthwise."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and not _depthwise(m)]
    sums: dict[nn.Conv2d, torch.Tensor] = {}
    counts: dict[nn.Conv2d, int] = {}

    def hook(conv, args):
        x = args[0].detach().double()
        sums[conv] = sums.get(conv, 0) + x.sum(dim=(0, 2, 3))
        counts[conv] = counts.get(conv, 0) + x.shape[0] * x.shape[2] * x.shape[3]

    handles = [c.register_forward_pre_hook(hook) for c in convs]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {c: (sums[c] / counts[c]).float() for c in convs if c in sums}


class Folding:
    """Folds each removed input channel's mean into its consumer (fold(group) before group.prune()), and keeps the
    means in step with the pruned convs; ``removed`` says which inputs of each conv were folded."""

    def __init__(self, model: nn.Module, means: dict[nn.Conv2d, torch.Tensor]):
        self.means = dict(means)
        self.norm_after = _norms_after(model)
        self.alive = {c: list(range(len(m))) for c, m in self.means.items()}  # the inputs' indices before the cut
        self.removed: dict[nn.Conv2d, list[int]] = {}  # conv -> its input channels folded, indexed as before the cut

    def __call__(self, group) -> None:
        for dep, idxs in group:
            conv = dep.target.module
            if not isinstance(conv, nn.Conv2d) or dep.handler not in IN_CHANNELS or conv not in self.means:
                continue
            self.fold(conv, sorted({getattr(i, "idx", i) for i in idxs}))  # Torch-Pruning's (idx, root_idx) pairs

    def fold(self, conv: nn.Conv2d, removed: list[int]) -> None:
        """Fold conv's input channels ``removed`` (indices into its current inputs) at their means, then drop those
        means (the pruner removes the channels next)."""
        means = self.means[conv]
        lost = shift(conv, removed, means)
        with torch.no_grad():
            norm = self.norm_after.get(conv)
            if norm is not None:
                norm.running_mean -= lost.to(norm.running_mean)
            elif conv.bias is not None:
                conv.bias += lost.to(conv.bias)
            else:
                conv.bias = nn.Parameter(lost.to(conv.weight))
        keep = torch.ones(len(means), dtype=torch.bool)
        keep[removed] = False
        self.means[conv] = means[keep]
        alive = self.alive[conv]
        self.removed.setdefault(conv, []).extend(alive[i] for i in removed)
        self.alive[conv] = [c for i, c in enumerate(alive) if keep[i]]


def shift(conv: nn.Conv2d, removed: list[int], means: torch.Tensor) -> torch.Tensor:
    """What conv's outputs lose when its input channels ``removed``, held at ``means``, are taken away (away from
    the border): sum over the kernel and the removed channels of W[o, c] * mean(c), one value per output."""
    w = conv.weight.detach()[:, removed].sum(dim=(2, 3))  # (out, removed)
    return w @ means[removed].to(w)


def _depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups > 1


def _norms_after(model: nn.Module) -> dict[nn.Conv2d, nn.modules.batchnorm._BatchNorm]:
    """{conv: the BatchNorm that normalises its output}: Ultralytics' Conv blocks (and the kit's) hold both as
    ``conv`` and ``bn``."""
    return {
        m.conv: m.bn
        for m in model.modules()
        if isinstance(getattr(m, "conv", None), nn.Conv2d)
        and isinstance(getattr(m, "bn", None), nn.modules.batchnorm._BatchNorm)
    }


IN_CHANNELS = (tp.prune_conv_in_channels,)  # Torch-Pruning's handler of a conv's input channels
