"""What the models see: a handful of the user's validation images with the ground truth and each model's
predictions side by side, drawn by Ultralytics (``Results.plot()``, its annotator), the images where the pruned model
lost what the original found first.

A ground-truth object counts as found by a model when one of its predictions of the same class covers it (IoU of the
boxes >= MATCH_IOU; a mask's, keypoints' or rotated box's object by its box); an image's loss is the objects the
first model found and a later one did not.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from ultralytics import YOLO

from prunelib import files
from prunelib.training.agreement import MATCH_IOU, detections, iou
from prunelib.training.datasets import check_data_yaml, label_path

CANDIDATES = 48  # validation images looked at (seeded sample) to find the ones the pruned model does worst on
CELL = 320  # px: each panel's longer side
TITLE = 18  # px: the line above each panel


def objects(image: Path, task: str, size: tuple[int, int], kpt_shape=None) -> list[dict]:
    """An image's labels in pixels, each {'cls', 'box' (xyxy), 'points' (a segment's polygon or a rotated box's four
    corners, (n, 2); else None), 'keypoints' (a pose object's, (k, 2 or 3); else None)}. A pose label's box is its
    first four values; its keypoints have kpt_shape[1] values each (3 when not given and they divide by 3)."""
    path, (w, h) = label_path(image), size
    out = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        v = [float(x) for x in line.split()]
        if len(v) < 5:
            continue
        points = keypoints = None
        if task == "pose" or len(v) == 5:
            cx, cy, bw, bh = v[1:5]
            box = [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]
            rest = np.array(v[5:])
            dims = kpt_shape[1] if kpt_shape else (3 if len(rest) % 3 == 0 else 2)
            if task == "pose" and len(rest) and len(rest) % dims == 0:
                keypoints = rest.reshape(-1, dims) * ([w, h, 1][:dims])
        else:  # a polygon (segment) or the four corners of a rotated box (obb)
            xs, ys = v[1::2], v[2::2]
            box = [min(xs), min(ys), max(xs), max(ys)]
            points = np.stack([np.array(xs) * w, np.array(ys) * h], 1)
        out.append(
            {
                "cls": int(v[0]),
                "box": np.array([box[0] * w, box[1] * h, box[2] * w, box[3] * h]),
                "points": points,
                "keypoints": keypoints,
            }
        )
    return out


def truth(image: Path, task: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(classes, xyxy boxes in pixels) of an image's labels (see objects): what predictions are matched against."""
    labels = objects(image, task, size)
    return (
        np.array([o["cls"] for o in labels], dtype=int),
        np.array([o["box"] for o in labels], dtype=float).reshape(-1, 4),
    )


def boxes_of(result) -> tuple[np.ndarray, np.ndarray]:
    """(classes, xyxy boxes) of an Ultralytics result: its boxes, or its rotated boxes' bounds."""
    return detections(result)[:2]


def found(gt: tuple[np.ndarray, np.ndarray], pred: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """For each ground-truth object: does a prediction of its class cover it (IoU >= MATCH_IOU)?"""
    (gc, gb), (pc, pb) = gt, pred
    if not len(gb):
        return np.zeros(0, dtype=bool)
    if not len(pb):
        return np.zeros(len(gb), dtype=bool)
    return ((iou(gb, pb) >= MATCH_IOU) & (gc[:, None] == pc[None, :])).any(1)


def compare(models: dict, data, imgsz: int, task: str, images: int = 6, seed: int = 0, conf: float = 0.25) -> dict:
    """Predict a seeded sample of data's validation images with each model ({label: checkpoint or exported file},
    the reference first) at the same confidence; choose ``images`` of them, those where a later model lost the most
    objects the reference found first, then the rest in sample order. {'images': [{'file', 'truth', 'found' {label:
    objects found}, 'lost' {label: objects the reference found and it did not}, 'plots' {label: BGR array}}],
    'labels'}."""
    info = check_data_yaml(data)
    pool = list(info["val"])
    random.Random(seed).shuffle(pool)
    pool = pool[:CANDIDATES]
    yolos = {label: YOLO(str(m), task=task) for label, m in models.items()}
    reference = next(iter(models))
    rows = []
    for image in pool:
        results = {
            label: y.predict(str(image), imgsz=imgsz, conf=conf, verbose=False, device="cpu")[0]
            for label, y in yolos.items()
        }
        h, w = results[reference].orig_shape
        gt = truth(image, task, (w, h))
        hit = {label: found(gt, boxes_of(r)) for label, r in results.items()}
        lost = {label: int((hit[reference] & ~h_).sum()) for label, h_ in hit.items() if label != reference}
        rows.append(
            {
                "file": image,
                "truth": len(gt[0]),
                "found": {k: int(v.sum()) for k, v in hit.items()},
                "lost": lost,
                "results": results,
            }
        )
    rows.sort(key=lambda r: -max(r["lost"].values(), default=0))  # stable: sample order among equals
    chosen = rows[:images]
    for r in chosen:
        r["plots"] = {label: res.plot(conf=True, line_width=1) for label, res in r.pop("results").items()}
    return {"images": chosen, "labels": list(models), "names": info["names"], "kpt_shape": info.get("kpt_shape")}


def truth_image(image: Path, task: str, names: dict, kpt_shape=None) -> np.ndarray:
    """The image (RGB) with its ground truth drawn by Ultralytics' annotator as the task's predictions are: each
    object's class and box, a segment's mask, a rotated box by its corners, a pose object's keypoints."""
    import cv2  # only when a panel is drawn
    from ultralytics.utils.plotting import Annotator, colors

    im = np.array(Image.open(image).convert("RGB"))
    annotator = Annotator(np.ascontiguousarray(im[..., ::-1]), line_width=1)  # BGR, as Results.plot() draws
    labels = objects(image, task, (im.shape[1], im.shape[0]), kpt_shape)
    if task == "segment" and labels:
        masks = np.zeros((len(labels), *im.shape[:2]), dtype=np.uint8)
        for mask, o in zip(masks, labels):
            cv2.fillPoly(mask, [np.round(o["points"]).astype(np.int32)], 1)
        annotator.masks(masks, [colors(o["cls"], True) for o in labels])
    for o in labels:
        name, color = str(names.get(o["cls"], o["cls"])), colors(o["cls"], True)
        corners = task == "obb" and o["points"] is not None and len(o["points"]) == 4
        annotator.box_label(o["points"].tolist() if corners else o["box"].tolist(), name, color=color)
        if o["keypoints"] is not None:
            annotator.kpts(o["keypoints"], im.shape[:2], radius=2)
    return annotator.result()[..., ::-1]


def panel(compared: dict, path, task: str) -> Path:
    """detections.png: a row per image (the ground truth, then each model's predictions), each cell titled with what
    it found and lost."""
    labels = ["ground truth"] + compared["labels"]
    names = compared["names"] if isinstance(compared["names"], dict) else dict(enumerate(compared["names"]))
    truth_plots = [truth_image(Path(r["file"]), task, names, compared.get("kpt_shape")) for r in compared["images"]]
    font, title = ImageFont.load_default(), TITLE
    rows = compared["images"]
    sheet = Image.new("RGB", (CELL * len(labels), (CELL + title) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (row, gt) in enumerate(zip(rows, truth_plots)):
        cells = [gt] + [row["plots"][label][..., ::-1] for label in compared["labels"]]  # BGR -> RGB
        for j, (label, arr) in enumerate(zip(labels, cells)):
            im = Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")
            scale = CELL / max(im.size)  # small images are drawn larger, large ones smaller
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
            x, y = j * CELL, i * (CELL + title)
            sheet.paste(im, (x, y + title))
            if j == 0:
                text = f"{Path(row['file']).name}: {row['truth']} objects"
            else:
                name = compared["labels"][j - 1]
                text = f"{name}: found {row['found'][name]}" + (
                    f", lost {row['lost'][name]}" if name in row["lost"] else ""
                )
            draw.text((x + 4, y + 3), text, fill="black", font=font)
    with files.atomic(path) as tmp:  # 256 colours: a quarter of the size, the drawings unchanged
        sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(tmp, format="PNG", optimize=True)
    return Path(path)
