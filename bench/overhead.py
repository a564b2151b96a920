"""Overhead: the share of each step's wall time spent outside fine-tuning and validation (graph building and
pruning, counting, saving), the whole pipeline's time by stage, and a notebook stage's start-up cost.

Reads a finished run (default runs/default, from `make demo`).

    .venv/bin/python bench/overhead.py [--run runs/default]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat

from common import publish
from prunelib.paths import resolve
from prunelib.presentation.report import markdown_table
from prunelib.runs import load_run
from prunelib.runs.pipeline import KERNEL


def kernel_start_seconds(repeats: int = 3) -> float:
    """papermill executing a one-cell notebook: the cost each stage pays before its own work."""
    import papermill as pm

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import prunelib")]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "empty.ipynb"
        nbformat.write(nb, src)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            pm.execute_notebook(str(src), str(Path(tmp) / "out.ipynb"), kernel_name=KERNEL, progress_bar=False)
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/default")
    args = ap.parse_args()
    run = load_run(resolve(args.run))
    rows = []
    for r in run.read_ledger():
        total = r.seconds_total or (r.seconds_prune + r.seconds_finetune + r.seconds_validate)
        other = total - r.seconds_finetune - r.seconds_validate
        rows.append({"step": r.label, "total s": round(total, 1), "fine-tune s": round(r.seconds_finetune, 1),
                     "validate s": round(r.seconds_validate, 1), "graph+prune s": round(r.seconds_prune, 2),
                     "count MACs/channels s": round(r.seconds_measure, 2),
                     "saving and rest s": round(other - r.seconds_prune - r.seconds_measure, 2),
                     "overhead share": f"{other / total:.1%}"})  # fmt: skip
    timings = run.read_json(run.timings_json) or {}
    start = kernel_start_seconds()
    stages = [{"stage": k, "seconds": v, "share": f"{v / sum(timings.values()):.1%}"} for k, v in timings.items()]
    stages.append({"stage": "(each stage's kernel start-up + import prunelib)", "seconds": round(start, 2),
                   "share": f"{len(timings) * start / max(sum(timings.values()), 1e-9):.1%} in all"})
    publish("overhead", f"Overhead of run {run.name!r}", rows,
            notes="## Pipeline time by stage\n\n" + markdown_table(stages))


if __name__ == "__main__":
    main()
