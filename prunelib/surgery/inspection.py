"""What a model is made of, as the pruner will see it: layers, C3k2 blocks, ignored layers, dependency groups."""

from __future__ import annotations

import copy

from prunelib import tasks
from prunelib.core.settings import Pruning
from prunelib.surgery import measuring, pruner
from prunelib.surgery.replacement import find_blocks, replace_c3k2


def summary(model, imgsz: int) -> dict:
    """Counts shown by the inspect stage (deterministic for a given architecture)."""
    macs, n = measuring.macs_params(model, imgsz)
    return {
        "task": tasks.of(model).name,
        "head": type(model.model[-1]).__name__,
        "layers": len(model.model),
        "params": n,
        "gmacs": round(macs / 1e9, 3),
        "imgsz": imgsz,
        "classes": len(getattr(model, "names", {}) or {}),
    }


def blocks(model) -> list[dict]:
    return [{"module": name, "kind": kind} for name, kind in find_blocks(model)]


def ignored(model, settings: Pruning) -> list[dict]:
    """The layers the pruner keeps whole (their output channels), by top-level index."""
    mods = {id(m) for m in pruner.ignored_modules(model, settings)}
    carved = pruner.carved_out(model, settings)
    out = []
    for i, layer in enumerate(model.model):
        inner = sorted({type(m).__name__ for m in layer.modules() if id(m) in mods})
        if inner:
            inside = {id(m) for m in layer.modules()}
            cut = [
                f"{what}: {name}"
                for name, what in (
                    ("prune_head", "its hidden layers"),
                    ("prune_proto", "the mask prototype's hidden layers"),
                    ("prune_attention", "the attention's feed-forward"),
                )
                if carved.get(name, set()) & inside
            ]
            but = f" (but {' and '.join(cut)})" if cut else ""
            out.append({"layer": i, "type": type(layer).__name__, "ignored because of": ", ".join(inner) + but})
    return out


def dependency_groups(model, settings: Pruning, imgsz: int) -> int:
    """Dependency groups the pruner would prune, counted on a replaced copy (what the prune loop sees)."""
    m = copy.deepcopy(model)
    replace_c3k2(m)
    return pruner.prunable_groups(m, settings, measuring.example_inputs(imgsz))
