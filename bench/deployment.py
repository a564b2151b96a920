"""Deployment of real pruned models: the export stage on the default recipe's 2x result of both cases of
bench/recovery.py (the embedded default, and the user-style case), in a copy of each run. Per case: mAP50-95 of the
exported ONNX files (unpruned FP32, pruned FP32, pruned INT8) on the run's val split, latency in every runtime at one
thread and at all cores with the latency / MACs quotient, and the layers whose time fell least against their MACs.

    .venv/bin/python bench/recovery.py --cases user embedded --recipes recovery    # first, if not run yet
    .venv/bin/python bench/deployment.py [--runs 40]
"""

from __future__ import annotations

import argparse
import shutil

from common import publish
from prunelib.offline import cores
from prunelib.presentation.report import markdown_table
from prunelib.runs import load_run, runs_root, stages

RUNS = {"embedded": "recovery-embedded", "user": "recovery-user"}
SOURCE = "params-recovery__target_speedup-2.0"  # the default recipe at 2x
FILES = ("params.yaml", "manifest.json", "unpruned.json", "ledger.jsonl", "unpruned.pt", "final.pt")


def copy_of(case: str, threads: int):
    """A fresh copy of the case's finished run (only what the export stage reads) under runs/deployment-<case>/."""
    src = runs_root() / RUNS[case] / SOURCE
    dst = runs_root() / f"deployment-{case}" / f"threads-{threads}"
    if not (src / "final.pt").is_file():
        raise SystemExit(f"error: {src} has no final.pt; run bench/recovery.py --cases {case} --recipes recovery")
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for name in FILES:
        shutil.copy2(src / name, dst / name)
    return load_run(dst)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40, help="timed runs per model and runtime")
    ap.add_argument("--cases", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = ap.parse_args()
    deploy, speed, layers = [], [], []
    for case in args.cases:
        for threads in (1, cores()):
            run = copy_of(case, threads)
            run.params.update(latency_runs=args.runs, latency_warmup=10, latency_threads=threads)
            result = stages.export(run, log=print)
            for r in result["latency"]:
                if r["model"] != "unpruned":
                    speed.append({"case": case, "threads": threads, "model": r["model"], "runtime": r["runtime"],
                                  "MACs ratio": r["macs_speedup"], "latency ratio": r["latency_speedup"],
                                  "latency/MACs": round(r["latency_speedup"] / r["macs_speedup"], 2),
                                  "ms": r["latency_ms"]})  # fmt: skip
            if threads == 1:
                deploy += [{"case": case, **r} for r in result["deployment"]]
                worst = sorted((r for r in result["layers"] if r["macs_ratio"]),
                               key=lambda r: r["time_ratio"] / r["macs_ratio"])[:6]  # fmt: skip
                layers += [{"case": case, **r} for r in worst]
    publish("deployment", "Deploying the 2x result of the default recipe: formats, INT8, latency", deploy,
            notes="mAP50-95 measured by Ultralytics' validator on each exported file (val split); latency in "
                  "onnxruntime, one thread, batch 1.\n\n## Latency against MACs (every runtime; all cores = "
                  f"{cores()})\n\n" + markdown_table(speed) + "\n## Layers whose time fell least against their "
                  "MACs (onnxruntime profiler, one thread)\n\n" + markdown_table(layers))


if __name__ == "__main__":
    main()
