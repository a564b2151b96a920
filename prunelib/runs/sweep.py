"""Sweeps: every combination of a grid of parameter values as an ordinary run, side by side under ``runs/<sweep>/``,
then one comparison.

A sweep is base parameter files, fixed overrides (``--set``) and a grid (``--grid key=v1,v2``), from the command line
or a YAML file (``params/sweeps/*.yaml``: ``params``, ``set``, ``grid``); the grid key ``params`` takes parameter files
(recipes), each run adding one after the base files. Each combination is checked before anything
runs, then executed as ``python -m prunelib run`` (the staged notebooks, papermill) in its own process, named by what
varies. Running the sweep again skips finished runs, resumes interrupted ones (the run's own resume) and re-runs
failed ones; a failure is recorded in ``sweep.json`` (stage, error line) and the others go on. Runs share the
embedded baseline and the unpruned model's measurements through the cache. ``--list`` prints the same runs as
self-contained commands for a scheduler (Slurm job array, GNU parallel) over a shared runs folder; the run lock
keeps two hosts off one run, and ``sweep`` afterwards only compares.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

import yaml

from prunelib import files
from prunelib.core import parameters
from prunelib.core.folder import SWEEP_STATUS, Run, differences, load_runs, runs_root, sweep_runs
from prunelib.core.settings import Settings
from prunelib.errors import UserError
from prunelib.offline import cores
from prunelib.paths import PROJECT_ROOT, relative, resolve
from prunelib.presentation import comparison
from prunelib.runs.opening import check_inputs, from_inputs
from prunelib.runs.pipeline import COMPARE, execute
from prunelib.runs.stages import STAGES

RUN_ONLY = ("threads", "device", "workers")  # how a run is executed (set per slot), never what it measures
SWEEP_KEYS = ("params", "set", "grid")  # what a sweep YAML holds (its name is the file's stem unless --name)
GRID_FILES = "params"  # a grid key whose values are parameter files (recipes): each run adds one, named by its stem


@dataclass(frozen=True)
class SweepFolder:
    """What a sweep folder holds, beside its runs (every name spelled here)."""

    dir: Path
    status_json = property(lambda self: self.dir / SWEEP_STATUS)
    logs = property(lambda self: self.dir / "logs")
    notebook = property(lambda self: self.dir / f"{COMPARE}.ipynb")
    summary_csv = property(lambda self: self.dir / "summary.csv")
    summary_md = property(lambda self: self.dir / "summary.md")
    pareto_png = property(lambda self: self.dir / "compare-pareto.png")

    def curves_png(self, key: str) -> Path:
        return self.dir / f"compare-{key}.png"

    def log(self, run: str) -> Path:
        return self.logs / f"{run}.log"

    def statuses(self) -> dict:
        return (json.loads(self.status_json.read_text()) if self.status_json.is_file() else {}).get("runs", {})

    def planned(self) -> list[str] | None:
        """The runs of the sweep as last asked (sweep.json), None for a folder of runs that is no sweep."""
        return sweep_runs(self.dir)


@dataclass(frozen=True)
class Sweep:
    name: str
    params_files: tuple[str, ...]
    fixed: dict  # overrides every run shares
    grid: dict  # key -> values, in the order given
    root: Path = field(init=False)
    cache: Path = field(init=False)

    def __post_init__(self):
        base = runs_root(parameters.load([resolve(f) for f in self.params_files], self.fixed)["runs_dir"])
        object.__setattr__(self, "root", base / self.name)
        object.__setattr__(self, "cache", base / ".cache")  # shared with every run outside the sweep

    @property
    def folder(self) -> SweepFolder:
        return SweepFolder(self.root)

    def combinations(self) -> list[dict]:
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def overrides(self, combo: dict) -> dict:
        """All overrides of one run: fixed, its combination, its name, where it lives, the shared cache."""
        values = {k: v for k, v in combo.items() if k != GRID_FILES}
        return {
            **self.fixed,
            **values,
            "run_name": run_name(combo),
            "runs_dir": relative(self.root),
            "cache_dir": relative(self.cache),
        }

    def run_parameters(self, combo: dict) -> dict:
        """One run's merged and checked parameters."""
        return from_inputs(parameters.load([resolve(f) for f in self.files(combo)], self.overrides(combo)))

    def files(self, combo: dict) -> list[str]:
        """The parameter files of one run: the sweep's, then the combination's own (grid key 'params')."""
        return [*self.params_files, *([combo[GRID_FILES]] if GRID_FILES in combo else [])]

    def command(self, combo: dict, python: str = sys.executable) -> list[str]:
        args = [python, "-m", "prunelib", "run"]
        for f in self.files(combo):
            args += ["--params", relative(resolve(f))]
        for key, value in self.overrides(combo).items():
            args += ["--set", f"{key}={_yaml_value(value)}"]
        return args


def load(sweep_file=None, params_files=(), grid_items=(), set_items=(), name=None) -> Sweep:
    """A sweep from a YAML file and/or the command line (the command line adds to the file and wins)."""
    spec = _read_sweep_file(sweep_file) if sweep_file else {}
    grid = {**spec.get("grid", {}), **parse_grid(grid_items)}
    if not grid:
        raise UserError("sweep: no grid; give --grid key=v1,v2 (repeatable) or a --sweep file with a 'grid' mapping")
    name = name or (Path(sweep_file).stem if sweep_file else None)
    if not name:
        raise UserError("sweep: --name is required (the folder under the runs folder holding the sweep's runs)")
    params_files = tuple(spec.get("params", [])) + tuple(params_files)
    fixed = {**spec.get("set", {}), **parameters.parse_set(set_items)}
    sweep = Sweep(name, params_files, fixed, {k: list(v) for k, v in grid.items()})
    check(sweep)
    return sweep


def parse_grid(items) -> dict[str, list]:
    """``key=v1,v2`` strings to {key: [v1, v2]}; values parsed as YAML like --set, commas inside [] kept."""
    grid = {}
    for item in items or ():
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise UserError(f"--grid {item!r}: expected key=v1,v2,..., e.g. --grid importance=l2,random")
        grid[key.strip()] = [parameters.parse_value(v) for v in _split_top_level(values)]
    return grid


def check(sweep: Sweep) -> list[dict]:
    """Every run's parameters and inputs checked before anything runs; returns them. Names must be distinct."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", sweep.name):
        raise UserError(f"sweep name {sweep.name!r} is not allowed; expected 1-64 letters, digits, '.', '_' or '-'")
    checked, seen = [], {}
    for combo in sweep.combinations():
        try:
            p = sweep.run_parameters(combo)
        except UserError as e:
            raise UserError(f"sweep run {run_name(combo)!r}: {e}") from None
        if p["run_name"] in seen:
            raise UserError(f"sweep: combinations {seen[p['run_name']]} and {combo} give the same run name")
        seen[p["run_name"]] = combo
        checked.append(p)
    for inputs in {(p["model"], p["data"], p["cfg"]): p for p in checked}.values():
        check_inputs(Settings.of(inputs))
    return checked


def run_name(combo: dict) -> str:
    """A readable, stable name for one combination: key-value pairs joined by '__' (shortened with a hash if long)."""
    name = "__".join(f"{k}-{_slug(Path(v).stem if k == GRID_FILES else v)}" for k, v in combo.items())
    if len(name) > 64:
        name = name[:55].rstrip("_-.") + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name


def listing(sweep: Sweep) -> str:
    """One self-contained shell command per run, for a scheduler; they write where the sweep expects."""
    python = (
        os.path.relpath(sys.executable, PROJECT_ROOT)
        if sys.executable.startswith(str(PROJECT_ROOT))
        else sys.executable
    )  # the venv's own path, not where its symlink points
    return (
        "\n".join(
            f"cd {shlex.quote(str(PROJECT_ROOT))} && {shlex.join(sweep.command(c, python))}"
            for c in sweep.combinations()
        )
        + "\n"
    )


def run_sweep(sweep: Sweep, jobs: int = 1, devices=(), log=print) -> dict:
    """Execute the runs not finished yet (jobs at once, CPU threads divided; one run per device when devices are
    given), record each one's status, then execute the comparison notebook. Returns {run name: status record}."""
    combos = sweep.combinations()
    asked = [sweep.run_parameters(c) for c in combos]
    _refuse_other_settings(sweep, combos, asked)
    before = sweep.folder.statuses()
    status = {run_name(c): before[run_name(c)] for c in combos if run_name(c) in before}  # this plan's runs only
    todo = [c for c, p in zip(combos, asked) if not finished(sweep.root / run_name(c), p)]
    for c in combos:
        if c not in todo:
            status[run_name(c)] = {**status.get(run_name(c), {}), "status": "done"}
    slots = Queue()
    for slot in list(devices) or ["cpu"] * max(1, jobs):
        slots.put(slot)
    threads = max(1, cores() // slots.qsize())
    log(
        f"Sweep {sweep.name!r}: {len(combos)} runs, {len(combos) - len(todo)} finished, {len(todo)} to run "
        f"({slots.qsize()} at a time, {threads} threads each) in {relative(sweep.root)}"
    )
    counter, writing = itertools.count(len(combos) - len(todo) + 1), threading.Lock()

    def one(combo):
        slot = slots.get()
        try:
            record = _execute(sweep, combo, slot, threads)
        finally:
            slots.put(slot)
        with writing:  # one writer of sweep.json at a time
            status[run_name(combo)] = record
            _write_status(sweep, status)
            log(
                f"[{next(counter)}/{len(combos)}] {run_name(combo)}: {record['status']} in {record['seconds']:.0f} s"
                + (f" ({record['error']})" if record.get("error") else "")
            )

    with ThreadPoolExecutor(max_workers=slots.qsize()) as pool, _stopping_children_on_exit():
        list(pool.map(one, todo))
    _write_status(sweep, status)
    compare_notebook(sweep.root)
    return {run_name(c): status[run_name(c)] for c in combos}


def compare(sweep_dir=None) -> dict:
    """The comparison stage: summary.csv and summary.md (a row per run), the Pareto plot of the metric against MACs
    and latency, and one figure per varied key; for a sweep's folder, or any folder of runs ('' = the runs folder)."""
    folder = SweepFolder(resolve(sweep_dir) if sweep_dir else runs_root())
    planned = folder.planned()  # a sweep's summary lists its own runs, never those of an earlier plan
    runs = [run for run in load_runs(folder.dir) if planned is None or run.name in planned]
    varied = comparison.varied_keys([run.params for run in runs])
    statuses = folder.statuses()
    rows = [
        comparison.summary_row(
            run, varied, statuses.get(run.name, {}).get("status") or ("done" if finished(run.dir) else "incomplete")
        )
        for run in runs
    ]
    comparison.write_csv(rows, folder.summary_csv)
    files.write_text(folder.summary_md, comparison.markdown(rows, folder.dir.name))
    figures = [comparison.pareto(rows, folder.pareto_png)]
    figures += [comparison.curves(rows, key, folder.curves_png(key)) for key in varied]
    return {"rows": rows, "varied": varied, "figures": figures, "summary": folder.summary_md}


def finished(run_dir: Path, asked: dict | None = None) -> bool:
    """A run whose every stage has finished (timings recorded for all), whose report exists and, when asked is given,
    that was made with those parameters (how it was executed aside: RUN_ONLY)."""
    run = Run(run_dir, {})
    timings = run.read_json(run.timings_json) or {}
    done = run.report_md.is_file() and all(stage in timings for stage in STAGES)
    return done and (asked is None or not changed(run_dir, asked))


def changed(run_dir: Path, asked: dict) -> list[str]:
    """The parameters (RUN_ONLY aside) whose stored value in run_dir differs from asked: 'key: old -> new'."""
    return differences(Run(run_dir, {}).stored_params(), asked, [k for k in parameters.BY_NAME if k not in RUN_ONLY])


def _refuse_other_settings(sweep: Sweep, combos: list[dict], asked: list[dict]) -> None:
    """A run of the sweep that exists with settings a run may not change is refused before anything runs: running it
    again would throw its finished results away, and keeping it would report settings nobody asked for now."""
    for combo, p in zip(combos, asked):
        run_dir = sweep.root / run_name(combo)
        if Run(run_dir, {}).params_yaml.is_file():
            if diff := differences(Run(run_dir, {}).stored_params(), p):
                raise UserError(
                    f"sweep run {run_name(combo)!r} exists with other settings ({'; '.join(diff[:3])}); "
                    f"remove {relative(run_dir)} to make it again, or give the sweep another --name"
                )


def compare_notebook(sweep_dir: Path) -> Path:
    """Execute the comparison notebook into the sweep folder (again, when new runs finished)."""
    return execute(
        COMPARE,
        sweep_dir / f"{COMPARE}.ipynb",
        {"sweep_dir": relative(sweep_dir)},
        f"the comparison of {relative(sweep_dir)}",
    )


_children: set[subprocess.Popen] = set()  # the runs this process is executing now
_children_lock = threading.Lock()
_stopping = threading.Event()  # set while a stopping sweep stops its runs: they are recorded as interrupted


@contextmanager
def _stopping_children_on_exit(grace: float = 30.0):
    """A sweep that stops (Ctrl-C; SIGTERM: a scheduler's time limit, kill) stops the runs it started, each in its
    own process group (its notebook kernels with it), instead of leaving them running unattended: Ctrl-C is passed on
    as SIGINT, SIGTERM as SIGTERM, and a run still there after grace seconds is killed. Each resumes next time.
    SIGTERM is turned into SystemExit while the sweep runs (in the main thread: where Python's handlers live)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main else None
    _stopping.clear()
    try:
        yield
    except BaseException as e:
        sent = signal.SIGINT if isinstance(e, KeyboardInterrupt) else signal.SIGTERM
        _stopping.set()
        with _children_lock:
            running = list(_children)
        for child in running:
            _signal_group(child, sent)
        deadline = time.monotonic() + grace
        for child in running:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _signal_group(child: subprocess.Popen, sig) -> None:
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:  # already gone
        pass


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _execute(sweep: Sweep, combo: dict, slot: str, threads: int) -> dict:
    """One run in its own process; its output goes to logs/<run>.log."""
    name = run_name(combo)
    device = ["--set", f"device={slot}"] if slot != "cpu" else []
    cmd = sweep.command(combo) + ["--set", f"threads={threads}"] + device
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    log = sweep.folder.log(name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        child = subprocess.Popen(
            cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )  # its own process group: stopped whole with the sweep
        with _children_lock:
            _children.add(child)
        try:
            code = child.wait()
        finally:
            with _children_lock:
                _children.discard(child)
    stopped = code != 0 and _stopping.is_set()
    record = {
        "status": "done" if code == 0 else "interrupted" if stopped else "failed",
        "seconds": round(time.perf_counter() - t0, 1),
        "overrides": combo,
        "log": relative(log),
    }
    if code != 0 and not stopped:
        errors = [line for line in log.read_text().splitlines() if line.startswith("error: ")]
        record["error"] = errors[-1][len("error: ") :] if errors else f"exit code {code}"
        stage = re.search(r"stage (\S+) failed", record["error"])
        record["stage"] = stage.group(1) if stage else None
    return record


def _write_status(sweep: Sweep, status: dict) -> None:
    spec = {"name": sweep.name, "params": list(sweep.params_files), "set": sweep.fixed, "grid": sweep.grid}
    files.write_text(sweep.folder.status_json, json.dumps({**spec, "runs": status}, indent=2) + "\n")


def _read_sweep_file(path) -> dict:
    spec = parameters.read_yaml(path)
    unknown = [k for k in spec if k not in SWEEP_KEYS]
    if unknown:
        raise UserError(f"sweep file {path!s}: unknown key {unknown[0]!r}; allowed: {', '.join(SWEEP_KEYS)}")
    grid = spec.get("grid", {})
    if not isinstance(grid, dict) or not all(isinstance(v, list) for v in grid.values()):
        raise UserError(f"sweep file {path!s}: 'grid' must map each key to a list of values")
    if not isinstance(spec.get("set", {}), dict) or not isinstance(spec.get("params", []), list):
        raise UserError(f"sweep file {path!s}: 'set' must be a mapping and 'params' a list of files")
    return spec


def _split_top_level(text: str) -> list[str]:
    """'a,[b,c],d' -> ['a', '[b,c]', 'd']."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def _slug(value) -> str:
    text = "-".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "empty"


def _yaml_value(value) -> str:
    """A value as --set parses it back (YAML flow style)."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()
