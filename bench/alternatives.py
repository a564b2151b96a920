"""Pruned or stock: does the pruned model beat what a user would deploy instead? The user's command (the built-in
defaults) on each case, then its export stage with two stock alternatives the kit makes (prunelib.runs.stock): the
model's own family at the width whose measured latency matches final.pt's, trained from scratch on the case's data
for the original's training epochs plus the run's fine-tuning epochs, with the original's recipe; once alone and
once distilled from the unpruned model. Every run also has the unpruned model at a lower precision alone (its
fastest INT8 or BF16 file).

Cases: embedded (the kit's YOLO11n on its synthetic set, 320 px), user (a YOLO11n trained with plain Ultralytics on
another synthetic set, bench/user_case.py), real (a YOLOv8n trained by others on real molecule drawings, 640 px,
147 classes, bench/real_case.py); real-gentle*: the real case with a 1.3x latency goal, fine-tuned as the defaults do
or as-is (no fine-tuning, no BatchNorm re-estimation), the head pruned or whole, or the backbone spared (each layer's
share of the cut from a sensitivity scan). embedded-long: the embedded case fine-tuned as long as its stock models
train (110 epochs), against the same stock models (the embedded case's, not trained again): does a longer recovery
make the pruned model win? Accuracy: mAP50-95 on val (nothing trains on it; every model's best epoch is chosen on it
alike) and, where the case has one, on held-out images nothing trained or selected on.

    .venv/bin/python bench/alternatives.py [--cases embedded real ...] [--stock scratch distilled] [--table NAME]

One table per invocation (bench/results/<NAME>.md, alternatives by default): each case's figures come from one run, so
cases measured in different sessions go to tables of their own (results/alternatives-user.md: the user-style case).

Made once per case under runs/bench-alternatives-<case>/, then reused when it holds the stock asked.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import real_case
import user_case
import common
from cases import holdout
from common import publish

from prunelib.core.folder import Run, runs_root
from prunelib.deployment import alternatives
from prunelib.deployment.alternatives import LOWER_PRECISION, Verdict
from prunelib.deployment.records import Deployed, Recommended
from prunelib.runs import open_run, stages, stock
from prunelib.training.agreement import agreement
from prunelib.training.datasets import check_data_yaml
from prunelib.training.validation import evaluate

LOOP = ["00-baseline", "20-replace-c3k2", "30-prune-loop"]
STOCK = {"scratch": False, "distilled": True}  # the stock alternatives: name -> distilled from the unpruned model
# which each case makes unless --stock says: the real case's stock models train 55 epochs from scratch at 640 px,
# about 1.3 minutes an epoch on 2 cores (measured 2026-12-05), so each was made in a run of its own (the distilled
# one: --cases real --stock distilled --table alternatives-real-distilled)
VARIANTS = {
    "embedded": ["scratch", "distilled"],
    "embedded-long": [],
    "user": ["scratch", "distilled"],
    "real": ["scratch"],
    "real-gentle": [],
    "real-gentle-as-is": [],
    "real-gentle-head-whole": [],
    "real-gentle-head-whole-as-is": [],
    "real-gentle-spared": [],
    "real-gentle-spared-as-is": [],
}
CASES = list(VARIANTS)
REUSES = {"embedded-long": "embedded"}
# cases shown beside their control (the unpruned model fine-tuned as long as the pruned one: what training alone
# adds); the real case's is in results/defaults.md (5 epochs)
CONTROLLED = ("embedded", "embedded-long", "user")
LONG_EPOCHS = 110  # embedded-long's fine-tuning: as many epochs as the stock models train (100 + 10)
# where the real case's 2x cut collapses, a smaller cut before a lower precision (a 1.3x latency goal): fine-tuned as
# the defaults do, and as-is (no fine-tuning, BatchNorm statistics left as trained: on the real case even fine-tuning
# alone or statistics re-estimated on the drawings cost the unpruned model most of its score,
# results/real-case-finetuning.md); each with the head pruned (the default) and whole (a gentler allocation), and
# with the backbone spared (results/fragility.md: one backbone layer cut by 10 % alone loses 80-90 % of its score, a
# neck layer 9-17 %): each layer's share from a sensitivity scan at a 10 % cut, in any channel count, without
# BatchNorm re-estimation (on this model it costs most of the score, so every scanned layer would look fragile)
AS_IS = {"finetune_epochs": 0, "bn_recalibration": 0}
SPARED = {"layer_ratios": "sensitivity", "sensitivity_ratios": [0.1], "round_to": 0, "bn_recalibration": 0}
GENTLE = {
    "real-gentle": {},
    "real-gentle-as-is": AS_IS,
    "real-gentle-head-whole": {"prune_head": False},
    "real-gentle-head-whole-as-is": {"prune_head": False, **AS_IS},
    "real-gentle-spared": SPARED,
    "real-gentle-spared-as-is": {**SPARED, "finetune_epochs": 0},
}
GENTLE_SPEEDUP = 1.3
COLUMNS = ("case", "model", "made by", "file", "GMACs", "ms (1 thread)", "ms (all cores)", "mAP50-95 val",
           "mAP50-95 held-out", "mAP50 held-out", "P / R / F1 against the original held-out",
           "the pruned file against it")  # fmt: skip


def case_settings(case: str) -> dict:
    """The case as a user gives it: the embedded default (nothing), or a model with its data."""
    if case == "embedded":
        return {}
    if case == "embedded-long":
        return {"finetune_epochs": LONG_EPOCHS}
    if case == "user":
        return {"model": str(user_case.model(converged=True)), "data": str(user_case.data_yaml())}
    # max_map_drop 1: final.pt is the 2x cut whatever it keeps (the default budget would keep the unpruned model)
    real = {
        "model": str(real_case.model()),
        "data": str(real_case.data_yaml()),
        "finetune_epochs": 5,
        "max_map_drop": 1.0,
    }
    if case in GENTLE:
        return {**real, "target_latency_speedup": GENTLE_SPEEDUP, **GENTLE[case]}
    return real


def measure(case: str, variants: list[str], again: bool = False) -> list[dict]:
    """The case's run, its stock alternatives and its export stage (each skipped when made, the export stage done
    again when asked), then its rows."""
    name = f"bench-alternatives-{case}"
    folder = runs_root() / name
    reused = (
        [runs_root() / f"bench-alternatives-{REUSES[case]}" / f"stock-{v}" for v in STOCK] if case in REUSES else []
    )
    wanted = [str(stock.kept(folder / f"stock-{v}")) for v in variants]
    wanted += [str(stock.kept(f)) for f in reused if stock.kept(f).is_file()]
    stored = Run(folder, {}).stored_params().get("alternatives", [])  # before open_run rewrites what may change
    if again or not ((folder / "export.json").is_file() and set(wanted) <= set(stored)):
        run = open_run([], {"run_name": name, **case_settings(case)})
        stages.run_stages(run, LOOP)
        made = [stock.make(run, out=run.dir / f"stock-{v}", distill=STOCK[v]) for v in variants]
        made += [Path(p) for p in wanted[len(made) :]]
        run = open_run([], {"run_name": name, **case_settings(case), "alternatives": [str(p) for p in made]})
        stages.run_stages(run, ["50-export"])
    else:
        run = open_run([], {"run_name": name, **case_settings(case), "alternatives": stored})
    return _rows(case, run)


def _rows(case: str, run) -> list[dict]:
    """A row per contender and file: the unpruned model (onnxruntime FP32), at a lower precision alone (its fastest
    INT8 or BF16 file), the pruned model (final.pt in onnxruntime FP32, where the goal was timed, and the recommended
    file), its control where the case has one (validated in torch, not deployed) and each stock alternative (in
    onnxruntime FP32, where its width was matched and the verdict is drawn: _verdicts)."""
    export = run.read_json(run.export_json)
    best = export["recommended"]
    verdicts = {v.alternative: v for v in _verdicts(run, export)}
    by_file = {(r["file"], r["runtime"], r["precision"]): r for r in export["deployment"]}  # an IR has FP32 and BF16
    fp32 = {r["model"]: r for r in export["deployment"] if (r["runtime"], r["precision"]) == ("onnxruntime", "FP32")}
    macs = {r["model"]: round(r["macs"] / 1e9, 2) for r in export["latency"]}
    rows = []

    def deployed(model: str, how: str, r: dict, verdict: Verdict | None = None, sized_in: str = "") -> None:
        said = f"{verdict.outcome} it: {verdict.figures()}" if verdict else ""
        known = verdict and verdict.pruned_runtime  # records of earlier runs name no place
        compared = alternatives.place(verdict.pruned_runtime, verdict.pruned_precision) if known else ""
        compared = compared or (alternatives.place(best["runtime"], best["precision"]) if best else "")
        if verdict and sized_in and sized_in != compared:
            said = f"no verdict (its width was matched in {sized_in}): {verdict.figures()}"
        held = _held_out(case, run, r["file"])
        cells = (case, model, how, f"{r['runtime']} {r['precision']}", macs[r["model"]], r["latency_ms"],
                 r["all_cores_ms"], r["map50_95"], held.get("map50_95", ""), held.get("map50", ""),
                 held.get("agreement", ""), said)  # fmt: skip
        rows.append(dict(zip(COLUMNS, cells)))

    deployed("unpruned", "the original", fp32["unpruned"])
    for v in verdicts.values():
        if v.kind == LOWER_PRECISION:
            file = by_file[(v.file, v.runtime, v.precision)]
            deployed(v.alternative, "the original at a lower precision alone", file, v)
    deployed("pruned", "the kit (final.pt)", fp32["pruned"])
    if best:
        deployed("pruned", "the kit (recommended file)", best)
    if case in CONTROLLED:
        epochs = sum(r.epochs for r in run.read_ledger())
        control = common.control(case, run, epochs, holdout(case))
        held = round(control["held-out"], 4) if "held-out" in control else ""
        how = f"the original + {epochs} epochs of fine-tuning alike (torch)"
        cells = (case, "control", how, "", macs["unpruned"], "", "", round(control["val"], 4), held, "", "", "")
        rows.append(dict(zip(COLUMNS, cells)))
    trained = {alternatives.label_of(p): Path(p).parent.parent for p in run.settings.alternatives.alternatives}
    for label, v in verdicts.items():
        if v.kind == "yours":  # the stock models, passed as alternatives: stock.json beside their weights
            record = run.read_json(trained[label] / "stock.json")
            how = (
                f"stock, {record['width_factor']:.2f}x width ({record['latency_ratio']:.2f}x final.pt's latency when "
                f"sized), {record['epochs']} epochs from scratch"
            )
            how += ", distilled" if record["distilled"] else ""
            sized_in = alternatives.place(record["runtime"], record["precision"])
            judged = by_file[(v.file, v.runtime, v.precision)]  # where its width was matched, when it has a file there
            if judged is not fp32[label]:
                deployed(label, how, fp32[label])
            deployed(label, how, judged, v, sized_in)
    return rows


def _verdicts(run, export: dict) -> list[Verdict]:
    """The run's verdicts drawn again with each stock model (passed as an alternative, its stock.json beside its
    weights) judged where its width was matched (alternatives.verdicts' matched_in), as the kit's own stock
    alternative is."""
    trained = {alternatives.label_of(p): Path(p).parent.parent for p in run.settings.alternatives.alternatives}
    sized = {label: run.read_json(folder / "stock.json") for label, folder in trained.items()}
    matched_in = {label: alternatives.place(r["runtime"], r["precision"]) for label, r in sized.items() if r}
    kinds = {v["alternative"]: v["kind"] for v in export["alternatives"] if v["kind"] != LOWER_PRECISION}
    rows = [Deployed.of(d) for d in export["deployment"]]
    best = Recommended.of(export["recommended"]) if export["recommended"] else None
    drawn = alternatives.verdicts(rows, best, kinds, run.settings.export.max_precision_drop, matched_in)
    stored = {(v.alternative, v.file, v.pruned_file): v for v in map(Verdict.of, export["alternatives"])}
    drawn = [  # the same two files as the run compared: its interval of their difference holds
        dataclasses.replace(v, difference_low=kept.difference_low, difference_high=kept.difference_high)
        if (kept := stored.get((v.alternative, v.file, v.pruned_file)))
        else v
        for v in drawn
    ]
    return drawn or list(stored.values())


def _held_out(case: str, run, file: str) -> dict:
    """A deployed file on the case's held-out images ({} without): its mAP50-95, mAP50, and its boxes matched with
    the unpruned model's detections (prunelib.training.agreement: precision / recall / F1), made once
    (holdout.json)."""
    held = holdout(case)
    if not held:
        return {}
    scores = run.read_json(run.dir / "holdout.json") or {}
    if not isinstance(scores.get(file), dict):  # a score of an earlier version: mAP50-95 alone
        path, task = run.dir.parent.parent / file, stages.task_of(run)
        metrics = evaluate(path, run.settings.training, held, run.dir / "holdout" / Path(file).name, task)
        images = check_data_yaml(held)["val"]
        agreed = agreement(path, run.unpruned_pt, images, run.settings.training.imgsz, task)
        scores[file] = {
            "map50_95": round(metrics["map50_95"], 4),
            "map50": round(metrics["map50"], 4),
            "agreement": f"{agreed.precision:.2f} / {agreed.recall:.2f} / {agreed.f1:.2f}",
        }
        run.write_json(run.dir / "holdout.json", scores)
    return scores[file]


if __name__ == "__main__":
    cli = argparse.ArgumentParser()
    cli.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    cli.add_argument("--stock", nargs="*", choices=list(STOCK), help="default: the case's VARIANTS")
    cli.add_argument("--again", action="store_true", help="do the export stage again (time every file anew)")
    cli.add_argument("--table", default="alternatives", help="the table's name under bench/results/")
    args = cli.parse_args()
    table = []
    for case in args.cases:
        table += measure(case, VARIANTS[case] if args.stock is None else args.stock, args.again)
    publish(
        args.table,
        "Pruned or stock: the pruned model beside what a user would deploy instead",
        table,
        "Each case: the user's command (the built-in defaults: a 2x latency goal in onnxruntime FP32 on one thread), "
        "then its export stage with the stock alternatives as `alternatives`. Stock: the case model's own family "
        "at the width whose measured latency matches final.pt's (bisected, prunelib.runs.stock), trained from "
        "scratch on the case's data with the original's recipe (its checkpoint's train_args) for the original's "
        "epochs plus the run's fine-tuning epochs; distilled: the same with Ultralytics' distillation from the "
        "unpruned model. embedded-long: the embedded case fine-tuned for 110 epochs against the same stock models. "
        "Control: the unpruned model fine-tuned as long as the pruned one (validated in torch): what training alone "
        "adds. Lower precision alone: the unpruned model's fastest INT8 or BF16 file. The last column: the pruned "
        "model's recommended file against that contender (beats = at least as accurate at equal or lower latency; "
        "loses to = the contender is; trades with = neither), from the run's export.json; against a stock model, "
        "final.pt's file where the stock width was matched (onnxruntime FP32 on one thread), both run there: the "
        "recommended file may run elsewhere. One seed per row. Selection alike: the stock model keeps its best val "
        "fitness among its last epochs, as many as the pruned model's last fine-tuning had (stock.json: "
        "candidate_epochs, kept_epoch). No pretrained weights were available to the stock models (nothing is downloaded here): a "
        "user would start one from COCO weights, which likely favours it on small data sets.",
    )
