"""Comparing runs side by side (a sweep's, or any folder's): one summary row per run, the accuracy-against-cost
Pareto plot, and one figure per varied key."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from prunelib import files
from prunelib.presentation.plotting import plt, save
from prunelib.presentation.report import markdown_table, recommended
from prunelib.core import parameters
from prunelib.core.folder import Run
from prunelib.core.ledger import outcome

# keys that always differ between runs or only say where and how fast: never "what varies"
_NOT_VARIED = {"run_name", "runs_dir"} | {p.name for p in parameters.PARAMS if p.may_change}


def varied_keys(all_params: list[dict]) -> list[str]:
    """The parameters whose values differ between the runs, in the table's order."""
    return [
        p.name
        for p in parameters.PARAMS
        if p.name not in _NOT_VARIED and len({repr(params.get(p.name)) for params in all_params}) > 1
    ]


def summary_row(run: Run, varied: list[str], status: str) -> dict:
    """One run: what varies, its status, and the final model against the unpruned one (blank where not measured)."""
    row = {"run": run.name, **{k: run.params[k] for k in varied}, "status": status}
    unpruned, final = run.read_json(run.unpruned_json), run.final_step()
    export = run.read_json(run.export_json) or {}
    latency = {(r["model"], r["runtime"], r["precision"]): r for r in export.get("latency", [])}.get(
        ("pruned", "onnxruntime", "FP32"), {}
    )
    if unpruned:
        o = outcome(unpruned, final)
        row |= {
            "MACs speed-up": round(o["macs_speedup"], 3),
            "params (M)": round(o["params"] / 1e6, 3),
            "unpruned mAP50-95": round(unpruned["map50_95"], 4),
            "final mAP50-95": round(o["map50_95"], 4),
            "retention": round(o["retention"], 4) if o["retention"] is not None else None,
            "latency ms": latency.get("latency_ms"),
            "latency speed-up": latency.get("latency_speedup"),
        }
        if best := recommended(export):
            row |= {"deployed as": best.label, "deployed speed-up": best.speedup_vs_onnxruntime_fp32}
    return row


def front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The Pareto front of (speed-up, metric) points, by rising speed-up: those no other point beats on both."""
    out = []
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):  # fastest first; keep each that is more accurate
        if not out or y > out[-1][1]:
            out.append((x, y))
    return out[::-1]


def write_csv(rows: list[dict], path) -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(rows)
    return files.write_text(path, buffer.getvalue())


def markdown(rows: list[dict], title: str) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = markdown_table([{c: "" if row.get(c) is None else row.get(c) for c in columns} for row in rows])
    return f"# Comparison: {title}\n\n{len(rows)} runs.\n\n{table}"


def pareto(rows: list[dict], path) -> Path:
    """Final mAP50-95 against MACs speed-up, measured latency speed-up (onnxruntime, FP32) and the deployed file's
    speed-up over the unpruned model in onnxruntime at FP32, one point per run, each panel's Pareto front drawn."""
    done = [r for r in rows if r.get("final mAP50-95") is not None]
    keys = ("MACs speed-up", "latency speed-up", "deployed speed-up")
    fig, axes = plt.subplots(1, len(keys), figsize=(15, 4.5), sharey=True)
    for ax, key in zip(axes, keys):
        pts = [(r[key], r["final mAP50-95"], r["run"]) for r in done if r.get(key)]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts])
        for x, y, name in pts:
            ax.annotate(name, (x, y), fontsize=6, alpha=0.7)
        if len(pts) > 1:
            edge = front([p[:2] for p in pts])
            ax.step([p[0] for p in edge], [p[1] for p in edge], "r--", where="pre", alpha=0.6, label="Pareto front")
            ax.legend(fontsize=7)
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
        if not pts:
            ax.text(0.5, 0.5, "not measured (no export stage)", ha="center", transform=ax.transAxes, fontsize=8)
    axes[0].set_ylabel("final mAP50-95")
    fig.suptitle("Accuracy against cost, one point per run")
    save(fig, path)
    return Path(path)


def curves(rows: list[dict], key: str, path) -> Path:
    """Final mAP50-95 against MACs speed-up with one curve per value of key (the runs sharing it)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    values = list(dict.fromkeys(repr(r[key]) for r in rows))
    for value in values:
        pts = sorted(
            (r["MACs speed-up"], r["final mAP50-95"])
            for r in rows
            if repr(r[key]) == value and r.get("final mAP50-95") is not None
        )
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{key}={value}")
    ax.set_xlabel("MACs speed-up")
    ax.set_ylabel("final mAP50-95")
    ax.set_title(f"By {key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)
    return Path(path)
