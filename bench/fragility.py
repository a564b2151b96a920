"""How much of a cut a model survives before any recovery: the real case (a YOLOv8n trained by others,
bench/real_case.py) beside the user-style case (a YOLO11n trained with plain Ultralytics, bench/user_case.py), each
cut once by a small share of its channels, head pruned or whole, with no fine-tuning and no BatchNorm re-estimation;
then every prunable layer cut alone by LAYER_SHARE (the kit's sensitivity scan). Each with channel counts rounded as
the defaults do (round_to: auto, whole blocks of this CPU's channel block) and not rounded (round_to: 0):
Torch-Pruning rounds what a layer keeps down to a multiple, so on a nano model's narrow layers a small share can
become a whole block. Where even a 1.3x latency cut of the real model leaves nothing
(results/alternatives-real-gentle.md), this says whether it breaks at any cut, at one layer, and how much of it is
the rounding.

    .venv/bin/python bench/fragility.py

Made under runs/bench-fragility-*/, then reused (the scan is kept in the 5 % head-pruned run's sensitivity.json).
"""

from __future__ import annotations

import real_case
import user_case
from common import publish

from prunelib.core.folder import Run
from prunelib.core.ledger import Step, prune_steps
from prunelib.runs import open_run, sensitivity, stages

SHARES = (0.05, 0.1, 0.2)  # of the prunable channels, in one step
LAYER_SHARE = 0.1  # of one layer's channels, the others kept (prunelib.runs.sensitivity.scan)
ROUNDING = ("auto", 0)  # round_to: the default, and any channel count
CASES = {
    "real": lambda: (real_case.model(), real_case.data_yaml()),
    "user": lambda: (user_case.model(converged=True), user_case.data_yaml()),
}
LOOP = ["00-baseline", "20-replace-c3k2", "30-prune-loop"]


def settings(case: str, share: float, head: bool, round_to) -> dict:
    rounded = "" if round_to == "auto" else f"-round{round_to}"
    named = "" if case == "real" else f"{case}-"
    model, data = CASES[case]()
    return {
        "run_name": f"bench-fragility-{named}{share}-{'head' if head else 'whole'}{rounded}",
        "round_to": round_to,
        "model": str(model),
        "data": str(data),
        "target_prune_rate": share,
        "target_latency_speedup": 0.0,
        "iterative_steps": 1,
        "prune_head": head,
        "finetune_epochs": 0,
        "bn_recalibration": 0,
        "max_map_drop": 1.0,
    }


def cut(case: str, share: float, head: bool, round_to) -> Run:
    """The case cut once by share of its prunable channels (stages 00-30, made once, then reused)."""
    run = open_run([], settings(case, share, head, round_to))
    stages.run_stages(run, LOOP)
    return run


def row(case: str, round_to, what: str, unpruned: float, score: float, step: Step | None = None) -> dict:
    return {
        "case": case,
        "round_to": round_to,
        "what is cut": what,
        "channels pruned": f"{step.channel_ratio:.1%}" if step else "",
        "MACs speed-up": round(step.speedup, 2) if step else "",
        "mAP50-95 unpruned": round(unpruned, 4),
        "mAP50-95 as cut": round(score, 4),
        "kept": f"{score / unpruned:.1%}",
    }


def rows_of(case: str, round_to) -> list[dict]:
    """The case's cuts at round_to, head whole, then pruned; then each prunable layer cut alone by LAYER_SHARE, in
    the smallest head-pruned cut's run."""
    rows, runs = [], {}
    for head in (False, True):
        for share in SHARES:
            run = runs[share, head] = cut(case, share, head, round_to)
            step = prune_steps(run.read_ledger())[-1]
            what = f"{share:.0%} of the prunable channels, head {'pruned' if head else 'whole'}"
            rows.append(row(case, round_to, what, _unpruned(run), step.pruned_map50_95, step))
    scanned = runs[SHARES[0], True]
    for layer, scores in sensitivity.scan(scanned, CASES[case]()[1], every_layer=True, ratios=[LAYER_SHARE]).items():
        what = f"{LAYER_SHARE:.0%} of layer {layer} alone"
        rows.append(row(case, round_to, what, _unpruned(scanned), scores[LAYER_SHARE]))
    return rows


def _unpruned(run: Run) -> float:
    return run.read_json(run.unpruned_json)["map50_95"]


if __name__ == "__main__":
    rows = [row for case in CASES for round_to in ROUNDING for row in rows_of(case, round_to)]
    publish(
        "fragility",
        "How much of a cut a model survives before any recovery: the model trained by others beside a user's",
        rows,
        "real: a YOLOv8n trained by others (147 classes, 640 px); user: a YOLO11n "
        "trained with plain Ultralytics (3 classes, 256 px). "
        "Each cut in one step with the kit's importance (no fine-tuning, no BatchNorm re-estimation), validated on "
        "val as it leaves the pruner; kept = as cut / unpruned. round_to auto: what a layer keeps rounded down to a "
        "multiple of this CPU's channel block (the default); 0: any count. Channels pruned: of the prunable "
        "channels the run counts. The layers: each prunable layer cut alone (the rest, the head's hidden layers "
        "included, kept), in the 5 % head-pruned run.",
    )
