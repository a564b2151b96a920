"""Agreement with the original: how much of what the unpruned model detects a pruned copy still detects, on images,
with no labels needed. mAP against labels punishes a box a few pixels off on small objects as much as a missed one;
matched boxes ask only whether the same object is found with the same class.

Both models predict each image at the same confidence (CONF, Ultralytics' default for predictions); a prediction
matches one of the original's of the same class that it overlaps by IoU >= MATCH_IOU, one to one, the most
confident predictions first, each taking the unmatched box it overlaps most. Precision: the share of the copy's boxes
that match one of the original's; recall: the share of the original's boxes matched; F1 their harmonic mean. Rotated
boxes are matched by their bounds, a mask or a pose object by its box.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from ultralytics import YOLO

MATCH_IOU = 0.5
CONF = 0.25


@dataclasses.dataclass(frozen=True)
class Agreement:
    """Matched boxes of a model against the original's detections on the same images."""

    precision: float  # share of the model's boxes that match one of the original's
    recall: float  # share of the original's boxes the model matches
    f1: float
    original_boxes: int
    model_boxes: int
    images: int

    @classmethod
    def of(cls, matched: int, original_boxes: int, model_boxes: int, images: int) -> Agreement:
        """From counts; no box on either side agrees fully (1.0), boxes on one side only not at all (0.0)."""
        precision = matched / model_boxes if model_boxes else float(not original_boxes)
        recall = matched / original_boxes if original_boxes else float(not model_boxes)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(precision, recall, f1, original_boxes, model_boxes, images)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box of a (n, 4) with every box of b (m, 4): (n, m)."""
    a, b = np.asarray(a, dtype=float).reshape(-1, 4), np.asarray(b, dtype=float).reshape(-1, 4)
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def matches(reference: tuple, candidate: tuple) -> int:
    """How many of candidate's boxes (classes, xyxy, confidences) match one of reference's (classes, xyxy), one to
    one: the most confident candidates first, each taking the unmatched reference box of its class it overlaps most
    (IoU >= MATCH_IOU)."""
    (rc, rb), (cc, cb, conf) = reference, candidate
    if not len(rc) or not len(cc):
        return 0
    overlap = np.where(np.asarray(cc)[:, None] == np.asarray(rc)[None, :], iou(cb, rb), 0.0)
    taken = np.zeros(len(rc), dtype=bool)
    count = 0
    for i in np.argsort(-np.asarray(conf), kind="stable"):
        row = np.where(taken, 0.0, overlap[i])
        j = int(row.argmax())
        if row[j] >= MATCH_IOU:
            taken[j], count = True, count + 1
    return count


def detections(result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, xyxy boxes, confidences) of an Ultralytics result: its boxes, or its rotated boxes' bounds."""
    b = result.obb if getattr(result, "obb", None) is not None else result.boxes
    if b is None or len(b) == 0:
        return np.zeros(0, dtype=int), np.zeros((0, 4)), np.zeros(0)
    return (
        b.cls.cpu().numpy().astype(int),
        b.xyxy.cpu().numpy().reshape(-1, 4),
        b.conf.cpu().numpy().reshape(-1),
    )


def agreement(model, original, images: list[Path], imgsz: int, task: str, conf: float = CONF) -> Agreement:
    """model's matched boxes against original's detections on images (checkpoints or exported files Ultralytics
    runs, of task), both predicting at imgsz and conf."""
    own, reference = YOLO(str(model), task=task), YOLO(str(original), task=task)
    matched = original_boxes = model_boxes = 0
    for image in images:
        theirs = detections(reference.predict(str(image), imgsz=imgsz, conf=conf, verbose=False, device="cpu")[0])
        ours = detections(own.predict(str(image), imgsz=imgsz, conf=conf, verbose=False, device="cpu")[0])
        matched += matches(theirs[:2], ours)
        original_boxes, model_boxes = original_boxes + len(theirs[0]), model_boxes + len(ours[0])
    return Agreement.of(matched, original_boxes, model_boxes, len(images))
