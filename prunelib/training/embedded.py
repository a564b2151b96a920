"""The run's data and starting model: the user's own, or the embedded baseline (the synthetic data set, drawn for the
baseline's task, and a model trained on it from ``baseline_cfg``, YOLO11n by default).

The embedded ones are cached under ``<runs>/.cache/`` keyed by everything that determines them (generator settings,
training settings, library versions), so a second run reuses them. The default's baseline is also shipped in
``baselines/`` (trained once with this code; ``make baseline`` trains it again): a run whose key matches copies it
instead of training. A training killed mid-way leaves a temporary folder in the cache, removed by the next one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from importlib.metadata import version
from pathlib import Path

from ultralytics import YOLO

from prunelib import files, tasks
from prunelib.core import parameters
from prunelib.core.folder import cache_dir
from prunelib.core.settings import Settings, Source
from prunelib.errors import UserError
from prunelib.offline import use_all_cores
from prunelib.paths import BASELINES_DIR, PROJECT_ROOT, relative, resolve
from prunelib.surgery.checkpoints import load_model
from prunelib.training import pseudo_labels, synthetic
from prunelib.training.arguments import ultralytics_args


def data_yaml(settings: Settings) -> Path:
    """The run's data YAML: the user's; for a folder of unlabelled images, the set its model labels (pseudo_labels,
    made on first use, in the run's cache); or the synthetic set (generated on first use, in the run's cache)."""
    source = settings.source
    if source.image_folder:
        model = resolve(source.model)
        task = _checkpoint_task(str(model), model.stat().st_mtime)
        cache = cache_dir(settings.place)
        return pseudo_labels.data_yaml(resolve(source.data), model, settings.training.imgsz, source.seed, cache, task)
    if source.data:
        return resolve(source.data)
    drawn = (source.synth_train, source.synth_val, source.synth_imgsz, source.seed, list(source.synth_classes))
    task = synthetic_task(source)
    out = cache_dir(settings.place) / f"data-{synthetic.cache_key(*drawn, task=task)}"
    if (out / "data.yaml").is_file():
        return out / "data.yaml"
    with files.exclusive(out.with_name(f".{out.name}.lock")):  # parallel runs make it once
        return synthetic.generate(out, *drawn, task=task)


def synthetic_task(source: Source) -> str:
    """The task the synthetic set is drawn for: the user's model's, else the embedded baseline's (baseline_cfg)."""
    if source.model:
        path = resolve(source.model)
        return _checkpoint_task(str(path), path.stat().st_mtime if path.is_file() else 0.0)
    return tasks.of_cfg(source.baseline_cfg).name


@functools.lru_cache(maxsize=8)
def _checkpoint_task(path: str, mtime: float) -> str:
    """A checkpoint's task, loaded once per file version (mtime: a rewritten file is loaded again)."""
    return tasks.of(load_model(path)).name


def model_path(settings: Settings, train: bool = True, shipped: Path = BASELINES_DIR) -> tuple[Path, str]:
    """(the run's starting checkpoint, where it came from: 'user', 'cache', 'shipped' or 'trained'). The embedded
    baseline comes from the cache, else from the shipped copy with the same key, else it is trained (when train is
    set; otherwise a missing baseline is a UserError naming the stage that makes it)."""
    if settings.source.model:
        return resolve(settings.source.model), "user"
    name = f"baseline-{baseline_key(settings.source)}"
    out = cache_dir(settings.place) / name
    best = out / "weights" / "best.pt"
    if best.is_file():
        return best, "cache"
    with files.exclusive(out.with_name(f".{name}.lock")):  # parallel runs make it once; the others wait
        if best.is_file():
            return best, "cache"
        if (shipped / name / "weights" / "best.pt").is_file():
            with files.atomic(out) as tmp:
                shutil.copytree(shipped / name, tmp)
            return best, "shipped"
        if not train:
            raise UserError(
                f"no starting model yet ({relative(best)} is missing): run stage 00-baseline first "
                "(python -m prunelib run --stages 00)"
            )
        train_baseline(settings, out)
    return best, "trained"


def ship(settings: Settings, shipped: Path = BASELINES_DIR, log=print) -> Path:
    """Train the embedded baseline again from scratch (whatever is cached or shipped) and put it in shipped, removing
    shipped baselines that no parameter file in params/ uses any more: what `make baseline` does; commit the folder
    it returns."""
    name = f"baseline-{baseline_key(settings.source)}"
    out = cache_dir(settings.place) / name
    with files.exclusive(out.with_name(f".{name}.lock")):
        shutil.rmtree(out, ignore_errors=True)
        train_baseline(settings, out)
    for old in shipped.glob("baseline-*"):
        if old.name not in used_baselines():
            shutil.rmtree(old)
    with files.atomic(shipped / name) as tmp:
        (tmp / "weights").mkdir(parents=True)
        shutil.copyfile(out / "weights" / "best.pt", tmp / "weights" / "best.pt")
        shutil.copyfile(out / "key.json", tmp / "key.json")
    log(f"Shipped {relative(shipped / name)}: commit it so every checkout reuses it")
    return shipped / name


def baseline_settings(source: Source) -> dict:
    """Everything the embedded baseline depends on (its cache key is their hash)."""
    settings = {
        k: getattr(source, k)
        for k in (
            "synth_train",
            "synth_val",
            "synth_imgsz",
            "seed",
            "baseline_epochs",
            "baseline_cfg",
            "baseline_lr0",
            "imgsz",
            "batch",
        )
    }
    for key, default in (("synth_classes", ()), ("baseline_nbs", 64)):  # absent by default: shipped keys stay
        if (value := getattr(source, key)) != default:
            settings[key] = list(value) if isinstance(value, tuple) else value
    settings["generator"] = synthetic.GENERATOR_VERSION
    settings["versions"] = [version(p) for p in ("torch", "ultralytics")]
    return settings


def used_baselines(params_dir: Path = PROJECT_ROOT / "params") -> set[str]:
    """Names of the embedded baselines the kit's own parameter files (params/*.yaml, each alone) start from."""
    used = set()
    for path in params_dir.glob("*.yaml"):
        if not parameters.read_yaml(path).get("model"):  # a user's model: no baseline
            used.add(f"baseline-{baseline_key(Source.of(parameters.load([path])))}")
    return used


def baseline_key(source: Source) -> str:
    return hashlib.sha256(json.dumps(baseline_settings(source), sort_keys=True).encode()).hexdigest()[:12]


def train_baseline(settings: Settings, out: Path) -> Path:
    """Train baseline_cfg from scratch on the synthetic data into out (atomically renamed into place)."""
    source = settings.source
    data = data_yaml(settings)
    files.remove_stale(out.parent)
    with files.atomic(out) as tmp:
        model = YOLO(source.baseline_cfg)
        for event in ("on_train_start", "on_val_start"):
            model.add_callback(event, use_all_cores(settings.place.threads))
        model.train(**ultralytics_args(settings.training, "train", data, project=str(tmp.parent), name=tmp.name))
        (tmp / "key.json").write_text(json.dumps({"key": out.name, "settings": baseline_settings(source)}, indent=2))
    return out / "weights" / "best.pt"


def ensure(settings: Settings, log=print) -> dict:
    """The run's data and starting model, made (or found in the cache) when they are the embedded default."""
    s = settings.source
    files.remove_stale(cache_dir(settings.place))  # what killed trainings and generators left behind
    data = data_yaml(settings)
    if s.model:
        log(f"Using your model {s.model} and data {s.data}: the embedded baseline is skipped")
        return {"data": str(data), "model": str(resolve(s.model)), "source": "user"}
    log(
        f"Synthetic data set: {s.synth_train} train / {s.synth_val} val images, "
        f"{s.synth_imgsz} px, {len(synthetic.class_names(s.synth_classes))} classes"
    )
    path, source = model_path(settings)
    said = {
        "cache": "Reused the cached baseline",
        "shipped": "Used the shipped baseline",
        "trained": "Trained the baseline",
    }
    log(f"{said[source]} ({s.baseline_cfg}, {s.baseline_epochs} epochs at imgsz {s.imgsz})")
    return {"data": str(data), "model": str(path), "source": source}
