"""The staged pipeline: the notebooks under notebooks/, executed in order by papermill into the run folder.

Parameters are checked and the run folder opened before any stage starts. Each stage's notebook gets, after its
``parameters`` cell, what identifies the run (``run_name`` and ``runs_dir``; the first stage also the parameter
files and overrides, so a notebook opened in JupyterLab can start a run itself); its executed copy is written to
``runs/<run>/NN-stage.ipynb``. The notebooks call the stage functions (prunelib.runs.stages) and display. A failing
stage stops the run with a message naming the stage and the cell; its partly executed notebook is kept.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import nbformat
import papermill as pm
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from traitlets import default

from prunelib.core.folder import LOCK_ENV, RUNS_ENV, Run
from prunelib.errors import UserError
from prunelib.paths import NOTEBOOKS_DIR, PROJECT_ROOT, relative, resolve
from prunelib.runs import plan
from prunelib.runs.opening import open_run
from prunelib.runs.stages import STAGES, run_stages

COMPARE = "compare"  # the notebook comparing the runs of a sweep (or of a runs folder); not a stage of a run
KERNEL = "python3"  # the ipykernel of the running interpreter (jupyter_client maps 'python' to sys.executable)


class LocalKernelManager(KernelManager):
    """Kernels on this machine over Unix sockets (IPC) of their own, not TCP: nothing listens on a port, ipykernel
    has no reason to warn about unencrypted TCP at every stage, and kernels started at once by parallel runs never
    share a socket path."""

    @default("transport")
    def _local_transport(self):
        return "ipc"

    @default("ip")
    def _own_socket_path(self):
        return os.path.join(tempfile.gettempdir(), f"prunelib-kernel-{uuid.uuid4().hex[:12]}-ipc")


def select_stages(spec: str | None) -> list[str]:
    """'30,40' or '30-prune-loop' -> stage names; None -> all."""
    if not spec:
        return list(STAGES)
    chosen = []
    for item in str(spec).split(","):
        item = item.strip()
        match = [s for s in STAGES if s == item or s.split("-", 1)[0] == item.zfill(2)]
        if not match:
            raise UserError(f"--stages: {item!r} is not a stage; allowed: {', '.join(STAGES)} (or their numbers)")
        chosen.extend(m for m in match if m not in chosen)
    return [s for s in STAGES if s in chosen]


def run_pipeline(params_files=(), overrides=None, stages=None, new_run=False, log=print) -> Run:
    """Open (or resume) the run, then execute the chosen stages' notebooks in order."""
    chosen = select_stages(stages)
    files = [str(resolve(f)) for f in params_files]
    run = open_run(files, overrides, new_run=new_run)
    identity = {
        "run_name": run.name,
        "runs_dir": relative(run.dir.parent),
        "params_files": [relative(f) for f in files],
        "overrides": {k: v for k, v in (overrides or {}).items() if k != "run_name"},
        "announce": False,
    }
    with run.lock(), _environ(LOCK_ENV, str(run.dir.resolve())):  # the kernels work under this process's lock
        plan.announce(run, log)
        log(f"Run {run.name!r} in {run.rel(run.dir)}: stages {', '.join(chosen)}")
        run_stages(run, chosen, log, do=lambda stage: execute_stage(run, stage, identity))
    return run


def execute_stage(run: Run, stage: str, identity: dict) -> Path:
    """Execute one stage's notebook into the run folder; return the executed copy's path."""
    return execute(stage, run.notebook(stage), identity, f"stage {stage}")


def execute(name: str, out: Path, parameters: dict, what: str) -> Path:
    """Execute notebooks/<name>.ipynb into out with those of the parameters its parameters cell declares."""
    _use_this_interpreter()
    src = NOTEBOOKS_DIR / f"{name}.ipynb"
    declared = pm.inspect_notebook(str(src))
    try:
        pm.execute_notebook(
            str(src),
            str(out),
            parameters={k: v for k, v in parameters.items() if k in declared},
            kernel_name=KERNEL,
            cwd=str(PROJECT_ROOT),
            progress_bar=False,
            log_output=True,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
            kernel_manager_class=LocalKernelManager,
        )
    except pm.PapermillExecutionError as e:
        raise UserError(
            f"{what} failed in cell {e.exec_count} ({e.ename}: {e.evalue}); "
            f"the partly executed notebook is kept at {relative(out)}"
        ) from None
    return out


@contextmanager
def _environ(key: str, value: str):
    """os.environ[key] = value for the duration (child processes see it), then as it was."""
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _use_this_interpreter() -> None:
    """Kernels start from this interpreter's environment, whatever the user's PATH or Jupyter setup."""
    bindir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bindir + os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def refresh_sources(log=print) -> None:
    """Re-execute every source notebook top to bottom with its default parameters (in a temporary runs folder) and
    save its outputs in place: the clean, small outputs nbval compares against (see clean_outputs)."""
    _use_this_interpreter()
    with tempfile.TemporaryDirectory() as tmp, _environ(RUNS_ENV, str(Path(tmp) / "runs")):
        for name in [*STAGES, COMPARE]:
            path = NOTEBOOKS_DIR / f"{name}.ipynb"
            nb = nbformat.read(path, as_version=4)
            NotebookClient(
                nb,
                kernel_name=KERNEL,
                resources={"metadata": {"path": str(PROJECT_ROOT)}},
                record_timing=False,
                timeout=1800,
                kernel_manager_class=LocalKernelManager,
            ).execute()
            for cell in nb.cells:
                clean_outputs(cell)
            nbformat.write(nb, path)
            log(f"refreshed {relative(path)}")


CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
MAX_KEPT_PNG = 200_000  # characters of base64 (~146 kB): a larger figure is dropped from the committed source


def clean_outputs(cell) -> None:
    """Keep what a reader and nbval need: all outputs of checked cells, displays (tables, figures up to
    MAX_KEPT_PNG, a note in a larger one's place) of the others; drop the others' logs and progress bars (they hold
    times and local paths) and timing metadata."""
    cell.get("metadata", {}).pop("execution", None)
    if cell.get("cell_type") != "code" or CHECK_MARK in cell.get("source", ""):
        return
    cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("output_type") in ("display_data", "execute_result")]
    for o in cell["outputs"]:
        png = o.get("data", {}).get("image/png", "")
        if len(png) > MAX_KEPT_PNG:  # a sheet of images (detections.png): the run folder holds it, not the source
            o["data"] = {
                "text/plain": f"(a {len(png) * 3 // 4 // 1024} kB figure, not kept in the source notebook: "
                f"the run folder holds it)"
            }
            o.get("metadata", {}).pop("image/png", None)
