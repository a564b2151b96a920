"""Measuring a model: MACs and parameters (Torch-Pruning's counter), per-layer channels, latency."""

from __future__ import annotations

import copy
import statistics
import time

import torch
import torch.nn as nn
import torch_pruning as tp
from ultralytics.nn.modules import Concat, Detect

PASS_THROUGH = (Concat, nn.Upsample, Detect)  # hand on no channels of their own; Detect's subclasses (Segment, Pose,
# OBB, YOLO26's end-to-end heads) are heads too


def example_inputs(imgsz: int, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, imgsz, imgsz)


def macs_params(model: nn.Module, imgsz: int) -> tuple[int, int]:
    """(MACs, parameters) of one forward pass at imgsz, batch 1, counted on a copy in eval mode."""
    m = copy.deepcopy(model).eval()
    macs, params = tp.utils.count_ops_and_params(m, example_inputs(imgsz))
    return int(macs), int(params)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def layer_table(model: nn.Module, imgsz: int) -> list[dict]:
    """One row per top-level layer of an Ultralytics model: index, type, in/out channels, params, MACs."""
    m = copy.deepcopy(model).eval()
    _, _, layer_macs, _ = tp.utils.count_ops_and_params(m, example_inputs(imgsz), layer_wise=True)
    rows = []
    for i, layer in enumerate(m.model):
        convs = [c for c in layer.modules() if isinstance(c, nn.Conv2d)]
        rows.append(
            dict(
                layer=i,
                type=type(layer).__name__,
                c_in=convs[0].in_channels if convs else None,
                c_out=_out_channels(layer),
                params=n_params(layer),
                macs=int(layer_macs.get(layer) or 0),
            )
        )
    return rows


def head_rows(model: nn.Module) -> list[dict]:
    """One row per hidden convolution of the model's head (every Ultralytics Conv inside its last layer: what
    prune_head cuts; each branch's last plain convolution and the DFL emit the outputs and are not listed): 'layer'
    ('23 cv3.0.1'), 'type' ('head Conv'), 'c_out'."""
    index = len(model.model) - 1
    head = model.model[index]
    return [
        {"layer": f"{index} {name}", "type": f"head {type(m).__name__}", "c_out": m.conv.out_channels}
        for name, m in head.named_modules()
        if name and isinstance(getattr(m, "conv", None), nn.Conv2d) and isinstance(getattr(m, "bn", None), nn.Module)
    ]


BLOCK = 10  # timed runs of one model in a row (compare_latency)


def timed_blocks(fns: dict, x, runs: int = 30, warmup: int = 5) -> dict[str, list[list[float]]]:
    """Times (ms) of each callable over ``runs`` timed runs in one process, in blocks of BLOCK runs taken in turn
    (A A A .. B B B .. A A A ..), so drift hits all alike: {key: [block of times, ...]}. Each block starts with an
    untimed run: a runtime's idle worker threads spin for a while after its last run (onnxruntime, OpenMP), and
    timing one model while another's threads still spin on the same cores made multi-threaded runs look slower than
    single-threaded ones."""
    for fn in fns.values():
        for _ in range(warmup):
            fn(x)
    blocks = {k: [] for k in fns}
    while any(sum(map(len, v)) < runs for v in blocks.values()):
        for k, fn in fns.items():
            fn(x)  # untimed: the previous model's threads settle
            block = []
            for _ in range(min(BLOCK, runs - sum(map(len, blocks[k])))):
                t0 = time.perf_counter()
                fn(x)
                block.append((time.perf_counter() - t0) * 1000)
            blocks[k].append(block)
    return blocks


def compare_latency(fns: dict, x, runs: int = 30, warmup: int = 5) -> dict[str, float]:
    """Median latency (ms) of each callable over ``runs`` timed runs in one process (timed_blocks)."""
    return {k: statistics.median(t for b in v for t in b) for k, v in timed_blocks(fns, x, runs, warmup).items()}


def block_speedups(blocks: dict[str, list[list[float]]], reference: str, candidate: str) -> list[float]:
    """The reference's over the candidate's median time, block by block (timed_blocks): how the ratio spreads."""
    return [statistics.median(a) / statistics.median(b) for a, b in zip(blocks[reference], blocks[candidate])]


def _out_channels(layer: nn.Module):
    """Channels a layer hands on: its last conv's (cv2 for CSP blocks); None for Concat, Upsample and every head."""
    if isinstance(layer, PASS_THROUGH):
        return None
    convs = [c for c in layer.modules() if isinstance(c, nn.Conv2d)]
    cv2 = getattr(layer, "cv2", None)
    if isinstance(cv2, nn.Module) and hasattr(cv2, "conv"):
        return cv2.conv.out_channels
    return convs[-1].out_channels if convs else None
