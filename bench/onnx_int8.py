"""Which INT8 form onnxruntime runs fastest on this CPU: a finished run's unpruned and final model, each quantized
statically in several forms (onnxruntime's own options: QDQ or QOperator, signed or unsigned activations,
per-channel weights, reduce_range, which ops are quantized), calibrated on the run's training images, timed at
batch 1 against its FP32 file in alternating blocks of runs, and scored through Ultralytics' validator.

    .venv/bin/python bench/onnx_int8.py --run demo [--runs 40] [--calibration 64]

The run must have been exported (stage 50: final.onnx, unpruned.onnx). Ultralytics' own INT8 ONNX (the export
stage's final_int8.onnx) quantizes only Conv/Gemm/MatMul nodes, per tensor, in QDQ with signed activations: the
first row reproduces it; the others change one choice at a time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import onnx
from common import publish
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from ultralytics.data.augment import LetterBox
from PIL import Image

from prunelib.core.settings import Training
from prunelib.deployment import export
from prunelib.runs import load_run
from prunelib.runs.stages import task_of
from prunelib.surgery import measuring
from prunelib.training import embedded
from prunelib.training.datasets import check_data_yaml
from prunelib.training.validation import evaluate

WEIGHTED = {"Conv", "Gemm", "MatMul"}
FORMS = {  # name -> (quantize_static options, quantize only weighted ops)
    "QDQ S8S8 per-tensor, weighted ops (Ultralytics')": ({}, True),
    "QDQ S8S8 per-channel, weighted ops": ({"per_channel": True}, True),
    "QDQ U8S8 per-tensor, weighted ops": ({"activation_type": QuantType.QUInt8}, True),
    "QDQ U8S8 reduce_range, weighted ops": ({"activation_type": QuantType.QUInt8, "reduce_range": True}, True),
    "QOperator U8S8 per-tensor, weighted ops": ({"quant_format": QuantFormat.QOperator,
                                                 "activation_type": QuantType.QUInt8}, True),
    "QDQ S8S8 per-channel, all ops but Softmax": ({"per_channel": True}, False),
}


class Images(CalibrationDataReader):
    """The run's training images, letterboxed to imgsz as Ultralytics' predictor does (RGB, 0-1, NCHW)."""

    def __init__(self, paths: list[Path], imgsz: int, name: str = "images"):
        self.paths, self.imgsz, self.name = paths, imgsz, name
        self.rewind()

    def get_next(self):
        path = next(self.it, None)
        if path is None:
            return None
        im = LetterBox((self.imgsz, self.imgsz), auto=False)(image=np.array(Image.open(path).convert("RGB")))
        return {self.name: (np.ascontiguousarray(im.transpose(2, 0, 1))[None] / 255.0).astype(np.float32)}

    def rewind(self):
        self.it = iter(self.paths)


def quantize(fp32: Path, out: Path, images: Images, options: dict, weighted_only: bool) -> Path:
    graph = onnx.load(fp32).graph
    exclude = [n.name for n in graph.node if (n.op_type not in WEIGHTED if weighted_only else n.op_type == "Softmax")]
    images.rewind()
    quantize_static(str(fp32), str(out), images, nodes_to_exclude=exclude, **options)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="a finished run's name (its export stage done)")
    ap.add_argument("--runs", type=int, default=40, help="timed runs per file")
    ap.add_argument("--calibration", type=int, default=64, help="training images that calibrate each form")
    args = ap.parse_args()
    run = load_run(args.run)
    p = run.params
    imgsz, data, task, training = p["imgsz"], embedded.data_yaml(p), task_of(run), Training.of(p)
    train = check_data_yaml(data)["train"]
    images = Images(train[:: max(1, len(train) // args.calibration)][: args.calibration], imgsz)
    x = measuring.example_inputs(imgsz)
    rows = []
    with tempfile.TemporaryDirectory(prefix="onnx-int8-") as tmp:
        for label, fp32 in (("unpruned", run.dir / "unpruned.onnx"), ("pruned", run.final.with_suffix(".onnx"))):
            files = {"FP32": fp32}
            for i, (form, (options, weighted)) in enumerate(FORMS.items()):
                try:
                    files[form] = quantize(fp32, Path(tmp) / f"{label}-{i}.onnx", images, options, weighted)
                except Exception as e:  # a form onnxruntime cannot build for this graph: said in the table
                    rows.append({"model": label, "form": form, "ms": None, "vs FP32": None, "mAP50-95": None,
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
                        "here would be the export stage's INT8 ONNX on this CPU.")


if __name__ == "__main__":
    main()
