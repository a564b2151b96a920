"""``runs/<run>/report.md``: parameters, the per-step table, final numbers, latency and the plots."""

from __future__ import annotations

from prunelib.runs import Run, write_text

STEP_COLUMNS = [
    ("step", "step", "{}"),
    ("channel_ratio", "pruned channels", "{:.1%}"),
    ("macs", "GMACs", None),
    ("params", "params (M)", None),
    ("speedup", "MACs speed-up", "{:.2f}x"),
    ("pruned_map50_95", "mAP50-95 pruned", "{:.4f}"),
    ("map50_95", "mAP50-95 recovered", "{:.4f}"),
    ("map50", "mAP50 recovered", "{:.4f}"),
    ("within_budget", "within budget", "{}"),
]


def step_rows(ledger: list[dict], base: dict) -> list[dict]:
    """The per-step table as display rows (baseline as step 0), values rounded for people and for nbval."""
    rows = [{"step": 0, "pruned channels": "0.0%", "GMACs": round(base["macs"] / 1e9, 3),
             "params (M)": round(base["params"] / 1e6, 3), "MACs speed-up": "1.00x",
             "mAP50-95 pruned": "", "mAP50-95 recovered": f"{base['map50_95']:.4f}",
             "mAP50 recovered": f"{base['map50']:.4f}", "within budget": "baseline"}]  # fmt: skip
    for r in ledger:
        row = {}
        for key, title, fmt in STEP_COLUMNS:
            v = r[key]
            if key == "macs":
                row[title] = round(v / 1e9, 3)
            elif key == "params":
                row[title] = round(v / 1e6, 3)
            else:
                row[title] = fmt.format(v)
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_report(run: Run) -> str:
    """Assemble report.md from what the stages saved; return its text."""
    base = run.read_json("baseline.json") or {}
    ledger = run.read_ledger()
    final = [r for r in ledger if r["within_budget"]]
    final = final[-1] if final else None
    export = run.read_json("export.json") or {}
    params = run.params
    parts = [f"# Pruning report: {run.name}\n"]
    parts.append("## Result\n")
    if base:
        f_macs = final["macs"] if final else base["macs"]
        f_params = final["params"] if final else base["params"]
        f_map = final["map50_95"] if final else base["map50_95"]
        parts.append(markdown_table([
            {"": "baseline", "mAP50-95": f"{base['map50_95']:.4f}", "mAP50": f"{base['map50']:.4f}",
             "GMACs": f"{base['macs'] / 1e9:.3f}", "params (M)": f"{base['params'] / 1e6:.3f}"},
            {"": f"final ({'step %d' % final['step'] if final else 'no step within budget'})",
             "mAP50-95": f"{f_map:.4f}", "mAP50": f"{(final or base)['map50']:.4f}",
             "GMACs": f"{f_macs / 1e9:.3f}", "params (M)": f"{f_params / 1e6:.3f}"},
        ]))  # fmt: skip
        parts.append(f"\nMACs speed-up {base['macs'] / f_macs:.2f}x, parameters {f_params / base['params']:.1%} "
                     f"of the baseline, mAP50-95 change {f_map - base['map50_95']:+.4f}.\n")
        if ledger and ledger[-1].get("stop"):
            parts.append(f"\nStopped: {ledger[-1]['stop']}.\n")
    parts.append("\n## Steps\n")
    parts.append(markdown_table(step_rows(ledger, base)) if base else "(no pruning yet)\n")
    if export.get("latency"):
        parts.append("\n## Latency (batch 1, median)\n")
        parts.append(markdown_table(export["latency"]))
        parts.append(f"\nONNX vs torch max |Δ|: {export.get('onnx_max_abs_diff', float('nan')):.2e}\n")
    parts.append("\n## Plots\n")
    for name, title in (("perf.png", "Performance"), ("channels.png", "Channels per layer"),
                        ("pareto.png", "All runs"), ("sensitivity.png", "Layer sensitivity")):  # fmt: skip
        if (run.dir / name).is_file():
            parts.append(f"\n![{title}]({name})\n")
    parts.append("\n## Parameters\n\n```yaml\n")
    parts.append("".join(f"{k}: {v!r}\n" for k, v in params.items()))
    parts.append("```\n")
    text = "".join(parts)
    write_text(run.dir / "report.md", text)
    return text


class LiveTable:
    """An on_step callback for engine.prune_loop that redraws the per-step table in a notebook as steps finish."""

    def __init__(self, run: Run):
        from IPython.display import Markdown, display

        self.run, self._markdown = run, Markdown
        self.handle = display(Markdown(self._text()), display_id=True)

    def __call__(self, _record=None):
        self.handle.update(self._markdown(self._text()))

    def _text(self) -> str:
        base = self.run.read_json("baseline.json")
        return markdown_table(step_rows(self.run.read_ledger(), base)) if base else "(baseline not measured yet)"
