"""The user-style case: a data set the kit did not make its model for, and a YOLO11n trained on it with plain
Ultralytics (`YOLO("yolo11n.yaml").train(...)`, its own optimizer choice), the way a user arrives with their model.

Other generator settings than the embedded default (3 distinct classes, 256 px, another seed) and a held-out
``test`` split that neither training nor fine-tuning sees: retention is measured there (`holdout_yaml`).
Made once under runs/bench-user-case/ (about 15 minutes on 2 cores), then reused.

    .venv/bin/python bench/user_case.py      # make it (or print where it is)
"""

from __future__ import annotations

from pathlib import Path

import yaml

import prunelib  # noqa: F401  (offline set-up first)
from prunelib.paths import PROJECT_ROOT
from prunelib.training import synthetic

ROOT = PROJECT_ROOT / "runs" / "bench-user-case"
DATA = dict(n_train=240, n_val=80, n_test=120, imgsz=256, seed=7, classes=("square", "circle", "triangle"))
TRAIN = dict(epochs=60, imgsz=256, batch=16, workers=0, seed=0)


def data_yaml() -> Path:
    return synthetic.generate(ROOT / "data", **DATA)


def holdout_yaml() -> Path:
    """The same data YAML with val = the held-out test images (what the validator reads)."""
    out = ROOT / "holdout.yaml"
    if not out.is_file():
        data = yaml.safe_load(data_yaml().read_text())
        out.write_text(yaml.safe_dump({**data, "val": data["test"]}, sort_keys=False))
    return out


def model() -> Path:
    """The user's model: trained with plain Ultralytics from yolo11n.yaml (cached)."""
    best = ROOT / "train" / "weights" / "best.pt"
    if best.is_file():
        return best
    import torch
    from ultralytics import YOLO

    yolo = YOLO("yolo11n.yaml")
    # Ultralytics trains on cores-1 threads on a CPU; the weights do not depend on it, the wall time does
    yolo.add_callback("on_train_start", lambda trainer: torch.set_num_threads(torch.get_num_threads() + 1))
    yolo.train(data=str(data_yaml()), project=str(ROOT), name="train", exist_ok=True, **TRAIN)
    return best


if __name__ == "__main__":
    print(f"data: {data_yaml()}\nmodel: {model()}\nheld-out: {holdout_yaml()}")
