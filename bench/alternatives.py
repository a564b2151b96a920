"""Pruned or stock: does the pruned model beat what a user would deploy instead? The user's command (the built-in
defaults) on each case, then its export stage with two stock alternatives the kit makes (prunelib.runs.stock): the
model's own family at the width whose measured latency matches final.pt's, trained from scratch on the case's data
for the original's training epochs plus the run's fine-tuning epochs, with the original's recipe; once alone and
once distilled from the unpruned model. Every run also has quantization alone (the unpruned model in INT8).

Cases: embedded (the kit's YOLO11n on its synthetic set, 320 px), user (a YOLO11n trained with plain Ultralytics on
another synthetic set, bench/user_case.py), real (a YOLOv8n trained by others on real molecule drawings, 640 px,
147 classes, bench/real_case.py). Accuracy: mAP50-95 on val (nothing trains on it; every model's best epoch is
chosen on it alike) and, where the case has one, on held-out images nothing trained or selected on.

    .venv/bin/python bench/alternatives.py [--cases embedded real] [--stock scratch distilled]

Made once per case under runs/bench-alternatives-<case>/ (rows.json), then reused when it holds the stock asked.
"""

from __future__ import annotations

import argparse
import json

import real_case
import user_case
from common import publish

from prunelib.core.settings import Training
from prunelib.deployment.alternatives import Verdict
from prunelib.runs import open_run, stages, stock
from prunelib.training.validation import evaluate

LOOP = ["00-baseline", "20-replace-c3k2", "30-prune-loop"]
STOCK = {"scratch": False, "distilled": True}  # the stock alternatives: name -> distilled from the unpruned model
# which each case makes unless --stock says: the real case's distilled training (55 epochs at 640 px with a teacher)
# costs about an hour on 2 cores and waits for a session of its own
VARIANTS = {"embedded": ["scratch", "distilled"], "user": ["scratch", "distilled"], "real": ["scratch"]}
COLUMNS = ("case", "model", "made by", "file", "GMACs", "ms (1 thread)", "ms (all cores)", "mAP50-95 val",
           "mAP50-95 held-out", "the pruned file against it")  # fmt: skip


def case_settings(case: str) -> dict:
    """The case as a user gives it: the embedded default (nothing), or a model with its data."""
    if case == "embedded":
        return {}
    if case == "user":
        return {"model": str(user_case.model(converged=True)), "data": str(user_case.data_yaml())}
    return {"model": str(real_case.model()), "data": str(real_case.data_yaml()), "finetune_epochs": 5}


def holdout(case: str):
    return {"real": real_case.holdout_yaml, "user": user_case.holdout_yaml}.get(case, lambda: None)()


def measure(case: str, variants: list[str]) -> list[dict]:
    """The case's run, its stock alternatives and its export stage; cached in the run folder (rows.json)."""
    name = f"bench-alternatives-{case}"
    run = open_run([], {"run_name": name, **case_settings(case)})
    done = run.dir / "rows.json"
    if done.is_file() and set(variants) <= set(json.loads(done.read_text())["variants"]):
        return json.loads(done.read_text())["rows"]
    stages.run_stages(run, LOOP)
    made = [stock.make(run, out=run.dir / f"stock-{v}", distill=STOCK[v]) for v in variants]
    run = open_run([], {"run_name": name, **case_settings(case), "alternatives": [str(p) for p in made]})
    stages.run_stages(run, ["50-export"])
    rows = _rows(case, run)
    done.write_text(json.dumps({"variants": variants, "rows": rows}))
    return rows


def _rows(case: str, run) -> list[dict]:
    """A row per contender: the unpruned model, quantization alone, the pruned model (final.pt in onnxruntime FP32
    and the recommended file) and each stock alternative, with the verdict of the recommended file against it."""
    export = run.read_json(run.export_json)
    deployment, best = export["deployment"], export["recommended"]
    verdicts = {v["alternative"]: Verdict.of(v) for v in export["alternatives"]}
    by_file = {r["file"]: r for r in deployment}
    fp32 = {r["model"]: r for r in deployment if (r["runtime"], r["precision"]) == ("onnxruntime", "FP32")}
    chosen = [("unpruned", "the original", fp32["unpruned"], None)]
    if "unpruned INT8" in verdicts:
        v = verdicts["unpruned INT8"]
        chosen.append(("unpruned INT8", "quantization alone", by_file[v.file], v))
    chosen.append(("pruned", "the kit (final.pt)", fp32["pruned"], None))
    if best:
        chosen.append(("pruned", "the kit (recommended file)", best, None))
    for label, v in verdicts.items():
        if v.kind == "yours":  # the stock models, passed as alternatives
            record = run.read_json(run.dir / label / "stock.json")
            how = f"{record['epochs']} epochs from scratch" + (", distilled" if record["distilled"] else "")
            chosen.append((label, f"stock, {record['width_factor']:.2f}x width, {how}", fp32[label], v))
    training, held, task = Training.of(run.params), holdout(case), stages.task_of(run)
    macs = {r["model"]: r["macs"] for r in export["latency"]}
    rows = []
    for model, how, r, verdict in chosen:
        score = ""
        if held:
            path = run.dir.parent.parent / r["file"]
            out = run.dir / "holdout" / f"{model}-{r['runtime']}-{r['precision']}"
            score = round(evaluate(path, training, held, out, task)["map50_95"], 4)
        said = f"{verdict.outcome} it: {verdict.figures()}" if verdict else ""
        cells = (case, model, how, f"{r['runtime']} {r['precision']}", round(macs[r["model"]] / 1e9, 2),
                 r["latency_ms"], r["all_cores_ms"], r["map50_95"], score, said)  # fmt: skip
        rows.append(dict(zip(COLUMNS, cells)))
    return rows


if __name__ == "__main__":
    cli = argparse.ArgumentParser()
    cli.add_argument("--cases", nargs="+", default=["embedded", "user", "real"], choices=["embedded", "user", "real"])
    cli.add_argument("--stock", nargs="+", choices=list(STOCK), help="default: the case's VARIANTS")
    args = cli.parse_args()
    table = []
    for case in args.cases:
        table += measure(case, args.stock or VARIANTS[case])
    publish(
        "alternatives",
        "Pruned or stock: the pruned model beside what a user would deploy instead",
        table,
        "Each case: the user's command (the built-in defaults: a 2x latency goal in onnxruntime FP32 on one thread), "
        "then its export stage with the stock alternatives as `alternatives`. Stock: the case model's own family "
        "at the width whose measured latency matches final.pt's (bisected, prunelib.runs.stock), trained from "
        "scratch on the case's data with the original's recipe (its checkpoint's train_args) for the original's "
        "epochs plus the run's fine-tuning epochs; distilled: the same with Ultralytics' distillation from the "
        "unpruned model. Quantization alone: the unpruned model's fastest INT8 file. The last column: the pruned "
        "model's recommended file against that contender (beats = at least as accurate at equal or lower latency; "
        "loses to = the contender is; trades with = neither), from the run's export.json.",
    )
