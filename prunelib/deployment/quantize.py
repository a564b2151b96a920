"""INT8 ONNX files in the form onnxruntime's x86 kernels run fast: static quantization (onnxruntime's
``quantize_static``) of the weighted operators alone (Conv, Gemm, MatMul; the head's decoding stays float, as in
Ultralytics' own INT8 ONNX), unsigned 8-bit activations with signed 8-bit weights (U8S8), per tensor, in QDQ form,
calibrated on the user's training images as the validator sees them.

Ultralytics' INT8 ONNX takes onnxruntime's default, signed activations (S8S8), which its x86 kernels run slower than
FP32 (0.56-0.58x on an AVX-512 EPYC, bench/results/onnx-int8.md); U8S8 is the form their 8-bit dot products take
(1.13x faster than FP32 on a pruned YOLO11n there, within 0.01 mAP50-95). Without VNNI those products may
saturate, and onnxruntime's guidance is 7-bit weights (``reduce_range``) there: the form follows the CPU's flags
unless the run names one or asks for the fastest (``int8_onnx_form``; export.fastest_int8_form times them all).
bench/onnx_int8.py times every form on a CPU, with each one's mAP."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from ultralytics.utils.export.onnx import onnx_calibration_reader

from prunelib import console, files, machine
from prunelib.core import parameters
from prunelib.core.settings import Training
from prunelib.training.datasets import check_data_yaml, training_batches

WEIGHTED = ("Conv", "Gemm", "MatMul")


@dataclasses.dataclass(frozen=True)
class Form:
    """One way of quantizing: its name in tables, and onnxruntime's quantize_static options (its own names)."""

    label: str
    options: dict


# the int8_onnx_form names (parameters.INT8_ONNX_FORMS) -> form; weighted ops only unless quantize is told otherwise
FORMS = {
    "u8s8": Form("QDQ U8S8 per-tensor", {"activation_type": QuantType.QUInt8}),
    "u8s8-reduce-range": Form("QDQ U8S8 reduce_range", {"activation_type": QuantType.QUInt8, "reduce_range": True}),
    "qoperator-u8s8": Form(
        "QOperator U8S8 per-tensor", {"quant_format": QuantFormat.QOperator, "activation_type": QuantType.QUInt8}
    ),
    "s8s8": Form("QDQ S8S8 per-tensor (Ultralytics')", {}),
    "s8s8-per-channel": Form("QDQ S8S8 per-channel", {"per_channel": True}),
}
assert tuple(FORMS) == parameters.INT8_ONNX_FORMS, "every form the parameters allow is defined here"
CALIBRATION_MOST = 300  # images: NNCF's default subset, which OpenVINO's INT8 export (Ultralytics' path) calibrates on


INT8_UNITS = {"avx512_vnni", "avx_vnni", "amx_int8"}  # the CPU flags of 8-bit dot products (VNNI, AMX-INT8)


def form_for_this_cpu() -> str:
    """The export stage's form by default (int8_onnx_form: auto): U8S8 per tensor, with 7-bit weights on a CPU without
    8-bit dot products (VNNI, AMX-INT8)."""
    return "u8s8" if INT8_UNITS & set(machine.cpu()["flags"]) else "u8s8-reduce-range"


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The training images that calibrate an INT8 export: the first ``fraction`` of data's train split (as
    Ultralytics' ``fraction`` takes them), at most CALIBRATION_MOST, letterboxed to the settings' imgsz."""

    data: Path
    settings: Training
    fraction: float = 1.0
    task: str = "detect"

    def count(self) -> int:
        return min(CALIBRATION_MOST, max(1, round(len(check_data_yaml(self.data)["train"]) * self.fraction)))

    def reader(self, input_name: str = "images"):
        """An onnxruntime calibration reader over the images, one at a time (the files are exported at batch 1)."""
        one = dataclasses.replace(self.settings, batch=1)
        batches = _Replayable(lambda: training_batches(one, self.data, self.count(), self.task))
        return onnx_calibration_reader(batches, lambda b: b["img"].numpy(), input_name)


class _Replayable:
    """An iterable that starts the generator anew each time it is iterated (the reader's rewind)."""

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return iter(self.make())


def quantize(fp32, out, calibration: Calibration, form: str = "", weighted_only: bool = True) -> Path:
    """fp32 (an ONNX file) quantized statically into out in a FORMS form (default: form_for_this_cpu()), only its
    weighted ops unless weighted_only is False (then every op but Softmax, which onnxruntime cannot calibrate)."""
    options = FORMS[form or form_for_this_cpu()].options
    graph = onnx.load(str(fp32)).graph
    exclude = [n.name for n in graph.node if (n.op_type not in WEIGHTED if weighted_only else n.op_type == "Softmax")]
    name = graph.input[0].name
    del graph
    with files.atomic(out) as tmp, console.captured():  # a file there stays whole if calibration fails; chatter: log
        quantize_static(str(fp32), str(tmp), calibration.reader(name), nodes_to_exclude=exclude, **options)
    return Path(out)
