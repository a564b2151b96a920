"""The demo as a user sees it: `make demo`'s command (the staged notebooks on params/default.yaml) from a fresh runs
folder, timed stage by stage, and what its report says: MACs, latency on one thread and on all cores (onnxruntime
FP32, batch 1, re-timed by the export stage), mAP50-95 kept, the recommended file. The README's results table and
its demo timings come from here.

    .venv/bin/python bench/demo.py            # runs it under runs/bench-demo/ (about 7 minutes on 2 cores)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from common import publish

from prunelib.core.folder import outcome
from prunelib.paths import PROJECT_ROOT
from prunelib.runs import load_run

RUNS = PROJECT_ROOT / "runs" / "bench-demo"


def main() -> None:
    shutil.rmtree(RUNS, ignore_errors=True)  # nothing cached: the unpruned model measured again, as a first demo
    env = {**os.environ, "PRUNELIB_RUNS": str(RUNS)}
    t0 = time.perf_counter()
    command = [sys.executable, "-m", "prunelib", "run", "--params", "params/default.yaml"]
    subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=True)
    minutes = (time.perf_counter() - t0) / 60
    run = load_run(RUNS / "default")
    unpruned, final, export = run.read_json(run.unpruned_json), run.final_step(), run.read_json(run.export_json)
    rows = {(r["model"], r["runtime"], r["precision"]): r for r in export["deployment"]}
    before, after = rows[("unpruned", "onnxruntime", "FP32")], rows[("pruned", "onnxruntime", "FP32")]
    best, o = export["recommended"], outcome(unpruned, final)
    cores = export["all_cores"]
    table = [
        _row("GMACs", unpruned["macs"] / 1e9, final["macs"] / 1e9, f"{o['macs_speedup']:.2f}x"),
        _row("ms, onnxruntime FP32, batch 1, 1 thread", before["latency_ms"], after["latency_ms"]),
        _row(f"ms, onnxruntime FP32, batch 1, all {cores} cores", before["all_cores_ms"], after["all_cores_ms"]),
        _row("latency ratio the loop measured for its goal (1 thread)", None, None, f"{final['latency_speedup']:.2f}x"),
        _row("mAP50-95 (val)", unpruned["map50_95"], final["map50_95"], f"{o['retention']:.1%} kept"),
        _row(
            f"recommended file: {best['file']} ({best['runtime']} {best['precision']}), ms",
            before["latency_ms"],
            best["latency_ms"],
        ),
        _row("recommended file: mAP50-95 (val)", unpruned["map50_95"], best["map50_95"]),
    ]
    timings = run.read_json(run.timings_json)
    stages = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in timings.items())
    notes = (
        f"\nWall time of the command: {minutes:.1f} min (minutes per stage: {stages}); set-up (make install) aside.\n"
    )
    publish("demo", "The demo: `make demo`'s run on the embedded default with the built-in defaults", table, notes)


def _row(measure: str, unpruned, final, ratio: str = "") -> dict:
    """A row of the table: the two values (3 decimals) and their ratio (unpruned over final unless given)."""
    if not ratio and unpruned and final:
        ratio = f"{unpruned / final:.2f}x"
    shown = {
        "unpruned": "" if unpruned is None else f"{unpruned:.3f}",
        "final.pt": "" if final is None else f"{final:.3f}",
    }
    return {"measure": measure, **shown, "ratio": ratio}


if __name__ == "__main__":
    main()
