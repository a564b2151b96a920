"""The whole staged pipeline through the CLI on params/smoke.yaml, and what it records."""

import json

import pytest

from conftest import SMOKE, cli
from prunelib.core.ledger import Step, final_step
from prunelib.deployment import export as exporter
from prunelib.deployment import quantize

pytestmark = pytest.mark.slow  # trains or runs the pipeline: make test, not make check


@pytest.fixture(scope="module")
def smoke_run(runs_root):
    r = cli("run", "--params", SMOKE, "--set", "run_name=cli-smoke")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return runs_root / "cli-smoke", r


def test_every_stage_leaves_its_notebook_and_outputs(smoke_run):
    run_dir, r = smoke_run
    assert "done: runs/cli-smoke/report.md" in r.stdout
    assert "without encryption" not in r.stdout + r.stderr  # kernels talk over local IPC sockets
    for stage in ("00-baseline", "10-inspect", "20-replace-c3k2", "30-prune-loop", "40-analysis", "50-export"):
        assert (run_dir / f"{stage}.ipynb").is_file(), stage
    for name in ("params.yaml", "manifest.json", "unpruned.json", "ledger.jsonl", "unpruned.pt", "final.pt",
                 "final.onnx", "perf.png", "channels.png", "pareto.png", "sensitivity.png", "report.md"):
        assert (run_dir / name).stat().st_size > 0, name
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert all(manifest["versions"][p] for p in ("torch", "ultralytics", "torch-pruning"))
    assert manifest["seed"] == 0 and manifest["cores"] >= 1 and manifest["versions"]["openvino"]
    assert manifest["cpu"]["model"] and isinstance(manifest["cpu"]["flags"], list)  # timings name their CPU


def test_ledger_holds_sane_numbers(smoke_run):
    run_dir, _ = smoke_run
    base = json.loads((run_dir / "unpruned.json").read_text())
    ledger = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ledger] == [1, 2]
    assert base["max_abs_diff"] <= 1e-5
    assert ledger[-1]["channel_ratio"] == pytest.approx(0.3, abs=0.02)
    assert base["macs"] > ledger[0]["macs"] > ledger[1]["macs"] and ledger[1]["speedup"] > 1.2
    assert base["params"] > ledger[0]["params"] > ledger[1]["params"]
    for r in ledger:
        for key in ("pruned_map50_95", "pruned_map50", "map50_95", "map50"):
            assert 0.0 <= r[key] <= 1.0
        assert r["seconds_finetune"] > 0 and r["seconds_prune"] > 0
        assert (run_dir.parent.parent / r["checkpoint"]).is_file()
    for r in ledger:  # compensation 'choose' (the default): each repair of the cut measured, the best kept
        measured = {k: r[f"pruned_{k}_map50_95"] for k in ("fold", "recalibrate", "none")}
        assert r["compensation"] == max(measured, key=measured.get)
        assert r["pruned_map50_95"] == pytest.approx(measured[r["compensation"]], abs=1e-6)


def test_accuracy_per_class_has_every_class(smoke_run):
    """classes.json: a row per class of the data set (the smoke set draws square and circle), the unpruned and final
    model's metric and the change, worst first; drawn in classes.png and tabled in the report."""
    from PIL import Image

    run_dir, _ = smoke_run
    rows = json.loads((run_dir / "classes.json").read_text())
    assert sorted(r["class"] for r in rows) == ["circle", "square"]
    for r in rows:
        assert r["instances"] > 0 and 0 <= r["unpruned"] <= 1 and 0 <= r["final"] <= 1
        assert r["change"] == pytest.approx(r["final"] - r["unpruned"], abs=1e-9)
    assert [r["change"] for r in rows] == sorted(r["change"] for r in rows)  # the class that lost most first
    assert Image.open(run_dir / "classes.png").size[0] >= 400
    report = (run_dir / "report.md").read_text()
    table = report.split("mAP50-95 per class")[1].split("\n## ")[0]
    assert all(f"| {r['class']} | {r['instances']} | {r['unpruned']:.4f} |" in table for r in rows)


def test_detections_show_each_model_beside_the_ground_truth(smoke_run):
    """detections.png: one row per image (detection_images, 6), one panel each for the ground truth, the unpruned
    model, final.pt ('pruned') and, when the recommended file runs at a reduced precision (INT8, BF16), that file;
    checked by the image's size; the images where a later model lost most come first. The summary says it."""
    from PIL import Image

    from prunelib.presentation import detections
    run_dir, _ = smoke_run
    best = json.loads((run_dir / "export.json").read_text())["recommended"]
    reduced = best and best["precision"] != "FP32"  # the recommended file's column: 'openvino INT8'
    labels = {"unpruned", "pruned"} | ({f"{best['runtime']} {best['precision']}"} if reduced else set())
    shown = json.loads((run_dir / "detections.json").read_text())
    assert len(shown) == 6 and all(r["objects"] > 0 and set(r["found"]) == labels for r in shown)
    lost = [max(r["lost"].values()) for r in shown]
    assert lost == sorted(lost, reverse=True)
    assert all(0 <= n <= r["found"]["unpruned"] for r in shown for n in r["lost"].values())
    assert Image.open(run_dir / "detections.png").size == ((1 + len(labels)) * detections.CELL,
                                                           6 * (detections.CELL + detections.TITLE))  # fmt: skip
    report = (run_dir / "report.md").read_text()
    summary = report.split("## Summary")[1].split("\n## ")[0]
    assert "![Ground truth and predictions](detections.png)" in report and "**detections.png**: final.pt misses" in summary
    assert "faster on 1 thread" in summary and (best is None or f"**Deploy** `{best['file']}`" in summary)


def test_report_and_export_records(smoke_run):
    run_dir, _ = smoke_run
    report = (run_dir / "report.md").read_text()
    assert "## Steps" in report and "## Latency" in report and "![Performance](perf.png)" in report
    assert report.split("## Steps")[1].split("\n## ")[0].count("\n| 2 |") == 1  # step 2: one row
    export = json.loads((run_dir / "export.json").read_text())
    assert export["padding_macs"] == 0  # layer-by-layer cuts leave both halves of a block equal: nothing to pad
    assert "final.pt holds Ultralytics' own C3k2/C2f blocks" in report
    runtimes = ("torch", "onnxruntime", "torchscript", "openvino")
    bf16 = exporter.openvino_offers("BF16")  # then OpenVINO is timed in BF16 too, labelled so
    assert {(r["model"], r["runtime"], r["precision"]) for r in export["latency"]} == \
        {(m, rt, "FP32") for m in ("unpruned", "pruned") for rt in runtimes} \
        | {(m, rt, "INT8") for m in ("unpruned", "pruned") for rt in ("onnxruntime", "openvino")} \
        | ({(m, "openvino", "BF16") for m in ("unpruned", "pruned")} if bf16 else set())  # fmt: skip
    pruned = [r for r in export["latency"] if r["model"].startswith("pruned")]
    assert all(r["macs_speedup"] > 1.2 and r["latency_ms"] > 0 for r in pruned)


def test_the_report_reads_at_a_glance(smoke_run):
    """The summary first, in a few short lines naming its timing; tables for people: no snake_case column, no Python
    reprs, no None; the parameters folded away at the end."""
    import re

    report = (smoke_run[0] / "report.md").read_text()
    summary = report.split("## Summary\n\n")[1].split("\n## ")[0].strip()
    assert len(summary.splitlines()) <= 8 and len(summary.split()) <= 110, summary
    assert "onnxruntime FP32, batch 1, re-timed after the run" in summary
    body = report.split("## Parameters")[0]
    lines = body.splitlines()
    headers = [line for line, below in zip(lines, lines[1:]) if line.startswith("| ") and below.startswith("|---")]
    assert headers and not [h for h in headers if re.search(r"\b[a-z0-9]+_[a-z0-9_]+\b", h)], headers
    assert "None" not in body and "{'" not in body and "True" not in body
    assert report.index("## Summary") < report.index("## Recommendation") < report.index("## Parameters")
    assert "<details>" in report.split("## Parameters")[1]


def test_each_deployed_file_is_timed_on_all_cores_and_at_batch_with_its_settings(smoke_run):
    """The deployment table: latency on all cores beside the run's one thread, the float files' throughput at
    throughput_batch (exported again at that batch, into batch/), and the runtime settings each file was timed
    with (those session() and openvino_model() apply); deployment.png plots every row."""
    import onnx
    from PIL import Image

    from prunelib.offline import threads

    run_dir, _ = smoke_run
    export = json.loads((run_dir / "export.json").read_text())
    assert export["throughput_batch"] == 8 and export["all_cores"] == threads(0)
    for r in export["deployment"]:
        assert r["latency_ms"] > 0 and r["all_cores_ms"] > 0
        fmt = "onnx" if r["runtime"] == "onnxruntime" else "openvino"
        assert r["settings"] == exporter.runtime_settings(fmt, r["precision"], 1)
        if r["precision"] == "INT8":
            assert r["throughput_img_s"] is None  # not exported again at that batch (calibration would repeat)
        else:  # images per second at batch 8: above what batch-1 latency alone gives on one thread, within reason
            assert r["throughput_img_s"] > 0  # measured and recorded; how fast is bench/'s to say, not a test's
    batch = onnx.load(run_dir / "batch" / "final.onnx").graph.input[0].type.tensor_type.shape.dim[0].dim_value
    assert batch == 8 and (run_dir / "batch" / "unpruned.onnx").is_file()
    assert Image.open(run_dir / "deployment.png").size[0] >= 600
    assert "![Accuracy against latency of each exported file](deployment.png)" in (run_dir / "report.md").read_text()


def int8_form_of(graph) -> str:
    """The quantize.FORMS name an INT8 ONNX graph was written in, read from it: QOperator (QLinearConv) or QDQ,
    unsigned or signed activations (the QuantizeLinear zero points), 7-bit weights (reduce_range), one scale per
    weight tensor or per channel."""
    import onnx
    from onnx import numpy_helper

    init = {i.name: i for i in graph.initializer}
    activations = {init[n.input[2]].data_type for n in graph.node if n.op_type == "QuantizeLinear"}
    assert len(activations) == 1, activations  # one activation type throughout
    if any(n.op_type == "QLinearConv" for n in graph.node):
        weights = [init[n.input[3]] for n in graph.node if n.op_type == "QLinearConv"]
        scales = [init[n.input[4]] for n in graph.node if n.op_type == "QLinearConv"]
    else:
        dq = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init
              and init[n.input[0]].data_type != onnx.TensorProto.INT32]  # weights, not the biases (int32)
        weights, scales = [init[n.input[0]] for n in dq], [init[n.input[1]] for n in dq]
    assert weights and {w.data_type for w in weights} == {onnx.TensorProto.INT8}  # signed weights in every form
    unsigned = activations == {onnx.TensorProto.UINT8}
    seven_bit = max(abs(numpy_helper.to_array(w).astype(int)).max() for w in weights) <= 64
    per_channel = any(numpy_helper.to_array(s).size > 1 for s in scales)
    if any(n.op_type == "QLinearConv" for n in graph.node):
        return "qoperator-u8s8" if unsigned else "qoperator-s8s8"
    if unsigned:
        return "u8s8-reduce-range" if seven_bit else "u8s8"
    return "s8s8-per-channel" if per_channel else "s8s8"


def test_every_format_matches_torch_and_int8_keeps_detecting(smoke_run):
    import onnx

    run_dir, _ = smoke_run
    export = json.loads((run_dir / "export.json").read_text())
    base = json.loads((run_dir / "unpruned.json").read_text())
    final = final_step([Step.of(json.loads(line)) for line in (run_dir / "ledger.jsonl").read_text().splitlines()])
    assert sorted(export["formats"]) == ["onnx", "openvino", "torchscript"]
    for fmt, f in export["formats"].items():
        assert f["matches"] and f["max_rel_diff"] <= export["parity_tolerance"], (fmt, f)
        assert f["precision"] == "FP32", (fmt, f)  # OpenVINO asked for FP32 explicitly: never BF16 under that label
        assert (run_dir.parent.parent / f["pruned"]).exists() and (run_dir.parent.parent / f["unpruned"]).exists()
    rows = {(r["model"] + ("-int8" if r["precision"] == "INT8" else ""), r["runtime"]): r for r in export["deployment"]
            if r["map_of"] == r["file"]}  # each file in the precision its runtime picks, validated itself
    # an IR that OpenVINO runs in BF16 by default has its FP32 row too, scored by the ONNX FP32 file (same arithmetic)
    at_f32 = [r for r in export["deployment"] if r["map_of"] != r["file"]]
    assert len(at_f32) == (2 if exporter.openvino_offers("BF16") else 0)
    for r in at_f32:
        assert (r["runtime"], r["precision"], r["settings"]["INFERENCE_PRECISION_HINT"]) == ("openvino", "FP32", "f32")
        assert r["map50_95"] == rows[(r["model"], "onnxruntime")]["map50_95"] and r["map_of"].endswith(".onnx")
    assert list(rows) == [(m, rt) for m in ("unpruned", "pruned", "unpruned-int8", "pruned-int8")
                          for rt in ("onnxruntime", "openvino")]  # fmt: skip
    # the exported files score what the checkpoints scored in torch (same validator, same images), at FP32 within
    # 0.01, OpenVINO in its own choice of precision (BF16 where the CPU has it) within 0.03
    ov = "BF16" if exporter.openvino_offers("BF16") else "FP32"
    for m, score in (("unpruned", base["map50_95"]), ("pruned", final.map50_95)):
        assert rows[(m, "onnxruntime")]["map50_95"] == pytest.approx(score, abs=0.01)
        assert rows[(m, "openvino")]["precision"] == ov
        assert rows[(m, "openvino")]["map50_95"] == pytest.approx(score, abs=0.03 if ov == "BF16" else 0.01)
    for m, stem in (("unpruned", "unpruned"), ("pruned", "final")):
        for rt, name in (("onnxruntime", f"{stem}_int8.onnx"), ("openvino", f"{stem}_int8_openvino_model")):
            int8 = rows[(f"{m}-int8", rt)]
            assert int8["precision"] == "INT8" and int8["file"].rstrip("/").endswith(name)
            assert int8["file_mb"] < rows[(m, rt)]["file_mb"] / 2  # 8-bit weights
            assert int8["map50_95"] > 0.5 * rows[(m, rt)]["map50_95"]  # calibrated: it still detects
            assert int8["latency_ms"] > 0 and int8["speedup_same_runtime"] > 0  # timed (tests/test_choices.py: the
            # speed-ups and the recommendation from fixed times)
    # int8_onnx_form: fastest (the default): every form timed on the pruned model, the files in the one chosen, read
    # from the ONNX graphs themselves (which form is fastest from given times: tests/test_choices.py)
    form = export["int8_onnx"]
    timed = {r["form"]: r for r in form["forms"] if "ms" in r}
    assert form["chosen_by"] == "timing" and {r["form"] for r in form["forms"]} == set(quantize.FORMS)
    assert form["form"] in timed and all(r["ms"] > 0 for r in timed.values())
    for name in ("final_int8.onnx", "unpruned_int8.onnx"):
        assert int8_form_of(onnx.load(run_dir / name).graph) == form["form"], name
    assert f"INT8 ONNX files: onnxruntime static quantization, {quantize.FORMS[form['form']].label}: the fastest" in (
        run_dir / "report.md").read_text()
    best = export["recommended"]  # a file of the pruned model, one of the deployment rows
    assert best["model"] == "pruned" and best["file"] in {r["file"] for r in export["deployment"]}
    layers = {r["layer"]: r for r in export["layers"]}
    assert len(layers) >= 20 and all(r["ms_before"] >= 0 and r["ms_after"] >= 0 for r in layers.values())
    # a fast CPU may run a small layer in under the profiler's 1 µs: its time is 0, not an error
    assert sum(r["ms_before"] > 0 and r["ms_after"] > 0 for r in layers.values()) > len(layers) / 2
    assert layers[2]["macs_ratio"] > 1.1  # a pruned C3k2 block lost MACs; its time is measured beside them
    report = (run_dir / "report.md").read_text()
    assert "## Deployment" in report and "## Where the time goes" in report and "INT8" in report
    sections = report.split("\n## ")
    assert sections[1].startswith("Summary\n\n- **final.pt** (step 2): ") and "- **Lost most**: class " in sections[1]
    assert sections[2].startswith("Recommendation\n\nUse `" + best["file"] + "` in " + best["runtime"])
    timings = json.loads((run_dir / "timings.json").read_text())
    assert len(timings) == 6


def test_the_unpruned_channel_count_is_the_runs_own(smoke_run):
    """unpruned.json's prunable channels (the loop's 100 %) count what this run may cut: runs that differ in prune_head
    do not share one count (before, a run with the head whole reused a head-pruned run's count, and its ledger read
    23.9 % of the channels pruned for a 5 % cut)."""
    from prunelib import runs
    from prunelib.runs import open_run, stages
    from prunelib.surgery import checkpoints, measuring, pruner

    smoke = runs.load_run("cli-smoke")
    flipped = {"run_name": "cli-smoke-prune-head", "prune_head": not smoke.settings.pruning.prune_head}
    other = open_run([SMOKE], flipped)
    stages.baseline(other, log=lambda line: None)
    counted = stages.replace(other, log=lambda line: None)["channels"]
    model, x = checkpoints.load_model(other.unpruned_pt), measuring.example_inputs(other.settings.training.imgsz)
    assert counted == pruner.prunable_channels(model, other.settings.pruning, x)
    assert counted != smoke.read_json(smoke.unpruned_json)["channels"]


def test_second_run_reuses_the_baseline_and_completed_steps(smoke_run):
    # the stage functions the notebooks call, on the finished run, in this process
    from prunelib import runs
    from prunelib.runs import stages

    run_dir, _ = smoke_run
    ledger = (run_dir / "ledger.jsonl").read_text()
    run, lines = runs.load_run("cli-smoke"), []
    assert stages.baseline(run, log=lines.append)["source"] == "cache"
    stages.prune(run, log=lines.append)
    assert any("Reused the cached baseline" in line for line in lines)
    assert any("is complete (done); nothing to do" in line for line in lines)
    assert (run_dir / "ledger.jsonl").read_text() == ledger


def test_the_cli_and_the_notebooks_leave_the_same_files(smoke_run, runs_root):
    r = cli("prune", "--params", SMOKE, "--run-name", "cli-prune-smoke")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "done: runs/cli-prune-smoke/final.pt, runs/cli-prune-smoke/report.md" in r.stdout
    first = r.stdout.splitlines()[0]  # what the run will do, before anything else
    assert first.startswith("Goal: 30% of the prunable channels removed; your recipe (") and " min here" in first
    assert not [line for line in r.stdout.splitlines() if line.startswith(("PyTorch: starting", "ONNX: ", "OpenVINO:"))]

    def names(d):
        return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.suffix != ".ipynb"}

    by_notebooks, by_cli = names(smoke_run[0]), names(runs_root / "cli-prune-smoke")
    assert by_cli == by_notebooks, (by_cli ^ by_notebooks)
    assert json.loads((runs_root / "cli-prune-smoke" / "timings.json").read_text()).keys() == \
        json.loads((smoke_run[0] / "timings.json").read_text()).keys()


def test_a_failing_stage_names_itself_and_keeps_its_notebook(runs_root):
    r = cli("run", "--params", SMOKE, "--set", "run_name=no-baseline", "--set", "synth_train=6", "--stages", "10")
    assert r.returncode == 2
    assert "error: stage 10-inspect failed in cell" in r.stderr
    assert "(UserError: no starting model yet" in r.stderr and "run stage 00-baseline first" in r.stderr
    assert "runs/no-baseline/10-inspect.ipynb" in r.stderr
    assert (runs_root / "no-baseline" / "10-inspect.ipynb").is_file()
