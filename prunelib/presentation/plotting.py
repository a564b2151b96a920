"""Figures of a run, each saved into the run folder and returned for display."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from PIL import Image
from ultralytics.utils.plotting import plot_images

from prunelib import files
from prunelib.core.ledger import Step, prune_steps
from prunelib.deployment.records import Deployed
from prunelib.tasks import named

if not matplotlib.get_backend().lower().startswith(("module://matplotlib_inline", "inline", "nbagg", "widget")):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def performance(ledger: list[Step], unpruned: dict, path) -> plt.Figure:
    """The reference script's graph: recovered and pruned mAP against pruning ratio, MACs on a second axis; sparsity
    training and the final fine-tune as markers of their own."""
    steps = prune_steps(ledger)
    ratio = [0.0] + [r.channel_ratio for r in steps]
    recovered = [unpruned["map50_95"]] + [r.map50_95 for r in steps]
    pruned = [unpruned["map50_95"]] + [r.pruned_map50_95 for r in steps]
    macs = [unpruned["macs"] / 1e9] + [r.macs / 1e9 for r in steps]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    joined = len(steps) > 1  # one cut: two points, before and after, that no line between them describes
    line, dashed = ("-", "--") if joined else ("", "")
    recovered_label = named("recovered mAP50-95 (after fine-tuning)", unpruned)
    ax.plot(ratio, recovered, "o" + line, color="tab:blue", label=recovered_label)
    pruned_label = named("pruned mAP50-95 (before fine-tuning)", unpruned)
    ax.plot(ratio, pruned, "o" + dashed, color="tab:orange", label=pruned_label)
    if not joined:
        for x, y in zip(ratio, recovered):
            ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    marks = (("sparse", "D", "after sparsity training"), ("final", "*", "after the final fine-tune"))
    for kind, marker, label in marks:
        for r in (r for r in ledger if r.kind == kind):
            ax.plot([r.channel_ratio], [r.map50_95], marker, color="tab:purple", ms=12, label=label)
    for r in ledger:
        if not r.within_budget:
            ax.plot([r.channel_ratio], [r.map50_95], "x", color="red", ms=12, mew=2, label="over mAP budget")
    ax.set_xlabel("channel pruning ratio")
    ax.set_ylabel(named("mAP50-95", unpruned))
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(ratio, macs, "s" + line, color="tab:green", label="MACs (G)")
    ax2.set_ylabel("MACs (G)")
    ax2.set_ylim(bottom=0)
    axes = [ax, ax2]
    timed = [r for r in steps if r.timed]  # a latency goal timed every step: its time on a third axis
    if timed:
        ax3 = ax.twinx()
        ax3.spines["right"].set_position(("axes", 1.12))
        ax3.plot(
            [0.0] + [r.channel_ratio for r in timed],
            [timed[0].unpruned_latency_ms] + [r.latency_ms for r in timed],
            "^" + line,
            color="tab:brown",
            label=f"latency (ms, {timed[0].latency_runtime}, batch 1)",
        )
        ax3.set_ylabel("latency (ms)")
        ax3.set_ylim(bottom=0)
        axes.append(ax3)
    lines = [h for a in axes for h in a.get_legend_handles_labels()[0]]
    labels = [t for a in axes for t in a.get_legend_handles_labels()[1]]
    ax.legend(lines, labels, loc="lower left", fontsize=8)
    ax.set_title("Pruning performance")
    ax.grid(alpha=0.3)
    return save(fig, path)


def channels(before: list[dict], after: list[dict], path) -> plt.Figure:
    """Output channels per layer before and after pruning (rows from measuring.layer_table, then the head's hidden
    convolutions from measuring.head_rows)."""
    rows = [(b, a) for b, a in zip(before, after) if b["c_out"]]
    labels = [f"{b['layer']}" if str(b["type"]).startswith("head") else f"{b['layer']} {b['type']}" for b, _ in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.45), 4.5))
    ax.bar([i - 0.2 for i in x], [b["c_out"] for b, _ in rows], width=0.4, label="before")
    ax.bar([i + 0.2 for i in x], [a["c_out"] for _, a in rows], width=0.4, label="after")
    ax.set_xticks(list(x), labels, rotation=70, fontsize=8)
    ax.set_ylabel("output channels")
    ax.set_title("Channels per layer")
    ax.legend()
    fig.tight_layout()
    return save(fig, path)


def pareto(series: dict[str, list[tuple[float, float]]], path, which: str = "this run") -> plt.Figure:
    """mAP50-95 against GMACs for each run: {run name: [(gmacs, map), ...]}; which: what the runs are (the title)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in sorted(series.items()):
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if len(pts) > 2 else "o", label=name)
        if len(series) == 1:
            for x, y in pts:
                ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("MACs (G)")
    ax.set_ylabel("recovered mAP50-95")
    ax.set_title(f"Accuracy against compute, {which}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, path)


def sensitivity(results: dict[str, dict[float, float]], unpruned: dict, path) -> plt.Figure:
    """mAP after pruning one layer group alone (no fine-tuning), per layer, one line per ratio; unpruned: the run's
    unpruned.json."""
    layers = list(results)
    ratios = sorted({r for v in results.values() for r in v})
    fig, ax = plt.subplots(figsize=(max(8, len(layers) * 0.4), 4.5))
    for ratio in ratios:
        ax.plot(range(len(layers)), [results[layer].get(ratio) for layer in layers], "o-", label=f"ratio {ratio}")
    ax.axhline(unpruned["map50_95"], color="gray", ls="--", label="unpruned")
    ax.set_xticks(range(len(layers)), layers, rotation=70, fontsize=8)
    ax.set_ylabel(named("mAP50-95 without fine-tuning", unpruned))
    ax.set_title("Layer sensitivity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def classes(rows: list[dict], unpruned: dict, path) -> plt.Figure:
    """The metric per class, unpruned and final side by side (analysis.per_class rows, in their order: the classes
    that lost most first)."""
    shown = [r for r in rows if r["unpruned"] is not None]
    x = range(len(shown))
    fig, ax = plt.subplots(figsize=(max(6, len(shown) * 0.6), 4))
    ax.bar([i - 0.2 for i in x], [r["unpruned"] for r in shown], width=0.4, label="unpruned")
    ax.bar([i + 0.2 for i in x], [r["final"] for r in shown], width=0.4, label="final")
    ax.set_xticks(list(x), [r["class"] for r in shown], rotation=45, ha="right")
    ax.set_ylabel(named("mAP50-95", unpruned))
    ax.set_ylim(0, 1)
    ax.set_title(named("mAP50-95", unpruned) + " per class, unpruned and final (the classes that lost most first)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return save(fig, path)


def deployment(rows: list[Deployed], best: Deployed | None, unpruned: dict, n_threads: int, path) -> plt.Figure:
    """Accuracy against batch-1 latency of every exported file: one marker per runtime and precision, one colour per
    model (the unpruned model hollow, the pruned one filled, each alternative in its own colour and named), the
    recommended file ringed."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    kinds = list(dict.fromkeys(r.kind for r in rows))
    models = list(dict.fromkeys(r.model for r in rows))
    markers = "osD^vP*X"
    for (runtime, precision), marker in zip(kinds, markers * 2):  # the legend's marker key, in grey
        ax.scatter([], [], marker=marker, color="grey", label=f"{runtime} {precision}")
    for i, model in enumerate(models):
        color, face = f"C{i}", "none" if model == "unpruned" else f"C{i}"
        for r in (r for r in rows if r.model == model):
            marker = markers[kinds.index(r.kind) % len(markers)]
            ax.scatter([r.latency_ms], [r.map50_95], marker=marker, s=50, color=color, facecolors=face)
        ax.scatter([], [], marker="s", color=color, facecolors=face, label=model)
    if best:
        ax.scatter([best.latency_ms], [best.map50_95], s=260, facecolors="none", edgecolors="red", label="recommended")
    ax.set_xlabel(f"latency (ms, batch 1, {n_threads} thread{'s' if n_threads != 1 else ''})")
    ax.set_ylabel(named("mAP50-95", unpruned))
    ax.set_title("Each exported file: accuracy against latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, path)


def save(fig, path) -> plt.Figure:
    path = Path(path)
    with files.atomic(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format=path.suffix[1:])
    plt.close(fig)
    return fig


def data_preview(batch: dict, names, path) -> Path:
    """The first training images with their labels, drawn by Ultralytics' own plot of a training batch (boxes,
    polygon masks, keypoints or rotated boxes, as the task labels them); batch: datasets.preview_batch. Returns
    path."""
    grid = plot_images(labels=batch, paths=batch["im_file"], names=_names(names), save=False, threaded=False)
    with files.atomic(path) as tmp:
        Image.fromarray(grid).convert("RGB").save(tmp, format="JPEG", quality=85)
    return Path(path)


def _names(names) -> dict:
    return dict(names) if isinstance(names, dict) else dict(enumerate(names))
