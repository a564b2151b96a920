"""Shared by the benchmarks: the baseline of the embedded default, the control beside a pruned run (its unpruned
model fine-tuned as long), and writing a result table."""

from __future__ import annotations

import dataclasses
import hashlib
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
from prunelib.core.settings import Settings, Training
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


def control(case: str, run, epochs: int, holdout: Path | None = None) -> dict:
    """A run's unpruned model fine-tuned for epochs as its pruned one was (the run's training settings, distilled from
    or matching itself when the run distils or matches the original): its mAP50-95 on val and, given the case's held-out images, on them ("held-out");
    what training alone adds. Made once per case and control_key (every setting that changes it), then read back from
    its control.json."""
    training = run.settings.training
    data = embedded.data_yaml(run.settings)
    out = runs_root() / f"bench-control-{case}-{epochs}-{control_key(training, epochs, run.unpruned_pt, data, holdout)}"
    done = out / "control.json"
    if done.is_file():
        return json.loads(done.read_text())
    teacher = run.unpruned_pt if training.distill_weight or training.match_original else None
    model = finetune(run.unpruned_pt, training, data, out, epochs, teacher=teacher)[0]
    result = {
        "val": evaluate(model, training, data, out / "val")["map50_95"],
        "weights": str(out / "weights" / "best.pt"),
    }
    if holdout:
        result["held-out"] = evaluate(model, training, holdout, out / "holdout")["map50_95"]
    done.write_text(json.dumps(result))
    return result


def control_key(training: Training, epochs: int, model: Path, data: Path, holdout: Path | None = None) -> str:
    """What a control depends on, as a short digest: every training setting (the optimizer, its rate, BatchNorm
    statistics frozen or not, distillation, the image size, the seed...), the epochs, the unpruned model's bytes and
    the data (and held-out) YAML's path and text. Two controls share a folder only when all of it is equal."""
    parts = [json.dumps(dataclasses.asdict(training), sort_keys=True, default=str), str(epochs)]
    parts.append(hashlib.sha256(Path(model).read_bytes()).hexdigest())
    for yaml_file in (data, holdout):
        if yaml_file:
            parts += [str(Path(yaml_file).resolve()), Path(yaml_file).read_text()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


RESULT = "Result (written after the run):"  # a table's hand-written reading, appended under its notes


def publish(name: str, title: str, rows: list[dict], notes: str = "") -> str:
    """Print the table and write it to bench/results/<name>.md with the machine it was measured on. A reading written
    after an earlier run (the section from RESULT on) is kept; when the table's rows changed, it is marked as written
    for that run, and a warning says to read it again."""
    import torch

    table = markdown_table(rows)
    text = (f"# {title}\n\nMeasured {date.today()} on {machine.describe()}, {platform.machine()}, "
            f"{os.cpu_count()} cores, python {platform.python_version()}, torch {torch.__version__}.\n"
            f"Reproduce: `.venv/bin/python bench/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}`.\n\n"
            + table + (f"\n{notes}\n" if notes else ""))  # fmt: skip
    path = RESULTS / f"{name}.md"
    old = path.read_text() if path.is_file() else ""
    if RESULT in old:
        reading = old[old.index(RESULT) :]
        if table not in old:
            measured = next((line for line in old.splitlines() if line.startswith("Measured ")), "Measured before")
            when = measured.split(" on ")[0].lower()
            stale = f"(Written for an earlier run, {when}: its figures may differ from the table's.)"
            if not reading.startswith(f"{RESULT}\n(Written for"):
                reading = reading.replace(RESULT, f"{RESULT}\n{stale}", 1)
            print(f"warning: the rows of {path.name} changed; read its '{RESULT}' section again", file=sys.stderr)
        text += f"\n{reading}"
    RESULTS.mkdir(exist_ok=True)
    path.write_text(text)
    print(text)
    return text
