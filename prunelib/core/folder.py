"""A run's folder ``runs/<run_name>/``: the one place that names what a run holds, and reads and writes it.

A run folder is created (prunelib.runs.opening) with its merged ``params.yaml`` and a ``manifest.json`` (versions, seed,
cores, git commit, where the runs folder came from). Reopening a run with other parameters is refused, so nothing is
silently overwritten (keys marked ``may_change`` in the parameter table excepted); ``new_run=True`` picks the next free
name instead. Every file is written atomically (prunelib.files); the ledger is rewritten whole on each append for the
same reason; its rows are prunelib.core.ledger's.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from prunelib import files, machine
from prunelib.core import parameters
from prunelib.core.ledger import FINAL, SPARSE, Step, final_step
from prunelib.core.settings import Place, Settings
from prunelib.errors import UserError
from prunelib.offline import cores
from prunelib.paths import PROJECT_ROOT, relative, resolve

RUNS_ENV = "PRUNELIB_RUNS"  # replaces the default runs folder (tests, shared storage); recorded in the manifest
LOCK_ENV = "PRUNELIB_RUN_LOCK"  # the run folder whose lock the process that started this one holds
_held: dict[Path, object] = {}  # run folders whose lock this process holds -> the open lock file


@dataclass(frozen=True)
class Run:
    dir: Path
    params: dict

    @property
    def name(self) -> str:
        return self.dir.name

    @cached_property
    def settings(self) -> Settings:
        """The run's parameters, typed and frozen, built on first use."""
        return Settings.of(self.params)

    # --- what a run holds: every name in the run folder is spelled here ---
    params_yaml = property(lambda self: self.dir / "params.yaml")
    manifest = property(lambda self: self.dir / "manifest.json")
    ledger = property(lambda self: self.dir / "ledger.jsonl")
    unpruned_pt = property(lambda self: self.dir / "unpruned.pt")  # the starting model, its C3k2 blocks replaced
    unpruned_json = property(lambda self: self.dir / "unpruned.json")  # its measurements: what steps compare with
    final = property(lambda self: self.dir / "final.pt")
    export_json = property(lambda self: self.dir / "export.json")
    sensitivity_json = property(lambda self: self.dir / "sensitivity.json")
    layer_weights_json = property(lambda self: self.dir / "layer-weights.json")  # layer_ratios: sensitivity or latency
    timings_json = property(lambda self: self.dir / "timings.json")
    log_txt = property(lambda self: self.dir / "log.txt")  # the libraries' chatter kept off the console (console)
    report_md = property(lambda self: self.dir / "report.md")
    data_preview = property(lambda self: self.dir / "data-preview.jpg")
    perf_png = property(lambda self: self.dir / "perf.png")
    channels_png = property(lambda self: self.dir / "channels.png")
    pareto_png = property(lambda self: self.dir / "pareto.png")
    sensitivity_png = property(lambda self: self.dir / "sensitivity.png")
    classes_json = property(lambda self: self.dir / "classes.json")  # the metric per class, unpruned and final
    classes_png = property(lambda self: self.dir / "classes.png")
    detections_png = property(lambda self: self.dir / "detections.png")  # ground truth and predictions side by side
    detections_json = property(lambda self: self.dir / "detections.json")  # what each model found and lost there
    deployment_png = property(lambda self: self.dir / "deployment.png")  # accuracy against latency of each file
    batch_dir = property(lambda self: self.dir / "batch")  # the float files exported again at throughput_batch
    alternatives_dir = property(lambda self: self.dir / "alternatives")  # copies of the alternatives, their exports
    stock_dir = property(lambda self: self.dir / "stock")  # the stock alternative's training (runs.stock)
    stock_json = property(lambda self: self.dir / "stock" / "stock.json")  # how it was sized and trained
    stock_pt = property(lambda self: self.dir / "stock" / "weights" / "best.pt")

    lock_file = property(lambda self: self.dir / ".lock")
    cache = property(lambda self: cache_dir(self.settings.place))

    def notebook(self, stage: str) -> Path:
        return self.dir / f"{stage}.ipynb"

    def val_dir(self, what: str) -> Path:
        """Where Ultralytics' validator writes: the unpruned model ('unpruned'), a scan, an exported file."""
        return self.dir / "val" / what

    def step_dir(self, step: int | str) -> Path:
        """A step's folder; SPARSE (sparsity training) and FINAL (the final fine-tune) have their own."""
        return self.dir / "steps" / (step if step in (SPARSE, FINAL) else f"step_{step:02d}")

    def pruned_checkpoint(self, step: int) -> Path:
        """The model right after pruning, before fine-tuning."""
        return self.step_dir(step) / "pruned.pt"

    def step_checkpoints(self, step: int) -> tuple[Path, Path]:
        """(best.pt, last.pt) of a step's fine-tuning, where Ultralytics' trainer writes them."""
        wdir = self.step_dir(step) / "weights"
        return wdir / "best.pt", wdir / "last.pt"

    def step_weights(self, step: int | str) -> Path:
        """The checkpoint a step hands on: its fine-tuning's best.pt (last.pt when no best was kept, and always after
        sparsity training, whose last epoch is the sparsest)."""
        best, last = self.step_checkpoints(step)
        return best if best.is_file() and step != SPARSE else last

    def step_val_dir(self, step: int, which: str) -> Path:
        """Where the validator writes for a step's model: 'pruned' (before fine-tuning; 'pruned-fold' and so on for
        each repair of the cut measured) or 'recovered' (after)."""
        if which.startswith("pruned-"):
            return self.step_dir(step) / "val_pruned" / which.removeprefix("pruned-")
        return self.step_dir(step) / {"pruned": "val_pruned", "recovered": "val"}[which]

    def rel(self, path) -> str:
        """A path inside the run as shown to people: runs/<run>/... relative to the runs folder's parent."""
        return relative(path, self.dir.parent.parent)

    # --- reading and writing ---
    def read_ledger(self) -> list[Step]:
        return [Step.of(r) for r in read_jsonl(self.ledger)]

    def append_ledger(self, step: Step) -> None:
        rows = self.read_ledger() + [step]
        files.write_text(self.ledger, "".join(json.dumps(r.record()) + "\n" for r in rows))

    def final_step(self) -> Step | None:
        return final_step(self.read_ledger())

    def stored_params(self) -> dict:
        """The parameters params.yaml holds, as written ({} before the run is created)."""
        return (yaml.safe_load(self.params_yaml.read_text()) or {}) if self.params_yaml.is_file() else {}

    def read_json(self, path: Path):
        return json.loads(path.read_text()) if path.is_file() else None

    def write_json(self, path: Path, obj) -> Path:
        return files.write_text(path, json.dumps(obj, indent=2) + "\n")

    @contextmanager
    def lock(self):
        """Hold the run for this process: a second process that asks gets a UserError naming the holder. Re-entrant;
        a no-op where the process that started this one holds it (papermill kernels); released by the OS when the
        process dies, so a killed run resumes without clean-up."""
        key = self.dir.resolve()
        if key in _held or os.environ.get(LOCK_ENV) == str(key):
            yield
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.lock_file, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"run {self.name!r} is in use by {holder}; wait for it to finish or stop it") from None
        handle.seek(0), handle.truncate()
        handle.write(f"process {os.getpid()} ({_command()})\n")
        handle.flush()
        _held[key] = handle
        try:
            yield
        finally:
            del _held[key]
            handle.close()

    def record_timing(self, stage: str, seconds: float) -> None:
        timings = self.read_json(self.timings_json) or {}
        timings[stage] = round(seconds, 2)
        self.write_json(self.timings_json, timings)


def runs_root(runs_dir: str = parameters.DEFAULTS["runs_dir"]) -> Path:
    """The runs folder: the runs_dir parameter under the project root; $PRUNELIB_RUNS replaces its default."""
    if os.environ.get(RUNS_ENV) and runs_dir == parameters.DEFAULTS["runs_dir"]:
        return resolve(os.environ[RUNS_ENV])
    return resolve(runs_dir)


def cache_dir(place: Place) -> Path:
    """The cache of the embedded data, baseline and unpruned measurements: cache_dir, else <runs>/.cache."""
    return resolve(place.cache_dir) if place.cache_dir else runs_root(place.runs_dir) / ".cache"


SWEEP_STATUS = "sweep.json"  # beside the runs of a sweep: what each run of it did (prunelib.runs.sweep)


def sweep_runs(folder: Path) -> list[str] | None:
    """The runs of the sweep in folder as last asked (its SWEEP_STATUS), None when folder holds no sweep."""
    status = Path(folder) / SWEEP_STATUS
    return list(json.loads(status.read_text()).get("runs", {})) if status.is_file() else None


def load_run(run_name_or_dir, runs_dir: str | None = None) -> Run:
    """A run that exists, with its stored parameters: by name (in runs_dir or the runs folder) or by folder."""
    path = Path(run_name_or_dir)
    if len(path.parts) == 1 and not path.is_dir():
        path = (resolve(runs_dir) if runs_dir else runs_root()) / path
    stored = path / "params.yaml"
    if not stored.is_file():
        raise UserError(
            f"{relative(path)!r} is not a run folder (no params.yaml); start the run with stage 00 "
            "or 'python -m prunelib run'"
        )
    return Run(path, parameters.check(Run(path, {}).stored_params()))


def differences(old: dict, new: dict, keys=None) -> list[str]:
    """What differs between a run's stored parameters and new ones ('key: old -> new'), among keys (default: those a
    run may not change). A parameter the stored file lacks (added to the kit after the run began) counts as its
    default, which keeps the old behaviour."""
    old = {**parameters.DEFAULTS, **old}
    keys = [p.name for p in parameters.PARAMS if not p.may_change] if keys is None else keys
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def manifest(place: Place) -> dict:
    """What a run was made with: where it lives, its seed, the Python, library versions and the machine."""

    def v(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    root = runs_root(place.runs_dir)
    return {
        "run_name": place.run_name,
        "seed": place.seed,
        "runs_root": str(root),
        "runs_root_from": f"${RUNS_ENV}" if root != resolve(place.runs_dir) else "runs_dir",
        "python": platform.python_version(),
        "versions": {
            p: v(p)
            for p in (
                "torch",
                "torchvision",
                "ultralytics",
                "torch-pruning",
                "onnx",
                "onnxruntime",
                "openvino",
                "papermill",
                "prunelib",
            )
        },
        "cores": cores(),
        "cpu": machine.cpu(),  # model and the kernel-deciding flags: timings and OpenVINO's defaults depend on them
        "channel_block": machine.channel_block(),  # what round_to: auto aligns to here
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "command": _command(),
    }


def read_jsonl(path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def load_runs(root) -> list[Run]:
    """The runs under root (sub-folders with a params.yaml), by name; folders starting with '.' or '_' are not runs,
    and runs made by another version of the kit (parameters it no longer knows) are left out."""
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "._") if root.is_dir() else []
    runs = []
    for d in folders:
        if Run(d, {}).params_yaml.is_file():
            try:
                runs.append(load_run(d))
            except UserError:
                continue
    return runs


def next_free(run_dir: Path) -> Path:
    """run_dir, or run_dir-2, -3 … when it exists: nothing already written is reused."""
    if not run_dir.exists():
        return run_dir
    i = 2
    while (run_dir.parent / f"{run_dir.name}-{i}").exists():
        i += 1
    return run_dir.parent / f"{run_dir.name}-{i}"


def _command() -> str:
    return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
