"""A folder of unlabelled images as the run's data: the original model labels them itself.

A user often has the model and images from where it runs, but no labels. The kit holds back a seeded share of the
images (VAL_SHARE, at least one) for the loop's decisions and labels every image with the original's own detections
at CONF (Ultralytics' default confidence for predictions), written in the task's label format by Ultralytics'
``Results.save_txt`` (boxes, polygons, keypoints or rotated boxes); a data YAML with the model's class names then
serves every stage as a labelled set would. Every mAP of such a run measures agreement with the original, not
accuracy; fine-tuning matches the original's outputs (prunelib.training.matching) rather than these thresholded
copies of them (the run's parameters say so: prunelib.runs.opening.folder_data).

The labelled set is made once per folder content, model and settings, in the run's cache.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import yaml
from ultralytics import YOLO

from prunelib import files
from prunelib.errors import UserError
from prunelib.training.agreement import CONF
from prunelib.training.datasets import IMAGE_SUFFIXES

VAL_SHARE = 0.2  # of the folder's images, held back for validation
MIN_IMAGES = 2  # one to train on, one to validate on


def images_in(folder) -> list[Path]:
    """The folder's images (searched through, in name order); refused in one line when it holds fewer than
    MIN_IMAGES."""
    folder = Path(folder)
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if len(found) < MIN_IMAGES:
        kinds = ", ".join(sorted(IMAGE_SUFFIXES))
        raise UserError(
            f"data: folder {str(folder)!r} holds {len(found)} image{'s' if len(found) != 1 else ''} ({kinds}); "
            f"a folder of unlabelled images needs at least {MIN_IMAGES}, or give a data YAML"
        )
    return found


def split(images: list[Path], seed: int) -> dict[str, list[Path]]:
    """{'train', 'val'}: a seeded VAL_SHARE of the images (at least one) held back for validation."""
    order = list(images)
    random.Random(seed).shuffle(order)
    n_val = max(1, round(VAL_SHARE * len(order)))
    return {"train": sorted(order[n_val:]), "val": sorted(order[:n_val])}


def key(images: list[Path], model: Path, imgsz: int, seed: int) -> str:
    """What the labelled set depends on: each image's name, size and time, the model's bytes, the size it predicts
    at, the seed of the split, CONF and VAL_SHARE."""
    parts = [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in images]
    parts += [hashlib.sha256(Path(model).read_bytes()).hexdigest(), str(imgsz), str(seed), str(CONF), str(VAL_SHARE)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def data_yaml(folder, model: Path, imgsz: int, seed: int, cache: Path, task: str) -> Path:
    """The folder's images, split and labelled by model (a checkpoint of task) at imgsz, as a data YAML in cache
    (made once; written to a temporary folder and renamed, so a folder that exists is complete)."""

    images = images_in(folder)
    out = Path(cache) / f"labelled-{key(images, model, imgsz, seed)}"
    with files.exclusive(out.with_name(f".{out.name}.lock")):  # parallel runs label it once
        if not (out / "data.yaml").is_file():
            with files.atomic(out) as tmp:
                _label(images, model, imgsz, seed, task, tmp, out)
    return out / "data.yaml"


def _label(images: list[Path], model: Path, imgsz: int, seed: int, task: str, tmp: Path, out: Path) -> None:
    """Write the split images (linked), their labels and data.yaml (naming out, where tmp will be) under tmp."""
    detector = YOLO(str(model), task=task)
    for name, members in split(images, seed).items():
        (tmp / "labels" / name).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(members):
            # a numbered name: two images of one name in different subfolders stay apart
            linked = tmp / "images" / name / f"{i:06d}_{image.name}"
            linked.parent.mkdir(parents=True, exist_ok=True)
            _link(image, linked)
            result = detector.predict(str(image), imgsz=imgsz, conf=CONF, verbose=False, device="cpu")[0]
            result.save_txt(tmp / "labels" / name / f"{linked.stem}.txt")  # nothing written for no detection
    data = {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "names": {int(k): str(v) for k, v in detector.names.items()},
        **({"kpt_shape": list(detector.model.model[-1].kpt_shape)} if task == "pose" else {}),
        "labelled_by": str(model),
        "conf": CONF,
    }
    (tmp / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _link(src: Path, dst: Path) -> None:
    """dst names src's image: a symbolic link, a copy where links are not allowed."""
    try:
        dst.symlink_to(src.resolve())
    except OSError:
        shutil.copy2(src, dst)
