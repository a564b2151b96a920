"""The Ultralytics tasks the kit prunes, in one table, a record per task: its model class, trainer (which
prunelib.training.finetuning makes keep the pruned model), validator, the metric its mAP budget is measured in, and
the labels the synthetic data set draws for it. A model's task is its class, never guessed from a file name.

Every supported head (Detect and its Segment, Pose and OBB kinds, YOLO26's end-to-end ones included) is a subclass of
Ultralytics' ``Detect``, so ``ignore_layers: [Detect, ...]`` keeps each whole but for the hidden layers of a
segmentation head's mask prototype (``Proto``), which ``prune_proto`` prunes (bench/results/tasks.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from prunelib.errors import UserError


@dataclass(frozen=True)
class Task:
    name: str  # Ultralytics' task name
    model: str  # its model class in ultralytics.nn.tasks
    package: str  # ultralytics.models.yolo.<package> holds its trainer and validator
    trainer: str
    validator: str
    metrics: str  # the validator's metrics attribute whose map/map50 is the budget metric
    label: str  # how tables and plots name that metric
    synthetic: str  # what the synthetic set labels: boxes, polygons, keypoints (with boxes) or corners
    hits: str  # the validator's per-detection column of that metric's hits at IoU 0.5:0.95 (its stats key)

    def trainer_class(self):
        return getattr(importlib.import_module(f"ultralytics.models.yolo.{self.package}"), self.trainer)

    def validator_class(self):
        return getattr(importlib.import_module(f"ultralytics.models.yolo.{self.package}"), self.validator)


# fmt: off
TASKS = {
    "detect": Task("detect", "DetectionModel", "detect", "DetectionTrainer", "DetectionValidator", "box", "mAP50-95",
                   "boxes", "tp"),
    "segment": Task("segment", "SegmentationModel", "segment", "SegmentationTrainer", "SegmentationValidator", "seg",
                    "mask mAP50-95", "polygons", "tp_m"),
    "pose": Task("pose", "PoseModel", "pose", "PoseTrainer", "PoseValidator", "pose", "pose mAP50-95", "keypoints",
                 "tp_p"),
    "obb": Task("obb", "OBBModel", "obb", "OBBTrainer", "OBBValidator", "box", "OBB mAP50-95", "corners", "tp"),
}
# fmt: on
SUPPORTED = (
    "YOLO11, YOLO26 or YOLOv8 checkpoints of the detect, segment, pose or obb task (DetectionModel, "
    "SegmentationModel, PoseModel or OBBModel holding C3k2 or C2f blocks)"
)
# blocks whose dependency graph Torch-Pruning cannot trace in bounded memory: refused before tracing
UNTRACEABLE = {"A2C2f": "YOLO12's area-attention blocks (A2C2f)"}


BY_MODEL = {t.model: t for t in TASKS.values()}  # model class name -> its task


def of(model) -> Task:
    """The task of a model by its class; UserError naming what is supported otherwise."""
    if type(model).__name__ not in BY_MODEL:
        raise UserError(f"a {type(model).__name__} is not supported; supported: {SUPPORTED}")
    return BY_MODEL[type(model).__name__]


def classes(model) -> int:
    """How many classes a model predicts: its head's count (a model built from a YAML has no ``nc`` of its own until a
    trainer sets it)."""
    return model.model[-1].nc


def untraceable(model) -> str | None:
    """What in model the pruner cannot trace in bounded memory (None when nothing)."""
    for m in model.modules():
        if type(m).__name__ in UNTRACEABLE:
            return UNTRACEABLE[type(m).__name__]
    return None


def of_cfg(cfg: str) -> Task:
    """The task of a model YAML (e.g. 'yolo11n-seg.yaml'), by the head it declares."""
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load  # slow: torch; the table itself is light

    name = guess_model_task(yaml_model_load(cfg))
    if name not in TASKS:
        raise UserError(f"baseline_cfg: {cfg!r} is a {name!r} model; supported tasks: {', '.join(TASKS)}")
    return TASKS[name]


def named(title: str, unpruned: dict | None) -> str:
    """A table or plot title in the run's metric: 'mAP50-95 pruned' -> 'mask mAP50-95 pruned' for a segmentation run
    (unpruned: the run's unpruned.json, which names its metric; detection's titles stay as they are)."""
    label = (unpruned or {}).get("metric", TASKS["detect"].label)
    return title.replace("mAP", label[: label.index("mAP")] + "mAP")
