"""Loading and saving models as Ultralytics checkpoints, with clear errors for files that are not one.

The kit's own files (unpruned.pt, steps/) hold the prunable blocks and load with ``YOLO(path)`` where prunelib is
installed (the class is pickled by its import path, prunelib.surgery.replacement.C3k2Prunable). What it publishes
(final.pt, and so every export) is folded back into Ultralytics' own blocks (``publish``) and loads with ultralytics
alone. Writes go to a temporary file renamed into place.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn as nn
from ultralytics import __version__
from ultralytics.nn.tasks import guess_model_task, load_checkpoint

from prunelib import files, tasks
from prunelib.errors import UserError
from prunelib.surgery.folding import fold
from prunelib.surgery.replacement import find_blocks
from prunelib.tasks import SUPPORTED


def load_model(path, key: str = "model") -> nn.Module:
    """The model in an Ultralytics checkpoint of a supported task (prunelib.tasks), FP32, in train mode; UserError
    when it is not one, or holds blocks the pruner cannot trace in bounded memory."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{key}: file {str(path)!r} does not exist")
    try:
        model, _ = load_checkpoint(str(p))
    except (TypeError, RuntimeError, EOFError, ValueError, KeyError, AttributeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{key}: {str(path)!r} is not a loadable Ultralytics checkpoint ({first[:160]}); expected {SUPPORTED}"
        ) from None
    except ModuleNotFoundError as e:
        raise UserError(f"{key}: {str(path)!r} needs module {e.name!r}, which is not installed") from None
    if type(model).__name__ not in tasks.BY_MODEL:
        task = guess_model_task(getattr(model, "yaml", None) or model)
        raise UserError(f"{key}: {str(path)!r} is a {task!r} model ({type(model).__name__}); supported: {SUPPORTED}")
    if blocks := tasks.untraceable(model):
        raise UserError(
            f"{key}: {str(path)!r} holds {blocks}, which the pruner cannot trace in bounded memory; "
            f"supported: {SUPPORTED}"
        )
    if not find_blocks(model):  # original or already replaced blocks
        raise UserError(f"{key}: {str(path)!r} has no C3k2 or C2f blocks; supported: {SUPPORTED}")
    model.float().train()
    for q in model.parameters():
        q.requires_grad_(True)
    return model


def trained_imgsz(path) -> int | None:
    """The image size a checkpoint was trained at (its train_args' imgsz, the larger side of a pair), or None.
    Read from the file: a loaded model's args hold Ultralytics' defaults (640) where the checkpoint says nothing."""
    load_model(path)  # a checkpoint of a supported model, or one clear line
    size = train_args(path).get("imgsz")
    if isinstance(size, (list, tuple)) and size:
        size = max(size)
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def train_args(path) -> dict:
    """The Ultralytics arguments a checkpoint was trained with, as its file records them ({} when it records none)."""
    args = torch.load(path, map_location="cpu", weights_only=False).get("train_args") or {}
    return vars(args) if hasattr(args, "__dict__") else dict(args)


def save_model(model: nn.Module, path, train_args: dict | None = None) -> Path:
    """Save as an Ultralytics checkpoint; atomic. FP16 like Ultralytics' own when that loses nothing (weights that
    came from an Ultralytics checkpoint and were only pruned), FP32 otherwise: what is saved is what was measured."""
    m = copy.deepcopy(model).float().eval()
    if all(torch.equal(t, t.half().float()) for t in m.state_dict().values() if t.is_floating_point()):
        m = m.half()
    for q in m.parameters():
        q.requires_grad_(False)
    if hasattr(m, "criterion"):
        m.criterion = None
    args = train_args if train_args is not None else _plain_args(getattr(model, "args", {}))
    ckpt = {"model": m, "ema": None, "epoch": -1, "train_args": args, "version": __version__, "license": "AGPL-3.0"}
    return atomic_torch_save(ckpt, path)


def atomic_torch_save(obj, path) -> Path:
    with files.atomic(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def _plain_args(args) -> dict:
    d = vars(args) if hasattr(args, "__dict__") else dict(args or {})
    return {k: v for k, v in d.items() if isinstance(v, (str, int, float, bool, type(None), list, tuple))}


def publish(src, dst) -> dict:
    """Write checkpoint src to dst (atomically) with its prunable blocks folded back into Ultralytics' own C3k2/C2f
    (prunelib.surgery.folding), so dst loads wherever ultralytics is installed; everything else in the checkpoint
    is kept. Returns what folding did ({'folded', 'padded_channels', 'kept'})."""
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    done = {"folded": 0, "padded_channels": 0, "kept": []}
    for key in ("model", "ema"):
        if isinstance(ckpt.get(key), nn.Module):
            r = fold(ckpt[key])
            if key == "model":
                done = r
    atomic_torch_save(ckpt, dst)
    return done
