"""``runs/<run>/report.md``: parameters, the per-step table, final numbers, latency and the plots; and the live
per-step table a notebook shows while the loop runs."""

from __future__ import annotations

from prunelib import files
from prunelib.core.folder import FINAL, PRUNE, Run, final_step, outcome
from prunelib.tasks import named

STEP_COLUMNS = [
    ("step", "step", "{}"),
    ("channel_ratio", "pruned channels", "{:.1%}"),
    ("macs", "GMACs", None),
    ("params", "params (M)", None),
    ("speedup", "MACs speed-up", "{:.2f}x"),
    ("epochs", "epochs", "{}"),
    ("pruned_map50_95", "mAP50-95 pruned", "{:.4f}"),
    ("map50_95", "mAP50-95 recovered", "{:.4f}"),
    ("map50", "mAP50 recovered", "{:.4f}"),
    ("within_budget", "within budget", "{}"),
]


def step_rows(ledger: list[dict], unpruned: dict) -> list[dict]:
    """The per-step table as display rows (the unpruned model as step 0), rounded for people and for nbval."""
    rows = [{"step": 0, "pruned channels": "0.0%", "GMACs": round(unpruned["macs"] / 1e9, 3),
             "params (M)": round(unpruned["params"] / 1e6, 3), "MACs speed-up": "1.00x", "epochs": "",
             "mAP50-95 pruned": "", "mAP50-95 recovered": f"{unpruned['map50_95']:.4f}",
             "mAP50 recovered": f"{unpruned['map50']:.4f}", "within budget": "unpruned"}]  # fmt: skip
    timed = next((r for r in ledger if "latency_speedup" in r), None)  # a latency goal times every step
    cells = [{"latency (ms)": timed["unpruned_latency_ms"], "latency speed-up": "1.00x"}] if timed else []
    for r in ledger:
        row = {}
        for key, title, fmt in STEP_COLUMNS:
            v = r.get(key, "")
            if key == "step":
                row[title] = step_label(r)
            elif key == "macs":
                row[title] = round(v / 1e9, 3)
            elif key == "params":
                row[title] = round(v / 1e6, 3)
            else:
                row[title] = fmt.format(v)
        rows.append(row)
        if timed:
            cells.append(latency_cells(r))
    if timed:  # the measured time beside the MACs
        rows = [_after(row, "MACs speed-up", c) for row, c in zip(rows, cells)]
    return [{named(k, unpruned): v for k, v in row.items()} for row in rows]  # titles in the run's metric


def _after(row: dict, key: str, cells: dict) -> dict:
    out = {}
    for k, v in row.items():
        out[k] = v
        if k == key:
            out |= cells
    return out


def class_rows(classes: list[dict]) -> list[dict]:
    """The per-class table (analysis.per_class rows) for people: four decimals, '' where a class has no instances."""
    def cell(v, sign=False):
        return "" if v is None else f"{v:+.4f}" if sign else f"{v:.4f}"

    return [{"class": r["class"], "instances": r["instances"], "unpruned": cell(r["unpruned"]),
             "final": cell(r["final"]), "change": cell(r["change"], sign=True)} for r in classes]


def latency_cells(r: dict) -> dict:
    """A step's measured latency (its runtime, batch 1) and speed-up with the range of its timed blocks."""
    if "latency_speedup" not in r:
        return {"latency (ms)": "", "latency speed-up": ""}
    return {"latency (ms)": r["latency_ms"],
            "latency speed-up": f"{r['latency_speedup']:.2f}x ({r['latency_low']:.2f}-{r['latency_high']:.2f})"}


class Shown:
    """Markdown for a notebook cell's result: JupyterLab renders it (a table as a table), and its plain text, the
    same Markdown, is what a terminal prints, what nbval compares and what the committed notebook keeps."""

    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def table(rows: list[dict]) -> Shown:
    """Rows as a Markdown table for a notebook (markdown_table, shown)."""
    return Shown(markdown_table(rows))


def step_label(record: dict) -> str:
    """'3' for a prune step; 'sparse' and 'final' for sparsity training and the final fine-tune."""
    kind = record.get("kind", PRUNE)
    return str(record["step"]) if kind == PRUNE else kind


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))  # every row's columns, in the order they first appear
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _summary(unpruned: dict, ledger: list[dict], classes: list[dict] | None, shown: list[dict] | None,
             export: dict, cpu: dict | None) -> list[str]:
    """In words, at the top: what pruning did to the model (size, compute, accuracy kept), how much faster it runs on
    this machine and which file to deploy (the recommendation below says why), the class that lost most and the
    objects missed in detections.png."""
    if not (unpruned and ledger):
        return []
    final = final_step(ledger)
    o, metric = outcome(unpruned, final), named("mAP50-95", unpruned)
    text = (f"final.pt ({_source(final)}): {o['macs_speedup']:.2f}x fewer MACs, {o['params_share']:.1%} of the "
            f"parameters, {metric} {unpruned['map50_95']:.4f} -> {(final or unpruned)['map50_95']:.4f}"
            + (f" ({o['retention']:.1%} kept)" if o["retention"] is not None else "") + ".")
    ms = {(r["model"], r["runtime"], r["precision"]): r for r in export.get("latency", [])}
    before, after = ms.get(("unpruned", "onnxruntime", "FP32")), ms.get(("pruned", "onnxruntime", "FP32"))
    if before and after:
        where = f" on {cpu['model']}" if cpu else ""
        text += (f" It runs {before['latency_ms'] / after['latency_ms']:.2f}x faster in onnxruntime at FP32{where} "
                 f"({before['latency_ms']:.2f} -> {after['latency_ms']:.2f} ms, batch 1, "
                 f"{after.get('threads', 1)} thread{'s' if after.get('threads', 1) != 1 else ''}).")
    best = export.get("recommended")
    if best:
        text += (f" Deploy `{best['file']}` ({best['runtime']} at {best['precision']}): "
                 f"{best['latency_ms']:.2f} ms, {best['speedup_vs_onnxruntime_fp32']:.2f}x faster than the unpruned "
                 f"model in onnxruntime at FP32, {best['from_pruning']:.2f}x of it from pruning; {metric} "
                 f"{best['map50_95']:.4f}.")
    worst = next((r for r in classes or [] if r["change"] is not None), None)
    if worst and len(classes) > 1:
        text += (f" The class that lost most: {worst['class']} ({worst['unpruned']:.4f} -> {worst['final']:.4f}, "
                 f"{worst['change']:+.4f}; every class in the per-class table below).")
    if shown:
        lost = {label: sum(r["lost"].get(label, 0) for r in shown) for label in shown[0]["lost"]}
        also = "".join(f", the {label} file {n}" for label, n in lost.items() if label != "pruned")
        text += (f" In detections.png, final.pt misses {lost.get('pruned', 0)}{also} of the objects the unpruned "
                 f"model found in {len(shown)} validation images (those where it lost most first).")
    return [f"## Summary\n\n{text}\n\n"]


def _recommendation(export: dict, unpruned: dict) -> list[str]:
    """The file to deploy on this machine, in words (export.json's 'recommended'), and every reduced precision that
    runs slower than FP32 in its runtime, said plainly."""
    best = export.get("recommended")
    if not export.get("deployment") or "recommended" not in export:  # not exported yet, or by an earlier kit
        return []
    if best is None:
        return ["## Recommendation\n\nNo exported file of the pruned model is within the run's mAP budget.\n\n"]
    metric = named("mAP50-95", unpruned)
    lines = [f"## Recommendation\n\nUse `{best['file']}` in {best['runtime']} at {best['precision']}: "
             f"{best['latency_ms']:.2f} ms (batch 1), {metric} {best['map50_95']:.4f}, "
             f"{best['speedup_vs_onnxruntime_fp32']:.2f}x faster than the unpruned model in onnxruntime at FP32: "
             f"{best['from_pruning']:.2f}x from pruning (against the unpruned model in the same runtime, at "
             f"{best.get('pruning_precision', best['precision'])}), "
             f"{best['from_runtime_and_precision']:.2f}x from the runtime and precision.\n"]
    fp32 = {(r["model"], r["runtime"]): r["latency_ms"] for r in export.get("latency", []) if r["precision"] == "FP32"}
    for r in export.get("latency", []):
        ref = fp32.get(("pruned" if r["model"] != "unpruned" else "unpruned", r["runtime"]))
        if r["precision"] != "FP32" and ref and r["latency_ms"] > ref:
            lines.append(f"\n{r['precision']} runs slower than FP32 here: {r['model']} in {r['runtime']} "
                         f"{r['latency_ms']:.2f} ms against {ref:.2f} ms.\n")
    return lines + ["\n"]


def _int8_form(form: dict | None) -> str:
    """How the INT8 ONNX files were quantized and why that form (int8_onnx_form), with every form's time when they
    were timed."""
    if not form:
        return ""
    why = {"cpu flags": "the form this CPU's flags call for (int8_onnx_form: auto)",
           "name": "the form the run named (int8_onnx_form)",
           "timing": "the fastest of every form timed on the pruned model (int8_onnx_form: fastest)"}[form["chosen_by"]]
    text = f"\nINT8 ONNX files: onnxruntime static quantization, {form['label']}: {why}.\n"
    if form.get("forms"):
        text += ("\n" + markdown_table([{k: r[k] for k in ("form", "label", "ms", "vs_default", "low", "high", "error")
                                          if k in r} for r in form["forms"]])
                 + f"\nvs_default: the time of the CPU flags' form ({form['default']}) over this form's, median of "
                 "alternating blocks (low-high: their range).\n")  # fmt: skip
    return text


def _parity(export: dict) -> str:
    """The exported files against torch: each format's largest difference, the precision it ran in, and whether it
    matches within the tolerance (runs made before precisions were recorded give the absolute difference alone)."""
    formats = export.get("formats") or {"onnx": {"max_abs_diff": export.get("onnx_max_abs_diff", float("nan"))}}
    if not all("max_rel_diff" in f for f in formats.values()):
        return ("\nExported files vs torch, max |Δ| of the outputs: "
                + ", ".join(f"{fmt} {f['max_abs_diff']:.2e}" for fmt, f in formats.items()) + "\n")
    rows = [{"format": fmt, "precision": f["precision"], "max_abs_diff": f"{f['max_abs_diff']:.2e}",
             "max_rel_diff": f"{f['max_rel_diff']:.2e}", "matches_torch": f["matches"]}
            for fmt, f in formats.items()]  # fmt: skip
    return (f"\nExported files vs torch (first output; matches when every value is within "
            f"{export.get('parity_tolerance', 1e-3):g} of torch's, relative to max(1, |value|)):\n\n"
            + markdown_table(rows))


def write_report(run: Run) -> str:
    """Assemble report.md from what the stages saved; return its text."""
    unpruned = run.read_json(run.unpruned_json) or {}
    ledger = run.read_ledger()
    export = run.read_json(run.export_json) or {}
    shown, manifest = run.read_json(run.detections_json), run.read_json(run.manifest) or {}
    parts = [f"# Pruning report: {run.name}\n",
             *_summary(unpruned, ledger, run.read_json(run.classes_json), shown, export, manifest.get("cpu")),
             *_recommendation(export, unpruned), "## Result\n"]
    if unpruned and not ledger:
        parts.append("No pruning step yet (stage 30, the prune loop, has not run): the unpruned model alone.\n\n")
        row = {"": "unpruned", **_numbers(unpruned)}
        parts.append(markdown_table([{named(k, unpruned): v for k, v in row.items()}]))
    elif unpruned:
        parts += _result(unpruned, run.final_step(), ledger)
    parts.append("\n## Steps\n")
    parts.append(markdown_table(step_rows(ledger, unpruned)) if unpruned else "(no pruning yet)\n")
    if export.get("deployment"):
        parts.append("\n## Deployment (each file's mAP through Ultralytics' validator in the precision it ran in; "
                     "median latency at batch 1 on the run's threads and on all cores; throughput in images per second "
                     f"at batch {export.get('throughput_batch', '-')} on all cores, float files; the settings that "
                     "run each file as timed)\n\n")
        parts.append(markdown_table(export["deployment"]))
        parts.append(_int8_form(export.get("int8_onnx")))
    if export.get("latency"):
        parts.append("\n## Latency in each runtime (batch 1, median)\n\n")
        parts.append(markdown_table(export["latency"]))
        parts.append(_parity(export))
    if export.get("layers"):
        parts.append("\n## Where the time goes (onnxruntime profiler, ms per layer)\n\n"
                     "A layer whose time fell less than its MACs (time_ratio < macs_ratio) keeps costs that do not "
                     "scale with channels: memory traffic, activations, small convolutions.\n\n")
        parts.append(markdown_table(export["layers"]))
    if "padding_macs" in export:
        parts.append(f"\nfinal.pt holds Ultralytics' own C3k2/C2f blocks (loads without prunelib; train it further "
                     f"with `python -m prunelib finetune`); zero channels padding unequal halves cost "
                     f"{export['padding_macs']:,} MACs.\n")
    classes = run.read_json(run.classes_json)
    if classes:
        parts.append(f"\n## {named('mAP50-95', unpruned)} per class (val split; the classes that lost most first)\n\n")
        parts.append(markdown_table(class_rows(classes)))
    parts.append("\n## Plots\n")
    for path, title in ((run.perf_png, "Performance"), (run.channels_png, "Channels per layer"),
                        (run.pareto_png, "Accuracy against compute"), (run.classes_png, "Accuracy per class"),
                        (run.detections_png, "Ground truth and predictions"),
                        (run.deployment_png, "Accuracy against latency of each exported file"),
                        (run.sensitivity_png, "Layer sensitivity")):  # fmt: skip
        if path.is_file():
            parts.append(f"\n![{title}]({path.name})\n")
    parts.append("\n## Parameters\n\n```yaml\n")
    parts.append("".join(f"{k}: {v!r}\n" for k, v in run.params.items()))
    parts.append("```\n")
    text = "".join(parts)
    files.write_text(run.report_md, text)
    return text


def _result(unpruned: dict, final: dict | None, ledger: list[dict]) -> list[str]:
    """The result table (unpruned vs final.pt) and its one-line summary."""
    f = final or unpruned
    rows = [{"": "unpruned", **_numbers(unpruned)},
            {"": f"final ({_source(final)})", **_numbers(f)}]
    rows = [{named(k, unpruned): v for k, v in row.items()} for row in rows]
    o = outcome(unpruned, final)
    out = [markdown_table(rows),
           f"\nMACs speed-up {o['macs_speedup']:.2f}x, parameters {o['params_share']:.1%} of the unpruned model, "
           f"{named('mAP50-95', unpruned)} change {o['map_change']:+.4f}"
           + (f" ({o['retention']:.1%} kept)" if o["retention"] is not None else "") + ".\n"]  # fmt: skip
    if final and "latency_speedup" in final:
        out.append(f"\nMeasured latency in {final['latency_runtime']} (batch 1): {final['unpruned_latency_ms']:.2f} -> "
                   f"{final['latency_ms']:.2f} ms, {final['latency_speedup']:.2f}x (timed blocks "
                   f"{final['latency_low']:.2f}-{final['latency_high']:.2f}x).\n")
    if ledger and ledger[-1].get("stop"):
        out.append(f"\nStopped: {ledger[-1]['stop']}.\n")
    epochs = sum(r.get("epochs", 0) for r in ledger)
    out.append(f"\nFine-tuning epochs in all: {epochs}.\n")
    return out


def _source(final: dict | None) -> str:
    if final is None:
        return "no step within budget"
    return "final fine-tune" if final.get("kind") == FINAL else f"step {final['step']}"


def _numbers(r: dict) -> dict:
    return {"mAP50-95": f"{r['map50_95']:.4f}", "mAP50": f"{r['map50']:.4f}", "GMACs": f"{r['macs'] / 1e9:.3f}",
            "params (M)": f"{r['params'] / 1e6:.3f}"}


class LiveTable:
    """An on_step callback for the prune loop that redraws the per-step table in a notebook as steps finish."""

    def __init__(self, run: Run):
        from IPython.display import Markdown, display  # optional: only in a notebook

        self.run, self._markdown = run, Markdown
        self.handle = display(Markdown(self._text()), display_id=True)

    def __call__(self, _record=None):
        self.handle.update(self._markdown(self._text()))

    def _text(self) -> str:
        unpruned = self.run.read_json(self.run.unpruned_json)
        return markdown_table(step_rows(self.run.read_ledger(), unpruned)) if unpruned else "(not replaced yet)"
