"""Validating a model: mAP50-95 and mAP50 of its task's budget metric (prunelib.tasks) with the task's Ultralytics
validator (on a copy of the model)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch.nn as nn

from prunelib.core.settings import Training
from prunelib import tasks
from prunelib.offline import use_all_cores
from prunelib.training.arguments import ultralytics_args
from prunelib.training.bootstrap import ImageHits


def evaluate(
    model: nn.Module | str | Path,
    settings: Training,
    data: str,
    save_dir,
    task: str = "",
    per_class: bool = False,
    per_image: bool = False,
) -> dict:
    """{'map50_95', 'map50'} of model's task metric (box, mask, pose or OBB) on data's val split at settings.imgsz;
    plots off, all cores. model: a module, or an exported file (.onnx, _openvino_model/, ...) that Ultralytics'
    AutoBackend runs, with its task's name (a module's task is its class). per_class adds 'classes': {class name:
    {'instances', 'map50_95'}} for every class of the data set (Ultralytics' per-class AP; a class without
    instances in the split has none: None). per_image adds 'images': what the validator recorded for each image,
    in its order (bootstrap.ImageHits: how sure the score is, bootstrap.retention)."""
    if not task and isinstance(model, (str, Path)):
        raise ValueError(f"evaluate: name the task of exported file {str(model)!r} (one of {', '.join(tasks.TASKS)})")
    kind = tasks.TASKS[task] if task else tasks.of(model)
    args = ultralytics_args(settings, "val", data, task=kind.name)
    validator = kind.validator_class()(save_dir=Path(save_dir), args=args)
    validator.add_callback("on_val_start", use_all_cores(settings.threads))
    images: list[ImageHits] = []
    if per_image:
        validator.add_callback("on_val_batch_end", functools.partial(_record_images, images, kind.hits))
    validator(model=str(model) if isinstance(model, (str, Path)) else model)
    metric = getattr(validator.metrics, kind.metrics)
    out = {"map50_95": float(metric.map), "map50": float(metric.map50)}
    if per_class:
        ap = {int(c): float(metric.ap[i]) for i, c in enumerate(metric.ap_class_index)}
        counts = validator.metrics.nt_per_class
        out["classes"] = {
            name: {
                "instances": int(counts[c]) if counts is not None and c < len(counts) else 0,
                "map50_95": ap.get(int(c)),
            }
            for c, name in validator.names.items()
        }
    if per_image:
        out["images"] = images
    return out


def _record_images(images: list[ImageHits], hits: str, validator) -> None:
    """An on_val_batch_end callback: the images the validator's metrics took in since the last batch, appended to
    images (its stats hold one entry per image until the metrics are computed and cleared)."""
    stats = validator.metrics.stats
    for i in range(len(images), len(stats[hits])):
        images.append(ImageHits(stats[hits][i], stats["conf"][i], stats["pred_cls"][i], stats["target_cls"][i]))
