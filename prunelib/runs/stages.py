"""The stages of a run, one function each, taking the Run and reading and writing its files.

The notebooks call these and display what they return; ``python -m prunelib prune`` calls the same functions in the
same order (``run_stages``), so both paths leave the same files. A stage needs what the stages before it made and
says which stage to run when it is missing.

| stage              | function   | writes                                                                   |
|--------------------|------------|--------------------------------------------------------------------------|
| 00-baseline        | baseline   | (the cached synthetic data and baseline, unless yours), data-preview.jpg |
| 10-inspect         | inspect    | nothing: layers, blocks, ignored layers, dependency groups               |
| 20-replace-c3k2    | replace    | unpruned.pt, unpruned.json                                               |
| 30-prune-loop      | prune      | steps/step_XX/, ledger.jsonl, final.pt (layer-weights.json: see loop)    |
| 40-analysis        | analyse    | perf.png, channels.png, pareto.png, classes.png/.json,                   |
|                    |            | detections.png/.json, sensitivity.png/.json                              |
| 50-export          | export     | unpruned/final .onnx .torchscript _openvino_model/, _int8.onnx,          |
|                    |            | _int8_openvino_model/, batch/ (throughput), export.json,                 |
|                    |            | deployment.png, report.md                                                |
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import time
from importlib.metadata import version
from pathlib import Path

from prunelib import console, files, tasks
from prunelib.core.folder import Run
from prunelib.core.ledger import Step
from prunelib.core.settings import Settings
from prunelib.offline import threads
from prunelib.deployment import alternatives, quantize
from prunelib.deployment.records import Deployed, Recommended, float_score, holds_precision
from prunelib.deployment import export as exporter
from prunelib.presentation import analysis, detections, plotting, report
from prunelib.runs import loop, sensitivity, stock
from prunelib.surgery import checkpoints, inspection, measuring, pruner
from prunelib.surgery.replacement import max_output_difference, replace_c3k2
from prunelib.training import datasets, embedded
from prunelib.training.validation import evaluate


def _holds_the_run(stage):
    """Every stage holds the run's lock while it works (re-entrant; see Run.lock), its chatter kept in the run's log."""

    @functools.wraps(stage)
    def locked(run: Run, *args, **kwargs):
        console.log_to(run.log_txt)
        with run.lock():
            return stage(run, *args, **kwargs)

    return locked


def _then_report(stage):
    """A stage that changes what report.md says writes it anew when done: a run stopped after any stage has one."""

    @functools.wraps(stage)
    def reported(run: Run, *args, **kwargs):
        out = stage(run, *args, **kwargs)
        report.write_report(run)
        return out

    return reported


@_holds_the_run
def baseline(run: Run, log=print) -> dict:
    """The run's data and starting model (the embedded baseline is made or taken from the cache), and a preview."""
    settings = run.settings
    start = embedded.ensure(settings, log)
    info = datasets.check_data_yaml(start["data"])
    names = info["names"]
    task = embedded.synthetic_task(settings.source)
    preview = datasets.preview_batch(settings.training, start["data"], task=task)
    plotting.data_preview(preview, names, run.data_preview)
    return {
        **start,
        "classes": list(names.values()) if isinstance(names, dict) else list(names),
        "preview": run.data_preview,
    }


@_holds_the_run
def inspect_model(run: Run, log=print) -> dict:
    """What the starting model is made of, as the pruner will see it."""
    settings, imgsz = run.settings, run.settings.training.imgsz
    model = checkpoints.load_model(embedded.model_path(settings, train=False)[0])
    return {
        "summary": inspection.summary(model, imgsz),
        "layers": measuring.layer_table(model, imgsz),
        "blocks": inspection.blocks(model),
        "ignored": inspection.ignored(model, settings.pruning),
        "groups": inspection.dependency_groups(model, settings.pruning, imgsz),
    }


@_holds_the_run
@_then_report
def replace(run: Run, log=print, evaluate=evaluate) -> dict:
    """unpruned.pt (every C3k2/C2f made prunable, checked exact) and unpruned.json, its measurements; made once per
    run, and shared through the cache by runs of the same model, data and measuring settings (a sweep's runs)."""
    info = run.read_json(run.unpruned_json)
    if info and run.unpruned_pt.is_file():
        return info
    source, _ = embedded.model_path(run.settings, train=False)
    shared = Run(run.cache / f"unpruned-{_unpruned_key(run.settings, source)}", run.params)
    if evaluate is not _VALIDATOR:  # scripted measurements (tests) are never shared
        return _replace_and_measure(run, source, evaluate, log)
    with files.exclusive(shared.dir.with_name(f".{shared.dir.name}.lock")):  # parallel runs measure it once
        if shared.unpruned_json.is_file():
            files.copy(shared.unpruned_pt, run.unpruned_pt)
            files.copy(shared.unpruned_json, run.unpruned_json)
            log(f"Reused the unpruned model and its measurements from {run.rel(shared.dir)}")
            return run.read_json(run.unpruned_json)
        info = _replace_and_measure(run, source, evaluate, log)
        _share(run, shared)
    return info


def _replace_and_measure(run: Run, source: Path, evaluate, log) -> dict:
    settings, imgsz = run.settings, run.settings.training.imgsz
    original = checkpoints.load_model(source)
    model = copy.deepcopy(original)
    replaced = replace_c3k2(model)
    x = measuring.example_inputs(imgsz)
    diff, diff_train = (max_output_difference(original, model, x, train=t) for t in (False, True))
    log(f"Replaced {len(replaced)} C3k2/C2f blocks; max |output difference| {diff:.2e}")
    checkpoints.save_model(model, run.unpruned_pt)
    macs, n = measuring.macs_params(model, imgsz)
    t0 = time.perf_counter()
    metrics = evaluate(model, settings.training, embedded.data_yaml(settings), run.val_dir("unpruned"))
    task = tasks.of(model)
    info = {
        "source": settings.source.model or run.rel(source),
        "task": task.name,
        "metric": task.label,  # what every map50_95 of the run measures
        "data": settings.source.data or "synthetic",
        "replaced_blocks": [list(r) for r in replaced],
        "max_abs_diff": diff,
        "max_abs_diff_train": diff_train,
        "macs": macs,
        "params": n,
        "channels": pruner.prunable_channels(model, settings.pruning, x),
        "seconds_validate": round(time.perf_counter() - t0, 2),
        **metrics,
    }
    run.write_json(run.unpruned_json, info)
    log(f"Unpruned: {task.name}, params {n / 1e6:.2f}M, MACs {macs / 1e9:.2f}G, {task.label} {metrics['map50_95']:.4f}")
    return info


_VALIDATOR = evaluate  # replace() shares only what the real validator measured


def _unpruned_key(settings: Settings, source: Path) -> str:
    """What the replaced model and its measurements depend on: the checkpoint's bytes, the data, the settings."""
    data = embedded.data_yaml(settings)
    blob = {
        "model": hashlib.sha256(Path(source).read_bytes()).hexdigest(),
        "data": str(data),
        "data_yaml": data.read_text(),
        "versions": [version(p) for p in ("torch", "ultralytics", "torch-pruning")],
        "imgsz": settings.training.imgsz,
        "batch": settings.training.batch,
        # what pruner.kept_whole keeps, so the prunable channels unpruned.json counts (the loop's 100 %)
        "ignore_layers": list(settings.pruning.ignore_layers),
        "prune_head": settings.pruning.prune_head,
        "prune_proto": settings.pruning.prune_proto,
        "prune_attention": settings.pruning.prune_attention,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]


def _share(run: Run, shared: Run) -> None:
    try:
        with files.atomic(shared.dir) as tmp:
            tmp.mkdir()
            for path in (run.unpruned_pt, run.unpruned_json):
                files.copy(path, tmp / path.name)
    except OSError:  # another run shared the same first
        pass


@_holds_the_run
@_then_report
def prune(run: Run, log=print, on_step=None, evaluate=evaluate) -> list[Step]:
    """The prune -> fine-tune loop (resumed where it stopped); returns the ledger."""
    return loop.prune_loop(run, log=log, on_step=on_step, evaluate=evaluate)


@_holds_the_run
@_then_report
def analyse(run: Run, log=print) -> dict:
    """The figures of the run (and the sensitivity scan when on); returns their paths and the channel table."""
    settings = run.settings
    unpruned = run.read_json(run.unpruned_json)
    plotting.performance(run.read_ledger(), unpruned, run.perf_png)
    before, after = (
        [*measuring.layer_table(m, settings.training.imgsz), *measuring.head_rows(m)]
        for m in map(checkpoints.load_model, (run.unpruned_pt, run.final))
    )
    plotting.channels(before, after, run.channels_png)
    shown = analysis.pareto_runs(run)
    plotting.pareto(analysis.pareto_series(shown), run.pareto_png, "this run" if shown == [run] else "the sweep's runs")
    data, training = embedded.data_yaml(settings), settings.training
    scores = [
        evaluate(checkpoints.load_model(path), training, data, run.val_dir(f"classes-{label}"), per_class=True)
        for label, path in (("unpruned", run.unpruned_pt), ("final", run.final))
    ]
    classes = analysis.per_class(*scores)
    run.write_json(run.classes_json, classes)
    plotting.classes(classes, unpruned, run.classes_png)
    figures = [run.perf_png, run.channels_png, run.pareto_png, run.classes_png]
    if settings.shown.detection_images:
        figures.append(_draw_detections(run, {"unpruned": run.unpruned_pt, "pruned": run.final}))
    if settings.shown.sensitivity:
        scan = sensitivity.scan(run, data, log)
        plotting.sensitivity(scan, unpruned, run.sensitivity_png)
        figures.append(run.sensitivity_png)
    rows = [
        {"layer": b["layer"], "type": b["type"], "before": b["c_out"], "after": a["c_out"]}
        for b, a in zip(before, after)
        if b["c_out"]
    ]
    return {"figures": figures, "channels": rows, "classes": classes}


def _draw_detections(run: Run, models: dict) -> Path:
    """detections.png and detections.json: the run's validation images drawn with the ground truth and each model's
    predictions ({label: checkpoint or exported file}, the unpruned model first)."""
    s, task = run.settings, task_of(run)
    data = embedded.data_yaml(s)
    compared = detections.compare(models, data, s.training.imgsz, task, s.shown.detection_images, s.training.seed)
    detections.panel(compared, run.detections_png, task)
    run.write_json(
        run.detections_json,
        [
            {"image": Path(r["file"]).name, "objects": r["truth"], "found": r["found"], "lost": r["lost"]}
            for r in compared["images"]
        ],
    )
    return run.detections_png


@_holds_the_run
@_then_report
def export(run: Run, log=print) -> dict:
    """The unpruned and the final model in each export format (checked against torch) and in INT8, beside the
    alternatives (the user's checkpoints, the stock model when asked: alternatives, runs.stock) exported and timed
    the same way; their latency, each file's mAP50-95, the file to deploy and whether it beats each alternative
    (detections.png drawn again with its predictions when it runs at a reduced precision), where the time goes layer
    by layer; then report.md."""
    s, imgsz = run.settings, run.settings.training.imgsz
    alts = _alternatives(run, log)
    models = _exported(run, alts)
    parity = exporter.parity(run.final, {fmt: models["pruned"][fmt] for fmt in s.export.export_formats}, imgsz)
    timing = s.timing.batch1
    latency = exporter.with_speedups(exporter.latency_table(models, imgsz, *timing), "unpruned")
    also = _all_cores(run, models) + _throughput(run, models)
    tables = [measuring.layer_table(checkpoints.load_model(models[k]["pt"]), imgsz) for k in ("unpruned", "pruned")]
    times = [exporter.layer_times(models[k]["onnx"], imgsz, *timing) for k in ("unpruned", "pruned")]
    step = run.final_step()  # final.pt is folded into Ultralytics' blocks: unequal halves cost zero channels
    padding = next(r["macs"] for r in latency if r["model"] == "pruned") - step.macs if step else 0
    hits: dict = {}  # each validated file's hits per val image: how sure each verdict's accuracy is
    deployment = _deployment(run, models, latency, also, hits)
    unpruned = run.read_json(run.unpruned_json)
    best = recommend(deployment, latency, unpruned["map50_95"], s.goal.max_map_drop, s.export.max_precision_drop)
    kinds = {a.label: a.kind for a in alts}
    sized = run.read_json(run.stock_json) if s.alternatives.stock_alternative else None
    matched_in = {"stock": alternatives.place(sized["runtime"], sized["precision"])} if sized else {}
    verdicts = alternatives.verdicts(deployment, best, kinds, s.export.max_precision_drop, matched_in)
    verdicts = alternatives.with_noise(verdicts, deployment, hits)
    formats = {
        fmt: {"unpruned": run.rel(models["unpruned"][fmt]), "pruned": run.rel(models["pruned"][fmt]), **parity[fmt]}
        for fmt in s.export.export_formats
    }
    result = {
        "formats": formats,
        "parity_tolerance": exporter.PARITY_TOL,
        "onnx": run.rel(models["pruned"]["onnx"]),
        "onnx_max_abs_diff": parity["onnx"]["max_abs_diff"],
        "padding_macs": padding,
        "latency": latency,
        "deployment": [r.record() for r in deployment],
        "recommended": best.record() if best else None,
        "alternatives": [v.record() for v in verdicts],
        "layers": exporter.layer_rows(*tables, *times),
        "throughput_batch": s.timing.throughput_batch,
        "all_cores": threads(0),
        "int8_onnx": models.get("pruned-int8", {}).get("int8_onnx"),
    }
    run.write_json(run.export_json, result)
    plotting.deployment(deployment, best, unpruned, threads(s.timing.latency_threads), run.deployment_png)
    if s.shown.detection_images and best and best.precision != "FP32":  # its predictions may differ from final.pt's
        path = next(m[f] for m in models.values() for f in exporter.RUNTIMES if m.get(f) and run.rel(m[f]) == best.file)
        _draw_detections(run, {"unpruned": run.unpruned_pt, "pruned": run.final, best.label: path})
    written = [run.rel(m[f]) for m in models.values() for f in exporter.RUNTIMES if f in m and m["pt"] == run.final]
    diffs = ", ".join(f"{f} {d['max_rel_diff']:.1e} ({d['precision']})" for f, d in parity.items())
    log(f"Exported {', '.join(written)} (max relative |diff| vs torch: {diffs}); {run.rel(run.report_md)}")
    for v in verdicts:
        log(v.sentence().replace("**", ""))
    return result


def _alternatives(run: Run, log=print) -> list[alternatives.Alternative]:
    """The run's alternatives, checked against its model (same task and classes) before anything is exported, each
    copied into the run (its exports land beside the copy); the stock model trained when stock_alternative asks."""
    asked = run.settings.alternatives
    unpruned = checkpoints.load_model(run.unpruned_pt)
    alts = alternatives.read(list(asked.alternatives), task_of(run), tasks.classes(unpruned))
    copied = [
        alternatives.Alternative(a.label, files.copy(a.path, run.alternatives_dir / f"{a.label}.pt"), a.kind)
        for a in alts
    ]
    if asked.stock_alternative:
        copied.append(alternatives.Alternative("stock", stock.make(run, log), "stock"))
    return copied


def _exported(run: Run, alts: list[alternatives.Alternative] = ()) -> dict:
    """{label: {"pt": checkpoint, <format>: exported file}} for the unpruned model, the final one and each
    alternative, and each in INT8 ('<label>-int8': "model" names the model in the tables, "precision" is INT8; ONNX
    quantized in the int8_form chosen, "int8_onnx" says which; OpenVINO by NNCF through Ultralytics' exporter).
    OpenVINO IRs are timed at FP32 and, where this CPU runs bfloat16 natively, at BF16 too."""
    s, imgsz = run.settings, run.settings.training.imgsz
    models = {"unpruned": {"pt": run.unpruned_pt}, "pruned": {"pt": run.final}} | {
        a.label: {"pt": a.path} for a in alts
    }
    labels = list(models)
    for label in labels:
        for fmt in s.export.export_formats:
            models[label][fmt] = exporter.export(
                models[label]["pt"], fmt, imgsz, s.export.onnx_simplify, s.export.opset
            )
            if fmt == "openvino" and exporter.openvino_offers("BF16"):
                models[label]["openvino_precisions"] = ["FP32", "BF16"]
    if s.export.int8:
        data = embedded.data_yaml(s)
        calibration = quantize.Calibration(data, s.training, s.export.int8_fraction, task_of(run))
        form = int8_form(run, models["pruned"]["onnx"], calibration)
        for label in labels:  # ONNX: the float file just exported, quantized
            m = models[label]
            models[f"{label}-int8"] = {
                "pt": m["pt"],
                "model": label,
                "torch": False,
                "precision": "INT8",
                "onnx": exporter.int8_onnx(m["onnx"], calibration, form["form"]),
                "int8_onnx": form,
            }
            if "openvino" in s.export.export_formats:
                models[f"{label}-int8"]["openvino"] = exporter.export(m["pt"], "openvino", imgsz, int8=calibration)
    return models


def int8_form(run: Run, fp32, calibration: quantize.Calibration) -> dict:
    """The quantize.FORMS form of the run's INT8 ONNX files (int8_onnx_form), as export.json's "int8_onnx": {"form",
    "label", "chosen_by": "name" (the one named), "cpu flags" (auto) or "timing" (fastest: every form timed on the
    pruned model's float file fp32 at latency_threads; their times in "forms")}."""
    asked = run.settings.export.int8_onnx_form
    if asked == "fastest":
        timed = exporter.fastest_int8_form(fp32, calibration, *run.settings.timing.batch1)
        return {
            "form": timed["form"],
            "label": quantize.FORMS[timed["form"]].label,
            "chosen_by": "timing",
            "forms": timed["forms"],
            "default": timed["default"],
        }
    form = quantize.form_for_this_cpu() if asked == "auto" else asked
    return {"form": form, "label": quantize.FORMS[form].label, "chosen_by": "cpu flags" if asked == "auto" else "name"}


def _all_cores(run: Run, models: dict) -> list[dict]:
    """Batch-1 latency of the ONNX files and OpenVINO IRs on all cores, when the run times on fewer."""
    s = run.settings
    if threads(s.timing.latency_threads) == threads(0):
        return []
    deployed = {
        label: {k: v for k, v in m.items() if k != "torchscript"} | {"torch": False} for label, m in models.items()
    }
    timing = s.timing
    rows = exporter.latency_table(deployed, s.training.imgsz, timing.latency_runs, timing.latency_warmup, 0)
    return [r | {"measure": "all_cores_ms"} for r in rows]


def _throughput(run: Run, models: dict) -> list[dict]:
    """The unpruned and the pruned model's float files exported again at throughput_batch (into run.batch_dir) and
    timed on all cores: a batch's ms, for the deployment table's images per second."""
    s, batch = run.settings, run.settings.timing.throughput_batch
    if batch <= 1:
        return []
    again = {}
    for label in ("unpruned", "pruned"):
        pt = run.batch_dir / models[label]["pt"].name
        files.copy(models[label]["pt"], pt)
        again[label] = {
            "pt": pt,
            "torch": False,
            **{k: v for k, v in models[label].items() if k == "openvino_precisions"},
        }
        for fmt in ("onnx", "openvino"):
            if fmt in s.export.export_formats:
                again[label][fmt] = exporter.export(
                    pt, fmt, s.training.imgsz, s.export.onnx_simplify, s.export.opset, batch=batch
                )
    timing = s.timing
    rows = exporter.latency_table(again, s.training.imgsz, timing.latency_runs, timing.latency_warmup, 0, batch)
    return [r | {"measure": "batch_ms"} for r in rows]


def _deployment(
    run: Run, models: dict, latency: list[dict], also: list[dict], hits: dict | None = None
) -> list[Deployed]:
    """Each exported ONNX file and OpenVINO IR: its mAP50-95 through Ultralytics' validator (the run's val split) in
    the precision the runtime ran it in there (OpenVINO's own choice: BF16 on a CPU with bfloat16 units), that
    precision's latency on the run's threads and on all cores (also: _all_cores), its throughput at
    throughput_batch (also: _throughput; float files only), its speed-ups, size and the runtime settings that run
    it as timed. Where OpenVINO's own choice is not FP32, the IR at FP32 has a row too, its mAP50-95 the ONNX FP32
    file's (the same arithmetic: both match torch within the parity tolerance); "map_of" names the file validated.
    hits, when given, gets {file validated: what the validator recorded for each image} (bootstrap.ImageHits)."""
    s = run.settings
    data, task, training = embedded.data_yaml(s), task_of(run), s.training
    each = {"per_image": hits is not None}
    timed = {(r["model"], r["runtime"], r["precision"]): r for r in latency}
    more = {(r["measure"], r["model"], r["runtime"], r["precision"]): r for r in also}
    rows = []
    for label, m in models.items():
        scored = {}  # precision -> (mAP50-95, the file validated) of this label's files
        for fmt in ("onnx", "openvino"):
            if not m.get(fmt):
                continue
            own = m.get("precision", "FP32") if fmt == "onnx" else exporter.openvino_default(m[fmt])
            name = m.get("model", label)
            for precision in [own] + (["FP32"] if own not in ("FP32", "INT8") and "FP32" in scored else []):
                t = timed.get((name, exporter.RUNTIMES[fmt], precision))
                if t is None:  # a precision this run did not time
                    continue
                if precision == own:
                    scored_file = evaluate(m[fmt], training, data, run.val_dir(f"export-{label}-{fmt}"), task, **each)
                    score, of = round(scored_file["map50_95"], 4), run.rel(m[fmt])
                    scored.setdefault(precision, (score, of))
                    if hits is not None:
                        hits[of] = scored_file["images"]
                else:
                    score, of = scored[precision]
                key = (name, t["runtime"], precision)
                batch = more.get(("batch_ms", *key))
                rows.append(
                    Deployed(
                        model=name,
                        runtime=t["runtime"],
                        precision=precision,
                        file=run.rel(m[fmt]),
                        map50_95=score,
                        map_of=of,
                        latency_ms=t["latency_ms"],
                        all_cores_ms=more.get(("all_cores_ms", *key), t)["latency_ms"],
                        throughput_img_s=round(batch["batch"] * 1000 / batch["latency_ms"], 1) if batch else None,
                        speedup_same_runtime=t["latency_speedup"],
                        speedup_vs_onnxruntime_fp32=t.get("vs_onnxruntime_fp32"),
                        file_mb=t["file_mb"],
                        settings=exporter.runtime_settings(fmt, precision, s.timing.latency_threads),
                    )
                )
    return rows


def recommend(
    deployment: list[Deployed],
    latency: list[dict],
    unpruned_map: float,
    max_drop: float,
    max_precision_drop: float,
) -> Recommended | None:
    """The deployment row to use: the fastest file of the pruned model whose float file is within the run's budget
    (max_map_drop below the unpruned model's) and which keeps its precision (a lower-precision file within
    max_precision_drop of that float file: records.holds_precision); None when none is. Its speed-up over the
    unpruned model in onnxruntime at FP32, split into what pruning bought (the unpruned over the pruned model in the
    same runtime and precision, 'pruning_precision'; FP32 when the unpruned model was not timed in it) and what the
    runtime and precision did."""
    score = float_score(deployment, "pruned")
    if score is None or unpruned_map - score > max_drop + 1e-9:
        return None
    fits = [r for r in deployment if r.model == "pruned" and holds_precision(r, deployment, max_precision_drop)]
    best = min(fits, key=lambda r: r.latency_ms)
    ms = {(r["model"], r["runtime"], r["precision"]): r["latency_ms"] for r in latency}
    precision = best.precision if ("unpruned", best.runtime, best.precision) in ms else "FP32"
    before, after = ms.get(("unpruned", best.runtime, precision)), ms.get(("pruned", best.runtime, precision))
    pruning = round(before / after, 2) if before and after else None
    total = best.speedup_vs_onnxruntime_fp32
    return Recommended(
        **vars(best),
        from_pruning=pruning,
        pruning_precision=precision,
        from_runtime_and_precision=round(total / pruning, 2) if total and pruning else None,
    )


def task_of(run: Run) -> str:
    """The run's task, as stage 20 recorded it (unpruned.json)."""
    return run.read_json(run.unpruned_json)["task"]


STAGES = {
    "00-baseline": baseline,
    "10-inspect": inspect_model,
    "20-replace-c3k2": replace,
    "30-prune-loop": prune,
    "40-analysis": analyse,
    "50-export": export,
}


@_holds_the_run
def run_stages(run: Run, names=None, log=print, do=None) -> None:
    """Do the stages in order, each timed into the run folder: by calling its function (the CLI's ``prune``), or
    do(name) (the pipeline: it executes the stage's notebook, which calls the same function)."""
    for name in names or STAGES:
        log(f"[{name}] running")
        t0 = time.perf_counter()
        if do is None:
            STAGES[name](run, log=log)
        else:
            do(name)
        run.record_timing(name, time.perf_counter() - t0)
        log(f"[{name}] done in {time.perf_counter() - t0:.1f} s")
