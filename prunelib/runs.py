"""A run's folder ``runs/<run_name>/``: its parameters, manifest, ledger, and the stable names of what it holds.

A run folder is created with its merged ``params.yaml`` and a ``manifest.json`` (versions, seed, cores, git
commit). Reopening a run with other parameters is refused, so nothing is silently overwritten; ``new_run=True``
picks the next free name instead. Every file is written to a temporary name and renamed, so a file that exists is
complete; the ledger is rewritten whole on each append for the same reason.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from prunelib import parameters
from prunelib.errors import UserError
from prunelib.paths import PROJECT_ROOT, relative, resolve


@dataclass(frozen=True)
class Run:
    dir: Path
    params: dict

    @property
    def name(self) -> str:
        return self.dir.name

    # stable names of what a run holds
    @property
    def ledger(self) -> Path:
        return self.dir / "ledger.jsonl"

    @property
    def replaced(self) -> Path:
        return self.dir / "replaced.pt"

    @property
    def final(self) -> Path:
        return self.dir / "final.pt"

    @property
    def baseline_json(self) -> Path:
        return self.dir / "baseline.json"

    def step_dir(self, step: int) -> Path:
        return self.dir / "steps" / f"step_{step:02d}"

    def rel(self, path) -> str:
        """A path inside the run as shown to people: runs/<run>/... relative to the runs folder's parent."""
        return relative(path, self.dir.parent.parent)

    def read_ledger(self) -> list[dict]:
        return read_jsonl(self.ledger)

    def append_ledger(self, record: dict) -> None:
        rows = self.read_ledger() + [record]
        write_text(self.ledger, "".join(json.dumps(r, sort_keys=False) + "\n" for r in rows))

    def read_json(self, name: str):
        p = self.dir / name
        return json.loads(p.read_text()) if p.is_file() else None

    def write_json(self, name: str, obj) -> Path:
        return write_text(self.dir / name, json.dumps(obj, indent=2) + "\n")


def runs_root(params: dict) -> Path:
    """The runs folder: PRUNELIB_RUNS (tests) or params['runs_dir'] under the project root."""
    return resolve(os.environ.get("PRUNELIB_RUNS") or params["runs_dir"])


def open_run(params_files=(), overrides: dict | None = None, run_name: str | None = None, new_run=False) -> Run:
    """Load and check parameters, then create the run folder or reopen it when its parameters are the same."""
    overrides = dict(overrides or {})
    if run_name:
        overrides["run_name"] = run_name
    params = parameters.load([resolve(f) for f in params_files], overrides)
    root = runs_root(params)
    run_dir = root / params["run_name"]
    if new_run:
        run_dir = _next_free(run_dir)
        params["run_name"] = run_dir.name
    stored = run_dir / "params.yaml"
    if stored.is_file():
        old = yaml.safe_load(stored.read_text()) or {}
        diff = differences(old, params)
        if diff:
            raise UserError(
                f"run {params['run_name']!r} exists with other parameters ({'; '.join(diff[:3])}); "
                f"resume with the same parameters, choose another run_name, or pass --new-run"
            )
        return Run(run_dir, params)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"run folder {relative(run_dir)!r} exists but holds no params.yaml; choose another run_name")
    check_inputs(params)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(stored, yaml.safe_dump(params, sort_keys=False))
        write_text(run_dir / "manifest.json", json.dumps(manifest(params), indent=2) + "\n")
    except OSError as e:
        raise UserError(f"runs_dir: cannot write the run folder {str(run_dir)!r} ({e.strerror or e})") from None
    return Run(run_dir, params)


def check_inputs(params: dict) -> None:
    """The user's model and data, checked before anything is written: loadable, supported, of the same classes."""
    from prunelib import checkpoints, datasets

    data = datasets.check_data_yaml(resolve(params["data"])) if params["data"] else None
    if params["model"]:
        model = checkpoints.load_model(resolve(params["model"]))
        if data and getattr(model, "nc", data["nc"]) != data["nc"]:
            raise UserError(f"data: {params['data']!r} has {data['nc']} classes but model {params['model']!r} "
                            f"predicts {model.nc}; use the data set the model was trained on")


def load_run(run_dir) -> Run:
    """A run that exists, with its stored parameters."""
    run_dir = Path(run_dir)
    stored = run_dir / "params.yaml"
    if not stored.is_file():
        raise UserError(f"{str(run_dir)!r} is not a run folder (no params.yaml)")
    return Run(run_dir, parameters.check(yaml.safe_load(stored.read_text())))


def differences(old: dict, new: dict) -> list[str]:
    keys = [k for k in parameters.DEFAULTS if k not in parameters.PRESENTATION_KEYS]
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def manifest(params: dict) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def v(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    return {
        "run_name": params["run_name"],
        "seed": params["seed"],
        "python": platform.python_version(),
        "versions": {p: v(p) for p in ("torch", "torchvision", "ultralytics", "torch-pruning", "onnx",
                                       "onnxruntime", "papermill", "prunelib")},  # fmt: skip
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)),
    }


def write_text(path, text: str) -> Path:
    """Write then rename: a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def read_jsonl(path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def find_runs(root) -> list[Path]:
    """Run folders (with a ledger) under root, by name; folders starting with '.' or '_' are not runs."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] not in "._" and (p / "ledger.jsonl").is_file())


def _next_free(run_dir: Path) -> Path:
    if not run_dir.exists():
        return run_dir
    i = 2
    while (run_dir.parent / f"{run_dir.name}-{i}").exists():
        i += 1
    return run_dir.parent / f"{run_dir.name}-{i}"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
