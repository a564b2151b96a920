"""The committed notebooks, executed top to bottom by nbval, their marked outputs compared (sanitized by
tests/nbval-sanitize.cfg). One pytest process of their own, in order: each notebook needs the run the ones before it
made, and under xdist the cells of one notebook must share one kernel. ``pytest --nbval-lax notebooks`` runs the
same on its own, cell by cell."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # trains or runs the pipeline: make test, not make check

NBVAL = ["--nbval-lax", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval-sanitize.cfg"]


def test_every_notebook_runs_and_its_checked_outputs_match(runs_root):
    env = {**os.environ, "PRUNELIB_TEST_RUNS": str(runs_root.parent)}  # the same runs folder as this session
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", *NBVAL, "notebooks"], cwd=ROOT,
                       capture_output=True, text=True, timeout=1200, env=env)  # fmt: skip
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and " failed" not in r.stdout and " skipped" not in r.stdout
