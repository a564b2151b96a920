"""Shared by the benchmarks: the baseline of the embedded default, and writing a result table."""

from __future__ import annotations

import os
import platform
import sys
from datetime import date
from pathlib import Path

import prunelib  # noqa: F401  (offline set-up first)
from prunelib import machine
from prunelib.presentation.report import markdown_table
from prunelib.core import parameters
from prunelib.training import embedded

RESULTS = Path(__file__).resolve().parent / "results"


def default_params(**overrides) -> dict:
    return parameters.load([parameters.resolve("params/default.yaml")], overrides)


def baseline_model(params: dict) -> Path:
    """The embedded default's baseline checkpoint (trained once, then cached)."""
    return embedded.model_path(params)[0]


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
