"""Shared test set-up: every run of the suite writes under one temporary runs folder (PRUNELIB_RUNS), set before
any kernel starts so nbval's notebooks use it too; the network is never needed.

Under pytest-xdist (``make test`` runs ``-n auto``) each worker is pinned to a core of its own before torch loads, so
the kit (which uses the cores it may run on) and every process it starts run one thread per worker: workers never
spin against each other. A test file runs whole on one worker (its module fixtures are made once); the notebooks,
which follow each other, run in one test of their own (tests/test_notebooks.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
LONGEST = ["test_tasks.py", "test_sweep.py", "test_pipeline.py", "test_notebooks.py", "test_interruption.py",
           "test_engine.py", "test_alternatives.py"]
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... under xdist
if WORKER and hasattr(os, "sched_setaffinity"):
    _cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {_cores[int(WORKER.removeprefix("gw")) % len(_cores)]})
RUNS = Path(os.environ.get("PRUNELIB_TEST_RUNS") or tempfile.mkdtemp(prefix="prunelib-tests-")) / "runs"
RUNS.mkdir(parents=True, exist_ok=True)
os.environ["PRUNELIB_RUNS"] = str(RUNS)

import prunelib  # noqa: E402,F401  (offline set-up before ultralytics)

SMOKE = ROOT / "params" / "smoke.yaml"
# The cut the mechanics tests were written against: the head whole, any channel count (the built-in defaults prune the
# head in whole blocks of the CPU's kernels, which at 64 px leaves YOLO11n's 16-channel layers nothing to cut)
MECHANICS = {"prune_head": False, "round_to": 0}


def deployed(model, runtime, precision, ms, score, total=None):
    """A deployment row (records.Deployed) fed fixed figures: named '<model>.<runtime>.<precision>', timed ms on the
    run's threads and on all cores alike, total x faster than the unpruned model in onnxruntime FP32."""
    from prunelib.deployment.records import Deployed

    return Deployed(model, runtime, precision, f"{model}.{runtime}.{precision}", score, ms, ms, None, None, total, 1.0)


def precision_drop() -> float:
    """max_precision_drop's default, from the parameter table."""
    from prunelib.core import parameters

    return parameters.BY_NAME["max_precision_drop"].default


def cli(*args, timeout=900, env=None, check=False):
    """Run ``python -m prunelib ARGS`` in a fresh process; returns CompletedProcess (text)."""
    e = {**os.environ, **(env or {})}
    r = subprocess.run([sys.executable, "-m", "prunelib", *map(str, args)], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout, env=e)  # fmt: skip
    if check and r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def pytest_collection_modifyitems(items):
    """The longest test files first, so that under xdist (``--dist loadfile``) no worker is left with one at the end."""
    items.sort(key=lambda item: LONGEST.index(item.path.name) if item.path.name in LONGEST else len(LONGEST))


@pytest.fixture(scope="session")
def runs_root() -> Path:
    return RUNS


@pytest.fixture(scope="session")
def smoke_params():
    from prunelib.core import parameters

    return parameters.load([SMOKE])


@pytest.fixture(scope="session")
def smoke_start(smoke_params):
    """The smoke data set and its embedded baseline (cached for the whole session)."""
    from prunelib.core.settings import Settings
    from prunelib.training import embedded

    settings = Settings.of(smoke_params)
    data = embedded.data_yaml(settings)
    model, _ = embedded.model_path(settings)
    return {"data": data, "model": model}


def published_from(final, src) -> bool:
    """Is checkpoint final what the kit publishes from checkpoint src: the same weights, blocks folded?"""
    import torch

    from prunelib.surgery.folding import fold

    a = torch.load(final, map_location="cpu", weights_only=False)["model"]
    b = torch.load(src, map_location="cpu", weights_only=False)["model"]
    fold(b)
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def tree_snapshot(root: Path) -> dict:
    """{relative path: (size, mtime_ns)} of every file under root: to prove nothing was written."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def conv_channels(model) -> dict[str, int]:
    """Output channels of every Conv2d, by module name: what the tests compare before and after a cut."""
    import torch.nn as nn

    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
