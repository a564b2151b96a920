"""Which of the original model's channels a pruned model still has, where its head reads them.

The head's inputs (the neck's outputs, P3-P5) are the features a pruned model can be taught to keep
(prunelib.training.matching's feature term): its channel c is the original's channel ``kept(model)[i][c]``. Each
convolution block that makes a head input carries the list of original channel indices it still computes
(``KEPT``, a plain attribute, saved with the model); every cut removes the positions Torch-Pruning's group removes
from it, so the lists compose over any number of steps.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch_pruning as tp
from ultralytics.nn.modules import Conv

KEPT = "kept_channels"  # attribute of a head input's block: the original channel of each output channel, in order
_OUT_CHANNELS = (tp.prune_conv_out_channels,)  # Torch-Pruning's handler of a conv's output channels


def head_input_blocks(model: nn.Module) -> list[Conv | None]:
    """The convolution block whose output each of the head's inputs is (a layer that is a Conv block, or whose last
    step is one named cv2: C3k2, C2f and the kit's C3k2Prunable); None where another kind of layer feeds the head."""
    layers = getattr(model, "model", None)
    if layers is None:
        return []
    head = layers[-1]
    sources = head.f if isinstance(head.f, list) else [head.f]
    out = []
    for i in sources:
        layer = layers[i]
        block = layer if isinstance(layer, Conv) else getattr(layer, "cv2", None)
        out.append(block if isinstance(block, Conv) else None)
    return out


def mark(model: nn.Module) -> dict[int, Conv]:
    """Give each head input's block the list of its channels, when it has none yet (the unpruned model: all); return
    the blocks by their conv's id, what record looks a cut's groups up in."""
    blocks = {}
    for block in head_input_blocks(model):
        if block is not None:
            if not hasattr(block, KEPT):
                setattr(block, KEPT, list(range(block.conv.out_channels)))
            blocks[id(block.conv)] = block
    return blocks


def record(blocks: dict[int, Conv], group) -> None:
    """Remove from each head input's list (blocks: mark's) the output channels a Torch-Pruning group is about to
    remove (call it before group.prune(): idxs are positions in the layer as it stands)."""
    for dep, idxs in group:
        block = blocks.get(id(dep.target.module))
        if block is None or dep.handler not in _OUT_CHANNELS:
            continue
        gone = set(int(i) for i in idxs)
        setattr(block, KEPT, [c for pos, c in enumerate(getattr(block, KEPT)) if pos not in gone])


def kept(model: nn.Module) -> list[torch.Tensor | None]:
    """For each head input, the original channel index of each of its channels (None where unknown: a block the
    kit never marked, or another kind of layer)."""
    out = []
    for block in head_input_blocks(model):
        channels = getattr(block, KEPT, None) if block is not None else None
        valid = channels is not None and len(channels) == block.conv.out_channels
        out.append(torch.tensor(channels, dtype=torch.long) if valid else None)
    return out
