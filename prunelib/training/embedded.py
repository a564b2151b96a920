"""The run's data and starting model: the user's own, or the embedded baseline (the synthetic data set and a
YOLO11n trained on it from ``yolo11n.yaml``).

The embedded ones are cached under ``<runs>/.cache/`` keyed by everything that determines them (generator settings,
training settings, library versions), so a second run reuses them. A training killed mid-way leaves a temporary
folder there, removed by the next training.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

from prunelib import files
from prunelib.errors import UserError
from prunelib.offline import use_all_cores
from prunelib.paths import relative, resolve
from prunelib.training import synthetic
from prunelib.training.arguments import ultralytics_args


def data_yaml(params: dict) -> Path:
    """The run's data YAML: the user's, or the synthetic set (generated on first use)."""
    if params["data"]:
        return resolve(params["data"])
    key = synthetic.cache_key(params["synth_train"], params["synth_val"], params["synth_imgsz"], params["seed"])
    out = _cache(params) / f"data-{key}"
    if (out / "data.yaml").is_file():
        return out / "data.yaml"
    with files.exclusive(out.with_name(f".{out.name}.lock")):  # parallel runs make it once
        return synthetic.generate(out, params["synth_train"], params["synth_val"], params["synth_imgsz"],
                                  params["seed"])


def model_path(params: dict, train: bool = True) -> tuple[Path, bool]:
    """(the run's starting checkpoint, whether it came from the cache). Trains the embedded baseline when it is
    missing and train is set; otherwise a missing baseline is a UserError naming the stage that makes it."""
    if params["model"]:
        return resolve(params["model"]), False
    out = _cache(params) / f"baseline-{baseline_key(params)}"
    best = out / "weights" / "best.pt"
    if best.is_file():
        return best, True
    if not train:
        raise UserError(f"no starting model yet ({relative(best)} is missing): run stage 00-baseline first "
                        "(python -m prunelib run --stages 00)")  # fmt: skip
    with files.exclusive(out.with_name(f".{out.name}.lock")):  # parallel runs train it once; the others wait
        if best.is_file():
            return best, True
        train_baseline(params, out)
    return best, False


def baseline_key(params: dict) -> str:
    settings = {
        k: params[k]
        for k in ("synth_train", "synth_val", "synth_imgsz", "seed", "baseline_epochs", "baseline_cfg", "baseline_lr0",
                  "imgsz", "batch")
    }
    settings["generator"] = synthetic.GENERATOR_VERSION
    settings["versions"] = [version(p) for p in ("torch", "ultralytics")]
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def train_baseline(params: dict, out: Path) -> Path:
    """Train params['baseline_cfg'] from scratch on the synthetic data into out (atomically renamed into place)."""
    from ultralytics import YOLO

    data = data_yaml(params)
    files.remove_stale(out.parent)
    with files.atomic(out) as tmp:
        model = YOLO(params["baseline_cfg"])
        for event in ("on_train_start", "on_val_start"):
            model.add_callback(event, use_all_cores(params["threads"]))
        model.train(**ultralytics_args(params, "train", data, project=str(tmp.parent), name=tmp.name))
        (tmp / "key.json").write_text(json.dumps({"key": out.name}))
    return out / "weights" / "best.pt"


def ensure(params: dict, log=print) -> dict:
    """The run's data and starting model, made (or found in the cache) when they are the embedded default."""
    files.remove_stale(_cache(params))  # what killed trainings and generators left behind
    data = data_yaml(params)
    if params["model"]:
        log(f"Using your model {params['model']} and data {params['data']}: the embedded baseline is skipped")
        return {"data": str(data), "model": str(resolve(params["model"])), "source": "user"}
    log(f"Synthetic data set: {params['synth_train']} train / {params['synth_val']} val images, "
        f"{params['synth_imgsz']} px, {len(synthetic.CLASSES)} classes")
    path, cached = model_path(params)
    log(("Reused the cached baseline " if cached else "Trained the baseline ") + f"({params['baseline_cfg']}, "
        f"{params['baseline_epochs']} epochs at imgsz {params['imgsz']})")
    return {"data": str(data), "model": str(path), "source": "cache" if cached else "trained"}


def _cache(params: dict) -> Path:
    from prunelib.runs.folder import Run, runs_root

    return Run(runs_root(params) / params["run_name"], params).cache
