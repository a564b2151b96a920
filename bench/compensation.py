"""Compensation at the cut, before any training: each repair of a cut (prunelib.runs.loop.repairs) on the kit's
models and the model trained by others, each cut as the loop cuts it (the defaults' importance, head and channel
blocks; one step, no fine-tuning), measured on val, where `compensation: choose` decides, and on held-out images
nothing chose with:

- fold: each removed channel's mean, measured before the cut on 256 letterboxed training images, folded into its
  consumers (prunelib.surgery.compensation; bias compensation as in FLAP, An et al., AAAI 2024);
- recalibrate: BatchNorm statistics re-estimated on the same images (EagleEye, Li et al., ECCV 2020);
- none: the cut as it leaves the pruner.

`choose` keeps the best on val; its row is the one it would keep. Each (case, cut, repair) is one kit run with that
repair and no fine-tuning (runs/bench-compensation-*/, reused when present).

    .venv/bin/python bench/compensation.py [embedded] [real] [user]
"""

from __future__ import annotations

import sys

import real_case
import user_case
from common import default_params, publish

from prunelib.core.ledger import prune_steps
from prunelib.runs import open_run, stages
from prunelib.training.validation import evaluate

REPAIRS = ("fold", "recalibrate", "none")
CASES = {  # name -> (model, data, held-out data or None, shares of the prunable channels cut)
    "embedded": lambda: ("", "", None, (0.1, 0.3, 0.47)),
    "user": lambda: (
        user_case.model(converged=True),
        user_case.data_yaml(),
        user_case.holdout_yaml(),
        (0.1, 0.3, 0.47),
    ),
    "real": lambda: (real_case.model(), real_case.data_yaml(), real_case.holdout_yaml(), (0.05, 0.1, 0.2)),
}
LOOP = ["00-baseline", "20-replace-c3k2", "30-prune-loop"]
FINE = {"round_to": 0, "prune_head": False}  # a finer cut: any channel count, the head whole (shares FINE_SHARES)
FINE_SHARES = (0.05, 0.1)


def cut(case: str, share: float, repair: str, fine: bool = False):
    """The case cut once by share of its prunable channels and repaired by repair (fine: FINE's cut, else the
    defaults'): its run (made once, then reused)."""
    model, data, _, _ = CASES[case]()
    params = default_params(
        run_name=f"bench-compensation-{case}-{share}-{repair}" + ("-fine" if fine else ""),
        model=str(model),
        data=str(data),
        target_prune_rate=share,
        target_latency_speedup=0.0,
        iterative_steps=1,
        finetune_epochs=0,
        compensation=repair,
        max_map_drop=1.0,
        **({} if case == "embedded" else {"imgsz": 0}),  # a user's model at its own training size
        **(FINE if fine else {}),
    )
    run = open_run([], params)
    stages.run_stages(run, LOOP)
    return run


def rows_of(case: str) -> list[dict]:
    _, _, holdout, shares = CASES[case]()
    rows = []
    for share, fine in [(s, False) for s in shares] + [(s, True) for s in FINE_SHARES]:
        found = {}
        for repair in REPAIRS:
            run = cut(case, share, repair, fine)
            step = prune_steps(run.read_ledger())[-1]
            unpruned = run.read_json(run.unpruned_json)
            held = None
            if holdout:
                out = run.dir / "bench-holdout"
                held = (evaluate(run.final, run.settings.training, holdout, out / "pruned", "detect")["map50_95"],
                        _unpruned_holdout(run, holdout))  # fmt: skip
            found[repair] = (step, unpruned["map50_95"], held)
        chosen = max(REPAIRS, key=lambda r: found[r][0].pruned_map50_95)
        for repair in REPAIRS:
            step, base, held = found[repair]
            rows.append(
                {
                    "case": case,
                    "cut": f"{share:.0%} of the channels" + (", any count, head whole" if fine else ""),
                    "MACs speed-up": f"{step.speedup:.2f}x",
                    "repair": repair + (" (choose keeps it)" if repair == chosen else ""),
                    "mAP50-95 val": f"{step.pruned_map50_95:.4f}",
                    "kept val": f"{step.pruned_map50_95 / base:.1%}",
                    "mAP50-95 held-out": f"{held[0]:.4f}" if held else "-",
                    "kept held-out": f"{held[0] / held[1]:.1%}" if held else "-",
                }
            )
    return rows


def _unpruned_holdout(run, holdout) -> float:
    path = run.dir / "bench-holdout" / "unpruned.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        score = evaluate(run.unpruned_pt, run.settings.training, holdout, path.parent / "unpruned", "detect")[
            "map50_95"
        ]
        path.write_text(f"{score}")
    return float(path.read_text())


if __name__ == "__main__":
    cases = [c for c in sys.argv[1:] if c in CASES] or list(CASES)
    publish(
        "compensation" + ("" if cases == list(CASES) else "-" + "-".join(cases)),
        "Compensation at the cut, before any training: fold, re-estimated BatchNorm or neither",
        [row for case in cases for row in rows_of(case)],
        "Each cut in one step with the built-in defaults (l2 importance, head pruned, whole channel blocks of this "
        "CPU) or, where the row says so, in any channel count with the head whole; no fine-tuning. kept = as cut "
        "over the unpruned model on the same images. embedded: the kit's YOLO11n "
        "on its synthetic shapes (320 px; no held-out images: val is where choose decides); user: a YOLO11n trained "
        "with plain Ultralytics (256 px, 120 held-out images); real: a YOLOv8n trained by others (147 classes, "
        "640 px, 60 held-out drawings labelled by the model itself). Fold: FLAP's bias compensation (An et al., AAAI "
        "2024) applied to convolutions, each consumer's own input means; recalibrate: adaptive BatchNorm (EagleEye, "
        "Li et al., ECCV 2020).",
    )
