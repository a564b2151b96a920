"""A data YAML read the way Ultralytics reads it, and the kit's early checks of what Ultralytics would only find
out in the middle of a run (no images, no labels); the training images as the model sees them."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml
from ultralytics.data import build_dataloader, build_yolo_dataset
from ultralytics.data.utils import check_det_dataset

from prunelib.core.settings import Training
from prunelib.errors import UserError
from prunelib.training.arguments import ultralytics_cfg

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# what Ultralytics' dataset checker raises for a data YAML it cannot use (its message says why)
_REFUSED = (OSError, SyntaxError, TypeError, ValueError, KeyError, AttributeError, yaml.YAMLError)


def check_data_yaml(path) -> dict:
    """The data YAML resolved by Ultralytics' own checker (downloads off), so every layout ``yolo train`` takes is
    taken: image folders, ``*.txt`` lists of images, lists of either, ``path:`` absolute or relative (Ultralytics'
    rule: the working folder, then its datasets folder), Roboflow's ``../train/images``. Then each split must hold
    images, and some of them labels. Returns {'names', 'nc', 'train', 'val'} ('train' and 'val' list image files)
    and 'kpt_shape' when the YAML gives it."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"data: file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"data: {str(path)!r} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"data: {str(path)!r} must be a mapping with train, val and names keys")
    try:
        d = check_det_dataset(str(p), autodownload=False)
    except _REFUSED as e:
        reason = " ".join(str(e).replace("❌", "").split()).split(" Note dataset download directory")[0]
        offline = (
            "; its download: key is not followed (the kit runs offline): download the data set first"
            if raw.get("download") and isinstance(e, FileNotFoundError)
            else ""
        )
        raise UserError(f"data: {str(path)!r} is refused by Ultralytics' dataset check: {reason}{offline}") from None
    out = {"names": d["names"], "nc": d["nc"], **({"kpt_shape": d["kpt_shape"]} if d.get("kpt_shape") else {})}
    for split in ("train", "val"):
        entries = [Path(e) for e in (d[split] if isinstance(d[split], list) else [d[split]])]
        for e in entries:
            if not e.exists():
                raise UserError(f"data: {split} images {str(e)!r} (from {str(path)!r}) do not exist")
        images = [i for e in entries for i in _images(e)]
        if not images:
            raise UserError(f"data: no images under {split} {', '.join(map(str, entries))} (from {str(path)!r})")
        labels = [label_path(i) for i in images]
        if not any(lab.is_file() for lab in labels):
            raise UserError(
                f"data: {split} images in {str(entries[0])!r} have no label files (expected e.g. {str(labels[0])!r})"
            )
        out[split] = images
    return out


def _images(entry: Path) -> list[Path]:
    """The image files an entry of a split names: a folder (searched through), a .txt list of image paths (relative
    ones from the list's folder, as Ultralytics reads them), or one image."""
    if entry.is_dir():
        return sorted(i for i in entry.rglob("*") if i.suffix.lower() in IMAGE_SUFFIXES)
    if entry.suffix.lower() == ".txt":
        lines = [line.strip() for line in entry.read_text().splitlines() if line.strip()]
        paths = [
            Path(line.replace("./", str(entry.parent) + os.sep, 1) if line.startswith("./") else line) for line in lines
        ]
        return [q if q.is_absolute() else entry.parent / q for q in paths if q.suffix.lower() in IMAGE_SUFFIXES]
    return [entry] if entry.suffix.lower() in IMAGE_SUFFIXES else []


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last /images/ in the path becomes /labels/, the suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def preview_batch(settings: Training, data, images: int = 6, task: str = "detect") -> dict:
    """The first training images (in file order) with their task's labels, one batch as Ultralytics serves it."""
    return next(training_batches(dataclasses.replace(settings, batch=images), data, images, task))


def training_batches(settings: Training, data, images: int, task: str = "detect"):
    """Batches of data's training images as the model sees them in validation (letterboxed, no augmentation, in a
    fixed order), floats in [0, 1], until ``images`` images were served, with the labels of task (masks, keypoints,
    rotated boxes). For statistics and gradients, not training."""
    cfg = ultralytics_cfg(settings, "loader", data, task=task)
    info = check_det_dataset(str(data))
    dataset = build_yolo_dataset(cfg, info["train"], settings.batch, info, mode="val", stride=32)
    served = 0
    for batch in build_dataloader(dataset, settings.batch, 0, shuffle=False):
        if served >= images:
            return
        batch["img"] = batch["img"].float() / 255
        served += len(batch["img"])
        yield batch
