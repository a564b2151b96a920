"""Shared by the benchmarks: the baseline of the embedded default, the control beside a pruned run (its unpruned
model fine-tuned as long), and writing a result table."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import date
from pathlib import Path

import prunelib  # noqa: F401  (offline set-up first)
from prunelib import machine
from prunelib.presentation.report import markdown_table
from prunelib.core import parameters
from prunelib.core.folder import runs_root
from prunelib.core.settings import Settings
from prunelib.training import embedded
from prunelib.training.finetuning import finetune
from prunelib.training.validation import evaluate

RESULTS = Path(__file__).resolve().parent / "results"


def default_params(**overrides) -> dict:
    return parameters.load([parameters.resolve("params/default.yaml")], overrides)


# The cut the benchmarks of MACs goals measure their variants against: the head whole, no channel alignment, Ultralytics'
# own optimizer choice (the demo's recipe until 2026-12-04; params/default.yaml now prunes the head in whole blocks)
HEAD_WHOLE = {"prune_head": False, "round_to": 0, "optimizer": "auto", "lr0": parameters.BY_NAME["lr0"].default}


def baseline_model(params: dict) -> Path:
    """The embedded default's baseline checkpoint (trained once, then cached)."""
    return embedded.model_path(Settings.of(params))[0]


def control(case: str, run, epochs: int) -> dict:
    """A run's unpruned model fine-tuned for epochs as its pruned one was (the run's training settings): its mAP50-95
    on val and, for the user case, on its held-out images ("held-out"); what training alone adds. Made once per case,
    epochs and optimizer (Ultralytics' choice, or the one the run names with its lr0), then read back."""
    import user_case

    optimizer = "" if run.params["optimizer"] == "auto" else f"-{run.params['optimizer']}-{run.params['lr0']:g}"
    out = runs_root() / f"bench-control-{case}-{epochs}{optimizer}"
    done = out / "control.json"
    if done.is_file():
        return json.loads(done.read_text())
    training, data = run.settings.training, embedded.data_yaml(run.settings)
    model = finetune(run.unpruned_pt, training, data, out, epochs)[0]
    result = {"val": evaluate(model, training, data, out / "val")["map50_95"]}
    if case == "user":
        result["held-out"] = evaluate(model, training, user_case.holdout_yaml(), out / "holdout")["map50_95"]
    done.write_text(json.dumps(result))
    return result


def publish(name: str, title: str, rows: list[dict], notes: str = "") -> str:
    """Print the table and write it to bench/results/<name>.md with the machine it was measured on."""
    import torch

    text = (f"# {title}\n\nMeasured {date.today()} on {machine.describe()}, {platform.machine()}, "
            f"{os.cpu_count()} cores, python {platform.python_version()}, torch {torch.__version__}.\n"
            f"Reproduce: `.venv/bin/python bench/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}`.\n\n"
            + markdown_table(rows) + (f"\n{notes}\n" if notes else ""))  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return text
