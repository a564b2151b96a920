"""Checking a detection data YAML before Ultralytics sees it (which would try to download what is missing)."""

from __future__ import annotations

from pathlib import Path

import yaml
from ultralytics.data import build_dataloader, build_yolo_dataset
from ultralytics.data.utils import check_det_dataset

from prunelib.core.settings import Training
from prunelib.errors import UserError
from prunelib.training.arguments import ultralytics_cfg

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def check_data_yaml(path) -> dict:
    """Parse and check a data YAML; return {'nc', 'names', 'train', 'val'} with resolved folders."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"data: file {str(path)!r} does not exist")
    try:
        d = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"data: {str(path)!r} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise UserError(f"data: {str(path)!r} must be a mapping with train, val and names keys")
    missing = [k for k in ("train", "val", "names") if k not in d]
    if missing:
        raise UserError(f"data: {str(path)!r} lacks {', '.join(missing)}; expected keys train, val, names")
    root = Path(d.get("path") or p.parent)
    if not root.is_absolute():
        root = (p.parent / root).resolve()
    out = {"names": d["names"], "nc": len(d["names"])}
    for split in ("train", "val"):
        entries = d[split] if isinstance(d[split], list) else [d[split]]
        folders = [(root / e) if not Path(e).is_absolute() else Path(e) for e in entries]
        for f in folders:
            if not f.exists():
                raise UserError(f"data: {split} images {str(f)!r} (from {str(path)!r}) do not exist")
        images = [i for f in folders for i in (f.rglob("*") if f.is_dir() else [f])
                  if i.suffix.lower() in IMAGE_SUFFIXES]  # fmt: skip
        if not images:
            raise UserError(f"data: no images under {split} {', '.join(map(str, folders))} (from {str(path)!r})")
        labels = [label_path(i) for i in images]
        if not any(lab.is_file() for lab in labels):
            raise UserError(
                f"data: {split} images in {str(folders[0])!r} have no label files (expected e.g. {str(labels[0])!r})"
            )
        out[split] = folders
    return out


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last /images/ in the path becomes /labels/, the suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


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
