"""Which INT8 form onnxruntime runs fastest on this CPU: a finished run's unpruned and final model, each quantized
statically in several forms (onnxruntime's own options: QDQ or QOperator, signed or unsigned activations,
per-channel weights, reduce_range, which ops are quantized), calibrated on the run's training images, timed at
batch 1 against its FP32 file in alternating blocks of runs, and scored through Ultralytics' validator.

    .venv/bin/python bench/onnx_int8.py --run demo [--runs 40] [--calibration 64]

The run must have been exported (stage 50: final.onnx, unpruned.onnx). Ultralytics' own INT8 ONNX quantizes only
Conv/Gemm/MatMul nodes, per tensor, in QDQ with signed activations: the first row reproduces it; the others change
one choice at a time. The export stage's INT8 ONNX files take the form int8_onnx_form names (auto:
quantize.form_for_this_cpu()).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import publish

from prunelib.core.settings import Training
from prunelib.deployment import export, quantize
from prunelib.runs import load_run
from prunelib.runs.stages import task_of
from prunelib.surgery import measuring
from prunelib.training import embedded
from prunelib.training.datasets import check_data_yaml
from prunelib.training.validation import evaluate

# (form, weighted ops only): every form of prunelib.deployment.quantize, then one that quantizes every op but Softmax
FORMS = [(form, True) for form in quantize.FORMS] + [("s8s8-per-channel", False)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="a finished run's name (its export stage done)")
    ap.add_argument("--runs", type=int, default=40, help="timed runs per file")
    ap.add_argument("--calibration", type=int, default=64, help="training images that calibrate each form")
    args = ap.parse_args()
    run = load_run(args.run)
    p = run.params
    imgsz, data, task, training = p["imgsz"], embedded.data_yaml(run.settings), task_of(run), Training.of(p)
    train = check_data_yaml(data)["train"]
    calibration = quantize.Calibration(data, training, min(1.0, args.calibration / len(train)), task)
    x = measuring.example_inputs(imgsz)
    rows = []
    with tempfile.TemporaryDirectory(prefix="onnx-int8-") as tmp:
        for label, fp32 in (("unpruned", run.dir / "unpruned.onnx"), ("pruned", run.final.with_suffix(".onnx"))):
            files = {"FP32": fp32}
            for i, (form, weighted) in enumerate(FORMS):
                name = quantize.FORMS[form].label + (f" (int8_onnx_form: {form})" if weighted else
                                                     ", all ops but Softmax")  # fmt: skip
                try:
                    files[name] = quantize.quantize(fp32, Path(tmp) / f"{label}-{i}.onnx", calibration, form, weighted)
                except Exception as e:  # a form onnxruntime cannot build for this graph: said in the table
                    rows.append({"model": label, "form": name, "ms": None, "vs FP32": None, "mAP50-95": None,
                                 "file MB": None, "note": f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"})
            fns = {form: export.runner(f, "onnx", 1) for form, f in files.items()}
            blocks = measuring.timed_blocks(fns, x, args.runs, 5)
            ms = {k: statistics.median(t for b in v for t in b) for k, v in blocks.items()}
            for form, f in files.items():
                spread = measuring.block_speedups(blocks, "FP32", form)
                score = evaluate(f, training, data, Path(tmp) / f"val-{label}-{len(rows)}", task)["map50_95"]
                rows.append({"model": label, "form": form, "ms": round(ms[form], 2),
                             "vs FP32": f"{ms['FP32'] / ms[form]:.2f}x ({min(spread):.2f}-{max(spread):.2f})",
                             "mAP50-95": round(score, 4), "file MB": round(export.size_mb(f), 2), "note": ""})
    publish("onnx-int8", f"onnxruntime INT8 forms against FP32 (run {run.name}, {imgsz} px, batch 1, one thread)",
            rows, notes="vs FP32: the FP32 file's median over the form's (blocks' range). A form faster than FP32 "
                        "here is worth exporting on this CPU; the export stage uses "
                        f"{quantize.FORMS[quantize.form_for_this_cpu()].label} here by default (int8_onnx_form: "
                        "auto), the form named by int8_onnx_form, or the fastest it times (int8_onnx_form: fastest).")


if __name__ == "__main__":
    main()
