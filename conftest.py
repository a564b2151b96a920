"""Shared test set-up: every run of the suite writes under one temporary runs folder (PRUNELIB_RUNS), set before
any kernel starts so nbval's notebooks use it too; the network is never needed."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
RUNS = Path(os.environ.get("PRUNELIB_TEST_RUNS") or tempfile.mkdtemp(prefix="prunelib-tests-")) / "runs"
RUNS.mkdir(parents=True, exist_ok=True)
os.environ["PRUNELIB_RUNS"] = str(RUNS)

import prunelib  # noqa: E402,F401  (offline set-up before ultralytics)

SMOKE = ROOT / "params" / "smoke.yaml"


def cli(*args, timeout=900, env=None, check=False):
    """Run ``python -m prunelib ARGS`` in a fresh process; returns CompletedProcess (text)."""
    e = {**os.environ, **(env or {})}
    r = subprocess.run([sys.executable, "-m", "prunelib", *map(str, args)], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout, env=e)  # fmt: skip
    if check and r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="session")
def runs_root() -> Path:
    return RUNS


@pytest.fixture(scope="session")
def smoke_params():
    from prunelib.runs import parameters

    return parameters.load([SMOKE])


@pytest.fixture(scope="session")
def smoke_start(smoke_params):
    """The smoke data set and its embedded baseline (cached for the whole session)."""
    from prunelib.training import embedded

    data = embedded.data_yaml(smoke_params)
    model, _ = embedded.model_path(smoke_params)
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
