"""Validating a model in memory: mAP50-95 and mAP50 with Ultralytics' DetectionValidator (on a copy of the model)."""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from prunelib.offline import use_all_cores
from prunelib.training.arguments import ultralytics_args


def evaluate(model: nn.Module | str | Path, params: dict, data: str, save_dir) -> dict:
    """{'map50_95', 'map50'} of model on data's val split at params['imgsz']; plots off, all cores. model: a module,
    or an exported file (.onnx, _openvino_model/, ...) that Ultralytics' AutoBackend runs."""
    from ultralytics.models.yolo.detect import DetectionValidator

    validator = DetectionValidator(save_dir=Path(save_dir), args=ultralytics_args(params, "val", data))
    validator.add_callback("on_val_start", use_all_cores(params["threads"]))
    validator(model=str(model) if isinstance(model, (str, Path)) else model)
    box = validator.metrics.box
    return {"map50_95": float(box.map), "map50": float(box.map50)}
