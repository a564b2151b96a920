"""The embedded default: the synthetic data set and a YOLO11n trained on it from ``yolo11n.yaml``, cached.

Both are cached under ``<runs>/.cache/`` keyed by everything that determines them (generator settings, training
settings, library versions), so a second run reuses them. A user's own ``model``/``data`` skip this stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib.metadata import version
from pathlib import Path

from prunelib import synthetic
from prunelib.offline import use_all_cores
from prunelib.paths import resolve
from prunelib.runs import runs_root


def data_yaml(params: dict) -> Path:
    """The run's data YAML: the user's, or the synthetic set (generated on first use)."""
    if params["data"]:
        return resolve(params["data"])
    key = synthetic.cache_key(params["synth_train"], params["synth_val"], params["synth_imgsz"], params["seed"])
    out = runs_root(params) / ".cache" / f"data-{key}"
    return synthetic.generate(out, params["synth_train"], params["synth_val"], params["synth_imgsz"], params["seed"])


def baseline_key(params: dict) -> str:
    settings = {
        k: params[k]
        for k in ("synth_train", "synth_val", "synth_imgsz", "seed", "baseline_epochs", "baseline_cfg", "baseline_lr0",
                  "imgsz", "batch")
    }
    settings["generator"] = synthetic.GENERATOR_VERSION
    settings["versions"] = [version(p) for p in ("torch", "ultralytics")]
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def model_path(params: dict, train: bool = True) -> tuple[Path, bool]:
    """(the run's starting checkpoint, whether it came from the cache). Trains the baseline when it is missing."""
    if params["model"]:
        return resolve(params["model"]), False
    out = runs_root(params) / ".cache" / f"baseline-{baseline_key(params)}"
    best = out / "weights" / "best.pt"
    if best.is_file():
        return best, True
    if not train:
        raise FileNotFoundError(best)
    train_baseline(params, out)
    return best, False


def train_baseline(params: dict, out: Path) -> Path:
    """Train params['baseline_cfg'] from scratch on the synthetic data into out (atomically renamed into place)."""
    from ultralytics import YOLO

    data = data_yaml(params)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model = YOLO(params["baseline_cfg"])
    for event in ("on_train_start", "on_val_start"):
        model.add_callback(event, use_all_cores(params["threads"]))
    model.train(
        data=str(data),
        epochs=params["baseline_epochs"],
        imgsz=params["imgsz"],
        batch=params["batch"],
        optimizer="AdamW",
        lr0=params["baseline_lr0"],
        workers=params["workers"],
        device=params["device"],
        seed=params["seed"],
        deterministic=True,
        project=str(tmp.parent),
        name=tmp.name,
        exist_ok=True,
        plots=False,
        amp=False,
        verbose=False,
    )
    (tmp / "key.json").write_text(json.dumps({"key": out.name}))
    os.replace(tmp, out)
    return out / "weights" / "best.pt"


def ensure(params: dict, log=print) -> dict:
    """The baseline stage: the run's data and starting model, made (or found in the cache) if they are the default."""
    data = data_yaml(params)
    if params["model"]:
        log(f"Using your model {params['model']} and data {params['data']}: the embedded baseline is skipped")
        return {"data": params["data"], "model": params["model"], "source": "user"}
    log(f"Synthetic data set: {params['synth_train']} train / {params['synth_val']} val images, "
        f"{params['synth_imgsz']} px, {len(synthetic.CLASSES)} classes")
    path, cached = model_path(params)
    log(("Reused the cached baseline " if cached else "Trained the baseline ") + f"({params['baseline_cfg']}, "
        f"{params['baseline_epochs']} epochs at imgsz {params['imgsz']})")
    return {"data": str(data), "model": str(path), "source": "cache" if cached else "trained"}
