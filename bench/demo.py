"""The demo as a user sees it: `make demo`'s command (the staged notebooks on params/default.yaml) from a fresh runs
folder, timed stage by stage, and what its report says: MACs, latency on one thread and on all cores (onnxruntime
FP32, batch 1, re-timed by the export stage), mAP50-95 kept, the recommended file. The README's results table and
its demo timings come from here.

    .venv/bin/python bench/demo.py            # runs it under runs/bench-demo/ (about 7 minutes on 2 cores)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import publish

from prunelib.core.ledger import outcome
from prunelib.paths import PROJECT_ROOT
from prunelib.runs import load_run

RUNS = PROJECT_ROOT / "runs" / "bench-demo"
EXPORT_CHATTER = (
    "PyTorch: starting",
    "ONNX: ",
    "OpenVINO: ",
    "export success",
    "Predict:",
    "Visualize:",
    "TorchScript:",
)


def main() -> None:
    if "--table-only" in sys.argv:  # the table of the last demo run, again (the command that made it is plain)
        sys.argv.remove("--table-only")
    else:
        demo()
    tabulate(json.loads((RUNS / "console.json").read_text()))


def demo() -> None:
    """make demo's command from a fresh runs folder, its console read as it comes: what tabulate needs of it."""
    shutil.rmtree(RUNS, ignore_errors=True)  # nothing cached: the unpruned model measured again, as a first demo
    env = {**os.environ, "PRUNELIB_RUNS": str(RUNS)}
    t0 = time.perf_counter()
    command = [sys.executable, "-m", "prunelib", "run", "--params", "params/default.yaml"]
    first, console_lines, chatter = "", 0, 0
    with subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout:  # shown as it comes, the plan line kept
            print(line, end="", flush=True)
            console_lines += 1
            chatter += any(mark in line for mark in EXPORT_CHATTER)
            first = first or (line.strip() if line.startswith("Goal: ") else "")
    if process.returncode:
        sys.exit(f"the demo failed (exit {process.returncode})")
    seen = {"minutes": (time.perf_counter() - t0) / 60, "first": first, "lines": console_lines, "chatter": chatter}
    (RUNS / "console.json").write_text(json.dumps(seen))


def tabulate(seen: dict) -> None:
    minutes, first, console_lines, chatter = seen["minutes"], seen["first"], seen["lines"], seen["chatter"]
    run = load_run(RUNS / "default")
    unpruned, final, export = run.read_json(run.unpruned_json), run.final_step(), run.read_json(run.export_json)
    rows = {(r["model"], r["runtime"], r["precision"]): r for r in export["deployment"]}
    before, after = rows[("unpruned", "onnxruntime", "FP32")], rows[("pruned", "onnxruntime", "FP32")]
    best, o = export["recommended"], outcome(unpruned, final)
    cores = export["all_cores"]
    table = [
        _row("GMACs", unpruned["macs"] / 1e9, final.macs / 1e9, f"{o['macs_speedup']:.2f}x"),
        _row("ms, onnxruntime FP32, batch 1, 1 thread", before["latency_ms"], after["latency_ms"]),
        _row(f"ms, onnxruntime FP32, batch 1, all {cores} cores", before["all_cores_ms"], after["all_cores_ms"]),
        _row("latency ratio the loop measured for its goal (1 thread)", None, None, f"{final.latency_speedup:.2f}x"),
        _row("mAP50-95 (val)", unpruned["map50_95"], final.map50_95, f"{o['retention']:.1%} kept"),
        _row(
            f"recommended file: {Path(best['file']).name} ({best['runtime']} {best['precision']}), ms",
            before["latency_ms"],
            best["latency_ms"],
        ),
        _row(
            "recommended file: mAP50-95 (val)",
            unpruned["map50_95"],
            best["map50_95"],
            f"{best['map50_95'] / unpruned['map50_95']:.1%} kept",
        ),
    ]
    timings = run.read_json(run.timings_json)
    stages = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in timings.items())
    notes = (
        f"\nWall time of the command: {minutes:.1f} min (minutes per stage: {stages}); set-up (make install) aside. "
        f"Its first line: `{first}`. Lines on the console: {console_lines}, of which the exporters' own: "
        f"{chatter}.\n"
    )
    if final.landing:
        notes += f"\nWhere the loop's timed trials landed: {final.landing}.\n"
    if final.compensation:
        measured = {k: getattr(final, f"pruned_{k}_map50_95") for k in ("fold", "recalibrate", "none")}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in measured.items() if v is not None)
        notes += f"\nThe cut's repair kept: {final.compensation} (mAP50-95 as cut: {shown}).\n"
    summary = run.report_md.read_text().split("## Summary\n\n")[1].split("\n## ")[0].strip()
    notes += f"\nThe summary at the top of its report.md:\n\n{summary}\n"
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
