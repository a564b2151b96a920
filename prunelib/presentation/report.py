"""``runs/<run>/report.md``: parameters, the per-step table, final numbers, latency and the plots; and the live
per-step table a notebook shows while the loop runs."""

from __future__ import annotations

import yaml

from prunelib import files
from prunelib.core.folder import Run
from prunelib.core.ledger import FINAL, SPARSE, Step, final_step, outcome, prune_steps
from prunelib.core.settings import Settings
from prunelib.deployment.alternatives import LOWER_PRECISION, Verdict
from prunelib.deployment.records import Deployed, Recommended
from prunelib.tasks import named
from prunelib.training.agreement import CONF
from prunelib.training.pseudo_labels import VAL_SHARE


def step_rows(ledger: list[Step], unpruned: dict) -> list[dict]:
    """The per-step table as display rows (the unpruned model as step 0, then each Step's cells), rounded for people
    and for nbval; a latency goal's measured time beside the MACs."""
    first = {
        "step": 0,
        "pruned channels": "0.0%",
        "GMACs": round(unpruned["macs"] / 1e9, 3),
        "params (M)": round(unpruned["params"] / 1e6, 3),
        "MACs speed-up": "1.00x",
        "epochs": "",
        "mAP50-95 pruned": "",
        "mAP50-95 recovered": f"{unpruned['map50_95']:.4f}",
        "mAP50 recovered": f"{unpruned['map50']:.4f}",
        "within budget": "unpruned",
    }
    rows = [first] + [r.cells() for r in ledger]
    timed = next((r for r in ledger if r.timed), None)  # a latency goal times every step
    if timed:  # the measured time beside the MACs
        cells = [{"latency (ms)": timed.unpruned_latency_ms, "latency speed-up": "1.00x"}]
        cells += [latency_cells(r) for r in ledger]
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

    return [
        {
            "class": r["class"],
            "instances": r["instances"],
            "unpruned": cell(r["unpruned"]),
            "final": cell(r["final"]),
            "change": cell(r["change"], sign=True),
        }
        for r in classes
    ]


def latency_cells(r: Step) -> dict:
    """A step's measured latency (its runtime, batch 1) and speed-up with the range of its timed blocks."""
    if not r.timed:
        return {"latency (ms)": "", "latency speed-up": ""}
    return {
        "latency (ms)": r.latency_ms,
        "latency speed-up": f"{r.latency_speedup:.2f}x ({r.latency_low:.2f}-{r.latency_high:.2f})",
    }


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


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))  # every row's columns, in the order they first appear
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


STOPS = {
    "target_reached": "the goal was reached",
    "map_drop": "the mAP drop passed the budget (max_map_drop)",
    "done": "every step the goal allows ran",
}  # the loop's stop reasons (policy.stop_reason), in words


def _summary(
    unpruned: dict,
    ledger: list[Step],
    classes: list[dict] | None,
    shown: list[dict] | None,
    export: dict,
    cpu: dict | None,
    max_map_drop: float,
) -> list[str]:
    """At most eight short lines at the top, and one per alternative: what pruning did to the model, how much faster
    final.pt runs (one figure, named: runtime, precision, batch, threads, which timing; and on all cores), the file
    to deploy and whether it beats each alternative (the unpruned model at a lower precision alone, the user's
    checkpoints, the stock model), and what was lost most. When no cut held, three lines instead of the first four:
    what was tried, what it kept, what to ship instead (nothing_held)."""
    if not (unpruned and ledger):
        return []
    failed = failed_cut(ledger)
    if failed:
        lines = nothing_held(unpruned, failed, export, max_map_drop)
        lines += against(export, unpruned, lower_precision=False)  # the file to ship is the unpruned model's
        return ["## Summary\n\n" + "\n".join(lines) + "\n\n"]
    final = final_step(ledger)
    o, metric = outcome(unpruned, final), named("mAP50-95", unpruned)
    kept = f" ({o['retention']:.1%} kept)" if o["retention"] is not None else ""
    lines = [
        f"- **final.pt** ({_source(final)}): {o['macs_speedup']:.2f}x fewer MACs, {o['params_share']:.0%} of the "
        f"parameters; {metric} {unpruned['map50_95']:.3f} -> {o['map50_95']:.3f}{kept}."
    ]
    speed = speed_line(export, cpu)
    if speed:
        lines.append(speed)
    best = recommended(export)
    if best:
        lines.append(
            f"- **Deploy** `{best.file}` ({best.label}): {best.speedup_vs_onnxruntime_fp32:.2f}x faster than the "
            f"unpruned model in onnxruntime FP32; {metric} {best.map50_95:.3f}."
        )
    lines += against(export, unpruned)
    worst = next((r for r in classes or [] if r["change"] is not None), None)
    if worst and len(classes) > 1:
        lines.append(
            f"- **Lost most**: class {worst['class'] or repr(worst['class'])} ({worst['unpruned']:.3f} -> "
            f"{worst['final']:.3f})."
        )
    if shown:
        missed = sum(r["lost"].get("pruned", 0) for r in shown)
        lines.append(
            f"- **detections.png**: final.pt misses {missed} of the objects the unpruned model found in "
            f"{len(shown)} validation images."
        )
    return ["## Summary\n\n" + "\n".join(lines) + "\n\n"]


def label_free(settings: Settings, unpruned: dict) -> list[str]:
    """A paragraph when the data was a folder of unlabelled images (training.pseudo_labels): what every score then
    measures, and what fine-tuning learnt from."""
    data = settings.source.data
    if not settings.source.image_folder:
        return []
    t = settings.training
    if not t.match_original:
        learnt = "the original's detections as labels"
    elif t.label_weight:
        learnt = (
            f"the original's outputs (weight {t.match_original:g}) and its detections as labels ({t.label_weight:g})"
        )
    else:
        learnt = f"the original's outputs alone (match_original {t.match_original:g}, label_weight 0)"
    if t.freeze_bn_stats:
        learnt += ", BatchNorm statistics kept from the cut"
    return [
        f"**No labels**: `{data}` is a folder of images. {VAL_SHARE:.0%} of them were held back for validation and "
        f"every image was labelled with the unpruned model's own detections (conf {CONF}), so each "
        f"{named('mAP50-95', unpruned)} here measures agreement with the original, not accuracy; fine-tuning learnt "
        f"from {learnt}.\n\n"
    ]


def failed_cut(ledger: list[Step]) -> Step | None:
    """The last prune step when no cut held (no prune step or final fine-tune within the mAP budget, so final.pt is
    the unpruned model, sparsity-trained or not); None when one held or none was tried."""
    cuts = prune_steps(ledger)
    if not cuts or any(r.within_budget for r in ledger if r.kind != SPARSE):
        return None
    return cuts[-1]


def nothing_held(unpruned: dict, cut: Step, export: dict, max_map_drop: float) -> list[str]:
    """Three lines for a run where no cut held: the cut tried and its measured speed, what it kept as cut and after
    fine-tuning against the budget, and what to ship instead (the recommended file: the unpruned model's fastest
    file that keeps its float file's accuracy, or the unpruned model as it is)."""
    metric, base = named("mAP50-95", unpruned), unpruned["map50_95"]
    measured = (
        f", {cut.latency_speedup:.2f}x faster measured ({cut.latency_runtime} {cut.latency_precision}, batch 1)"
        if cut.timed
        else ""
    )

    def share(v: float) -> str:
        return f" ({v / base:.1%})" if base else ""

    lines = [
        f"- **No cut held: final.pt is the unpruned model.** Tried: step {cut.step}, {cut.speedup:.2f}x fewer "
        f"MACs{measured}.",
        f"- **Kept**: {metric} {base:.3f} -> {cut.pruned_map50_95:.3f} as cut{share(cut.pruned_map50_95)}, "
        f"{cut.map50_95:.3f} after {cut.epochs} epochs of fine-tuning{share(cut.map50_95)}; the budget allows a "
        f"drop of {max_map_drop:g} (max_map_drop).",
    ]
    best = recommended(export)
    if not export.get("deployment"):
        lines.append("- **Ship instead**: the export stage (50-export) names the unpruned model's fastest file.")
    elif best and best.lower_precision:
        lines.append(
            f"- **Ship instead** `{best.file}` ({best.label}), the unpruned model at a lower precision: "
            f"{best.speedup_vs_onnxruntime_fp32:.2f}x faster than in onnxruntime FP32; {metric} {best.map50_95:.3f}."
        )
    else:
        lines.append(
            "- **Ship instead** the unpruned model as it is: no lower-precision file kept its accuracy "
            "(max_precision_drop)."
        )
    return lines


def deployed(export: dict) -> list[Deployed]:
    """export.json's deployment rows, as records."""
    return [Deployed.of(r) for r in export.get("deployment") or []]


def recommended(export: dict) -> Recommended | None:
    """export.json's recommendation, as a record (None: none within the budget, or not exported yet)."""
    return Recommended.of(export["recommended"]) if export.get("recommended") else None


def against(export: dict, unpruned: dict, lower_precision: bool = True) -> list[str]:
    """The recommended file against each alternative (export.json's verdicts; a stock model: final.pt's file where
    its width was matched), a bullet each; without the unpruned model at a lower precision when not lower_precision."""
    metric = named("mAP50-95", unpruned)
    verdicts = [Verdict.of(v) for v in export.get("alternatives") or []]
    return [f"- {v.sentence(metric)}" for v in verdicts if lower_precision or v.kind != LOWER_PRECISION]


def speed_line(export: dict, cpu: dict | None) -> str:
    """final.pt's speed-up over the unpruned model in onnxruntime FP32 at batch 1 as the export stage re-timed it: on
    the run's threads and on all cores ('' before the export stage)."""
    rows = {(r.model, *r.kind): r for r in deployed(export)}
    before, after = rows.get(("unpruned", "onnxruntime", "FP32")), rows.get(("pruned", "onnxruntime", "FP32"))
    if not (before and after):
        return ""
    n = next((r.get("threads") for r in export.get("latency", []) if r.get("threads")), 1)
    cores = export.get("all_cores", n)
    where = f" on {cpu.get('model', 'this CPU')}" if cpu else ""
    text = (
        f"- **Speed** (onnxruntime FP32, batch 1, re-timed after the run{where}): "
        f"{before.latency_ms / after.latency_ms:.2f}x faster on {n} thread{'s' if n != 1 else ''} "
        f"({before.latency_ms:.1f} -> {after.latency_ms:.1f} ms)"
    )
    if cores != n and before.all_cores_ms and after.all_cores_ms:
        text += f", {before.all_cores_ms / after.all_cores_ms:.2f}x on all {cores} cores"
    return text + "."


def recommendation(export: dict, unpruned: dict, held: bool = True) -> list[str]:
    """The file to deploy on this machine, in words (export.json's 'recommended'), and every reduced precision that
    runs slower than FP32 in its runtime, said plainly. held: did a cut hold (else final.pt is the unpruned model)?"""
    best = recommended(export)
    if not export.get("deployment"):  # not exported yet
        return []
    if best is None:
        return ["## Recommendation\n\nNo exported file of the pruned model is within the run's mAP budget.\n\n"]
    which = (
        "the pruned model within the run's mAP budget"
        if held
        else "the unpruned model (no cut held: final.pt is the unpruned model)"
    )
    metric = named("mAP50-95", unpruned)
    split = ""
    if best.from_pruning and best.from_runtime_and_precision:
        split = (
            f": {best.from_pruning:.2f}x from pruning (against the unpruned model in {best.runtime} "
            f"{best.pruning_precision}), {best.from_runtime_and_precision:.2f}x from the runtime and precision"
        )
    lines = [
        f"## Recommendation\n\nUse `{best.file}` in {best.runtime} at {best.precision}: "
        f"{best.latency_ms:.2f} ms (batch 1), {metric} {best.map50_95:.3f}, "
        f"{best.speedup_vs_onnxruntime_fp32:.2f}x faster than the unpruned model in onnxruntime FP32{split}. "
        f"It is the fastest file of {which}; a lower precision only within max_precision_drop of its float "
        "file's mAP50-95.\n"
    ]
    fp32 = {(r["model"], r["runtime"]): r["latency_ms"] for r in export.get("latency", []) if r["precision"] == "FP32"}
    for r in export.get("latency", []):
        ref = fp32.get((r["model"], r["runtime"]))
        if r["precision"] != "FP32" and ref and r["latency_ms"] > ref:
            lines.append(
                f"\n{r['precision']} runs slower than FP32 here: {r['model']} in {r['runtime']} "
                f"{r['latency_ms']:.2f} ms against {ref:.2f} ms.\n"
            )
    return lines + ["\n"]


# Display columns of the export stage's other tables (the deployment rows' are their record's, records.Deployed):
# (key in export.json, title, format); None cells show as "-"
LATENCY_COLUMNS = (
    ("model", "model", "{}"),
    ("runtime", "runtime", "{}"),
    ("precision", "precision", "{}"),
    ("latency_ms", "ms", "{:.2f}"),
    ("latency_speedup", "vs unpruned", "{:.2f}x"),
    ("macs", "GMACs", "{:.2f}"),
    ("file_mb", "size (MB)", "{:.1f}"),
)
LAYER_COLUMNS = (
    ("layer", "layer", "{}"),
    ("type", "type", "{}"),
    ("ms_before", "ms before", "{:.3f}"),
    ("ms_after", "ms after", "{:.3f}"),
    ("time_ratio", "time fell", "{:.2f}x"),
    ("macs_ratio", "MACs fell", "{:.2f}x"),
)
PARITY_COLUMNS = (
    ("format", "format", "{}"),
    ("precision", "precision", "{}"),
    ("max_abs_diff", "largest difference", "{:.1e}"),
    ("max_rel_diff", "largest relative difference", "{:.1e}"),
    ("matches", "matches torch", "{}"),
)
INT8_FORM_COLUMNS = (
    ("label", "form", "{}"),
    ("ms", "ms", "{:.2f}"),
    ("vs_default", "vs the CPU flags' form", "{:.2f}x"),
    ("error", "error", "{}"),
)


def display_rows(rows: list[dict], columns, **names) -> list[dict]:
    """rows as a table for people: the columns given (those some row has), titled and formatted; giga for MACs;
    yes/no for booleans; "-" for what was not measured. names fill the titles' {placeholders}."""
    shown = [c for c in columns if any(c[0] in r for r in rows)]
    out = []
    for r in rows:
        row = {}
        for key, title, fmt in shown:
            v = r.get(key)
            v = v / 1e9 if key == "macs" and v is not None else v
            row[title.format(**names)] = _cell(v, fmt)
        out.append(row)
    return out


def _cell(v, fmt: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return fmt.format(v)


def _int8_form(form: dict | None) -> str:
    """How the INT8 ONNX files were quantized and why that form (int8_onnx_form), with every form's time when they
    were timed."""
    if not form:
        return ""
    why = {
        "cpu flags": "the form this CPU's flags call for (int8_onnx_form: auto)",
        "name": "the form the run named (int8_onnx_form)",
        "timing": "the fastest of every form timed on the pruned model (int8_onnx_form: fastest)",
    }[form["chosen_by"]]
    text = f"\nINT8 ONNX files: onnxruntime static quantization, {form['label']}: {why}.\n"
    if form.get("forms"):
        text += "\n" + markdown_table(display_rows(form["forms"], INT8_FORM_COLUMNS))
        text += f"\nThe CPU flags' form is {form['default']}; times are medians of alternating blocks of runs.\n"
    return text


def _parity(export: dict) -> str:
    """The exported files against torch: each format's largest difference, the precision it ran in, and whether it
    matches within the tolerance."""
    formats = export.get("formats") or {}
    if not formats:
        return ""
    rows = [{"format": fmt, **f} for fmt, f in formats.items()]
    tolerance = export.get("parity_tolerance", 1e-3)
    intro = (
        f"\n### Exported files against torch\n\nThe first output; a file matches when every value is within "
        f"{tolerance:g} of torch's, relative to max(1, |value|).\n\n"
    )
    return intro + markdown_table(display_rows(rows, PARITY_COLUMNS))


def write_report(run: Run) -> str:
    """Assemble report.md from what the stages saved; return its text."""
    unpruned = run.read_json(run.unpruned_json) or {}
    ledger = run.read_ledger()
    export = run.read_json(run.export_json) or {}
    shown, manifest = run.read_json(run.detections_json), run.read_json(run.manifest) or {}
    classes = run.read_json(run.classes_json)
    parts = [
        f"# Pruning report: {run.name}\n\n",
        *_summary(unpruned, ledger, classes, shown, export, manifest.get("cpu"), run.settings.goal.max_map_drop),
        *label_free(run.settings, unpruned),
        *recommendation(export, unpruned, held=failed_cut(ledger) is None),
        "## Result\n\n",
    ]
    if unpruned and not ledger:
        parts.append("No pruning step yet (stage 30, the prune loop, has not run): the unpruned model alone.\n\n")
        row = {"": "unpruned", **_numbers(unpruned)}
        parts.append(markdown_table([{named(k, unpruned): v for k, v in row.items()}]))
    elif unpruned:
        parts += _result(unpruned, run.final_step(), ledger)
    parts.append("\n## Steps\n\n")
    parts.append(markdown_table(step_rows(ledger, unpruned)) if unpruned else "(no pruning yet)\n")
    parts.append(deployment_section(export))
    if classes:
        parts.append(f"\n## {named('mAP50-95', unpruned)} per class (val split; the classes that lost most first)\n\n")
        parts.append(markdown_table(class_rows(classes)))
    parts.append("\n## Plots\n")
    for path, title in plots(run):
        if path.is_file():
            parts.append(f"\n![{title}]({path.name})\n")
    parts.append(
        f"\n## Parameters\n\n<details><summary>Every parameter of the run (also in {run.params_yaml.name})"
        "</summary>\n\n```yaml\n" + yaml.safe_dump(run.params, sort_keys=False) + "```\n\n</details>\n"
    )
    text = "".join(parts)
    files.write_text(run.report_md, text)
    return text


def plots(run: Run) -> tuple:
    """The run's figures in the order the report shows them, with their titles."""
    return (
        (run.perf_png, "Performance"),
        (run.channels_png, "Channels per layer"),
        (run.pareto_png, "Accuracy against compute"),
        (run.classes_png, "Accuracy per class"),
        (run.detections_png, "Ground truth and predictions"),
        (run.deployment_png, "Accuracy against latency of each exported file"),
        (run.sensitivity_png, "Layer sensitivity"),
    )


def deployment_section(export: dict) -> str:
    """The export stage's tables for people: each file deployed, each runtime's latency, the files against torch,
    where the time goes ('' before the export stage)."""
    if not export.get("deployment"):
        return ""
    threads = next((r.get("threads") for r in export.get("latency", []) if r.get("threads")), 1)
    names = {"threads": f"{threads} thread{'s' if threads != 1 else ''}", "batch": export.get("throughput_batch", "-")}
    parts = [
        "\n## Deployment\n\nEach file's mAP50-95 through Ultralytics' validator in the precision it ran in; median "
        "latency at batch 1 on the run's threads and on all cores; throughput of the float files on all cores. The "
        "runtime settings of each row are in export.json.\n\n",
        markdown_table(display_rows([r.record() for r in deployed(export)], Deployed.columns(), **names)),
        _int8_form(export.get("int8_onnx")),
    ]
    if export.get("latency"):
        parts.append(f"\n### Latency in each runtime (batch 1, median, {names['threads']})\n\n")
        parts.append(markdown_table(display_rows(export["latency"], LATENCY_COLUMNS)))
        parts.append(_parity(export))
    if export.get("layers"):
        parts.append(
            "\n### Where the time goes (onnxruntime profiler, ms per layer)\n\nA layer whose time fell less than its "
            "MACs keeps costs that do not scale with channels: memory traffic, activations, small convolutions.\n\n"
        )
        parts.append(markdown_table(display_rows(export["layers"], LAYER_COLUMNS)))
    if "padding_macs" in export:
        padding = export["padding_macs"]
        cost = f"; zero channels padding unequal halves cost {padding / 1e6:.1f} M MACs" if padding else ""
        parts.append(
            "\nfinal.pt holds Ultralytics' own C3k2/C2f blocks (it loads without prunelib; train it further with "
            f"`python -m prunelib finetune`){cost}.\n"
        )
    return "".join(parts)


def stop_reason(ledger: list[Step]) -> str:
    """Why the loop stopped, in words ('' while it has not)."""
    stop = ledger[-1].stop if ledger else None
    return STOPS.get(stop, stop) if stop else ""


def _result(unpruned: dict, final: Step | None, ledger: list[Step]) -> list[str]:
    """The result table (unpruned vs final.pt), what the loop measured and why it stopped."""
    rows = [
        {"": "unpruned", **_numbers(unpruned)},
        {"": f"final ({_source(final)})", **_numbers(outcome(unpruned, final))},
    ]
    rows = [{named(k, unpruned): v for k, v in row.items()} for row in rows]
    out = [markdown_table(rows)]
    if final and final.timed:
        out.append(
            f"\nThe loop's measurement of {_source(final)} (what decides the goal), {final.latency_runtime} "
            f"batch 1: {final.unpruned_latency_ms:.1f} -> {final.latency_ms:.1f} ms, "
            f"{final.latency_speedup:.2f}x (timed blocks {final.latency_low:.2f}-{final.latency_high:.2f}x)."
            "\n"
        )
    landed = next((r.landing for r in reversed(ledger) if r.landing), None)
    if landed:
        out.append(f"\nThe cut was sized on timed trial copies: {landed}.\n")
    if stop_reason(ledger):
        out.append(f"\nStopped: {stop_reason(ledger)}.\n")
    epochs = sum(r.epochs for r in ledger)
    out.append(f"\nFine-tuning epochs in all: {epochs}.\n")
    return out


def _source(final: Step | None) -> str:
    if final is None:
        return "no step within budget"
    return "final fine-tune" if final.kind == FINAL else f"step {final.step}"


def _numbers(r: dict) -> dict:
    """A model's figures (unpruned.json's, or an outcome's) as the result table shows them."""
    return {
        "mAP50-95": f"{r['map50_95']:.3f}",
        "mAP50": f"{r['map50']:.3f}",
        "GMACs": f"{r['macs'] / 1e9:.2f}",
        "params (M)": f"{r['params'] / 1e6:.2f}",
    }


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
