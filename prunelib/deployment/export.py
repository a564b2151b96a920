"""Export through Ultralytics' exporter (ONNX, TorchScript, OpenVINO; INT8: OpenVINO by NNCF, ONNX by quantize), each
export checked against torch; batch-1 latency in every runtime; per-layer time in onnxruntime's profiler."""

from __future__ import annotations

import copy
import json
import shutil
import statistics
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from ultralytics import YOLO

from prunelib import console
from prunelib.core import parameters
from prunelib.deployment import quantize
from prunelib.errors import UserError
from prunelib.offline import threads
from prunelib.surgery import checkpoints, measuring

RUNTIMES = {"onnx": "onnxruntime", "torchscript": "torchscript", "openvino": "openvino"}  # format -> what runs it
assert tuple(RUNTIMES) == parameters.EXPORT_FORMATS, "every format the parameters allow has its runtime"
LATENCY_FORMATS = {"onnxruntime": "onnx", "openvino": "openvino", "torch": None}  # a latency goal's runtime -> file
assert tuple(LATENCY_FORMATS) == parameters.LATENCY_RUNTIMES, "every runtime a latency goal may name is timed here"


def export(
    pt_path,
    fmt: str,
    imgsz: int,
    simplify: bool = True,
    opset: int = 0,
    int8: quantize.Calibration | None = None,
    batch: int = 1,
) -> Path:
    """Export a checkpoint next to it (static shape, batch 1 unless asked) in an Ultralytics format; return the file
    or folder.

    int8: the images that calibrate an INT8 export instead, written as ``<name>_int8.onnx`` (int8_onnx of the float
    file, exported beside it too) or ``<name>_int8_openvino_model/`` (NNCF, through Ultralytics' exporter)."""
    if int8 and fmt == "onnx":
        return int8_onnx(export(pt_path, fmt, imgsz, simplify, opset, batch=batch), int8)
    args = dict(format=fmt, imgsz=imgsz, dynamic=False, device="cpu", verbose=False, batch=batch)
    if fmt == "onnx":
        args |= dict(simplify=simplify, opset=opset or None)
    if int8:
        args |= dict(quantize=8, data=str(int8.data), split="train", fraction=int8.fraction)
    with warnings.catch_warnings(), console.captured():  # the exporter's chatter goes to the run's log file
        warnings.filterwarnings("ignore", message='install "ipywidgets"', category=UserWarning)  # NNCF's rich bars
        return Path(YOLO(str(pt_path)).export(**args))


def int8_onnx(fp32, calibration: quantize.Calibration, form: str = "") -> Path:
    """An exported float ONNX file quantized beside it, as ``<name>_int8.onnx``, in a quantize.FORMS form (default:
    the one this CPU's flags call for)."""
    fp32 = Path(fp32)
    return quantize.quantize(fp32, fp32.with_name(f"{fp32.stem}_int8.onnx"), calibration, form)


def fastest_int8_form(fp32, calibration: quantize.Calibration, runs: int, warmup: int, n_threads: int = 0) -> dict:
    """Every quantize.FORMS form of an exported float ONNX file (weighted ops), timed against each other at batch 1 in
    alternating blocks of runs (measuring.timed_blocks) on n_threads: {"form": the fastest by median, "forms": [{"form",
    "label", "ms" (median), "vs_default": the CPU flags' form's time over this one's, median of the blocks, "low",
    "high" (their range)}], "default": quantize.form_for_this_cpu()}. A form onnxruntime cannot build for this graph
    is left out, with why ("error")."""
    default, rows, fns = quantize.form_for_this_cpu(), [], {}
    with tempfile.TemporaryDirectory(prefix="prunelib-int8-forms-") as tmp:
        for name, form in quantize.FORMS.items():
            try:
                fns[name] = runner(
                    quantize.quantize(fp32, Path(tmp) / f"{name}.onnx", calibration, name), "onnx", n_threads
                )
            except Exception as e:  # noqa: BLE001 - onnxruntime's own error, said in the table
                rows.append({"form": name, "label": form.label, "error": f"{type(e).__name__}: {e}".splitlines()[0]})
        before = torch.get_num_threads()
        torch.set_num_threads(threads(n_threads))
        try:
            blocks = measuring.timed_blocks(fns, measuring.example_inputs(calibration.settings.imgsz), runs, warmup)
        finally:
            torch.set_num_threads(before)
    return compare_forms(blocks, default, rows)


def compare_forms(blocks: dict[str, list[list[float]]], default: str, errors: list[dict] = ()) -> dict:
    """fastest_int8_form's answer from the forms' timed blocks (measuring.timed_blocks: {form: [[ms, ...], ...]}):
    each form's median, its time against the default form's block by block, and the fastest; errors: the rows of
    forms that could not be built."""
    rows = list(errors)
    for name in blocks:
        row = {
            "form": name,
            "label": quantize.FORMS[name].label,
            "ms": round(statistics.median(t for b in blocks[name] for t in b), 3),
        }
        if default in blocks:  # the flags' form could be built: each form against it
            ratios = measuring.block_speedups(blocks, default, name)
            row |= {
                "vs_default": round(statistics.median(ratios), 3),
                "low": round(min(ratios), 3),
                "high": round(max(ratios), 3),
            }
        rows.append(row)
    timed = [r for r in rows if "ms" in r]
    return {"form": min(timed, key=lambda r: r["ms"])["form"], "forms": rows, "default": default}


def runtime_settings(fmt: str, precision: str = "FP32", n_threads: int = 0) -> dict:
    """What the kit hands a runtime to run an exported file as it was timed (session and openvino_model use them;
    the deployment table shows them so that a user can run the file the same way): onnxruntime's session options and
    provider, OpenVINO's CPU compile properties (an INT8 IR is compiled with the f32 hint: its quantized layers run
    in INT8 regardless)."""
    if fmt == "onnx":
        return {
            "providers": ["CPUExecutionProvider"],
            "intra_op_num_threads": threads(n_threads),
            "inter_op_num_threads": 1,
        }
    if fmt == "openvino":
        if precision not in PRECISIONS and precision != "INT8":
            raise ValueError(f"OpenVINO precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        return {
            "device": "CPU",
            "INFERENCE_PRECISION_HINT": PRECISIONS.get(precision, "f32"),
            "INFERENCE_NUM_THREADS": threads(n_threads),
        }
    return {"torch_num_threads": threads(n_threads)}


def session(onnx_path, n_threads: int = 0, profile_prefix: str = ""):
    settings = runtime_settings("onnx", n_threads=n_threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = settings["intra_op_num_threads"]
    opts.inter_op_num_threads = settings["inter_op_num_threads"]
    if profile_prefix:
        opts.enable_profiling, opts.profile_file_prefix = True, profile_prefix
    return ort.InferenceSession(str(onnx_path), opts, providers=settings["providers"])


def _first(y) -> np.ndarray:
    """The first output of a model: the predictions a runtime's output0 holds (a segmentation model's first output is
    itself a list of predictions and mask prototypes)."""
    while isinstance(y, (list, tuple)):
        y = y[0]
    return y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)


def torch_runner(model):
    """A callable running model (eval, fused as Ultralytics does for inference) on a tensor; its first output."""
    m = copy.deepcopy(model).float().eval()
    if hasattr(m, "fuse"):
        m = m.fuse(verbose=False) if "verbose" in m.fuse.__code__.co_varnames else m.fuse()

    def run(x):
        with torch.inference_mode():
            return _first(m(x))

    return run


# OpenVINO's CPU plugin runs an FP32 model in BF16 where the CPU has it (AMX, AVX512_BF16) unless told otherwise: every
# compile of the kit names the precision it asks for, and each row records the precision read back from the model.
PRECISIONS = {"FP32": "f32", "BF16": "bf16", "FP16": "f16"}  # the kit's label -> OpenVINO's inference precision hint


def openvino_model(path, precision: str = "FP32", n_threads: int = 0):
    """An OpenVINO model (an ``_openvino_model/`` folder or its .xml) compiled for the CPU at the asked precision
    (a PRECISIONS label) and thread count."""
    import openvino as ov  # optional: export_formats may leave OpenVINO out

    if precision not in PRECISIONS:
        raise ValueError(f"OpenVINO precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    xml = Path(path) if Path(path).suffix == ".xml" else next(Path(path).glob("*.xml"))
    config = runtime_settings("openvino", precision, n_threads)
    return ov.Core().compile_model(str(xml), config.pop("device"), config)


def openvino_precision(compiled) -> str:
    """The precision a compiled OpenVINO model actually runs in, read back from it, as a PRECISIONS label."""
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # an element type: 'f32', 'bf16', ...
    return {v: k for k, v in PRECISIONS.items()}.get(hint, hint.upper())


def openvino_default(path) -> str:
    """The precision OpenVINO picks for an IR when asked for none (as Ultralytics' own OpenVINO backend compiles it,
    for latency): BF16 on CPUs with bfloat16 units, else FP32; INT8 for a quantized IR. What a mAP measured through
    Ultralytics' validator ran in."""
    import openvino as ov  # optional: export_formats may leave OpenVINO out

    xml = Path(path) if Path(path).suffix == ".xml" else next(Path(path).glob("*.xml"))
    model = ov.Core().read_model(str(xml))
    if any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()):
        return "INT8"
    return openvino_precision(ov.Core().compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"}))


def openvino_capabilities() -> list[str]:
    """The precisions OpenVINO's CPU plugin runs natively here (its optimization capabilities)."""
    import openvino as ov  # optional: export_formats may leave OpenVINO out

    return [c for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") if c in PRECISIONS or c == "INT8"]


def openvino_offers(precision: str) -> bool:
    """Whether this CPU runs the precision natively (OpenVINO's optimization capabilities name it)."""
    return precision in openvino_capabilities()


def runner(path, fmt: str, n_threads: int = 0, precision: str = "FP32"):
    """A callable running an exported model (batch 1) on a tensor in the format's runtime; its first output. The
    callable's ``precision`` says what ran: the file's own (an INT8 file's is INT8: pass it), OpenVINO's read back."""
    if fmt == "onnx":
        sess = session(path, n_threads)
        name = sess.get_inputs()[0].name
        run = lambda x: sess.run(None, {name: x.numpy()})[0]  # noqa: E731
    elif fmt == "torchscript":
        m = torch.jit.load(str(path), map_location="cpu").eval()

        def run(x):
            with torch.inference_mode():
                return _first(m(x))
    elif fmt == "openvino":  # an INT8 IR (NNCF) runs its quantized layers in INT8, the rest at FP32
        compiled = openvino_model(path, "FP32" if precision == "INT8" else precision, n_threads)
        ran = openvino_precision(compiled)
        run, precision = (lambda x: compiled(x.numpy())[0]), "INT8" if precision == "INT8" else ran
    else:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(RUNTIMES)}")
    run.precision = precision
    return run


# An exported model matches torch when every output value is within PARITY_TOL of torch's, relative to the value's
# own scale with a floor of 1: box coordinates (pixels, up to the image size) within PARITY_TOL of themselves,
# scores and other outputs below 1 within PARITY_TOL absolute. FP32 runtimes differ by ~1e-6 of that; BF16 by ~1e-2.
PARITY_TOL = 1e-3


def parity_error(ref, out) -> float:
    """max |out - ref| / max(1, |ref|) over every value: the figure PARITY_TOL bounds."""
    ref, out = np.asarray(ref, dtype=np.float64), np.asarray(out, dtype=np.float64)
    return float((np.abs(out - ref) / np.maximum(1.0, np.abs(ref))).max())


def parity(pt_path, exported: dict, imgsz: int) -> dict[str, dict]:
    """{format: {"max_abs_diff", "max_rel_diff" (parity_error), "matches" (within PARITY_TOL), "precision"}} of the
    first output for one random image, each exported file against the checkpoint in torch (run once); exported:
    {format: path}. OpenVINO is compiled at FP32, and the precision it ran in is read back."""
    x = measuring.example_inputs(imgsz)
    ref = torch_runner(checkpoints.load_model(pt_path))(x)
    out = {}
    for fmt, path in exported.items():
        run = runner(path, fmt)
        y = run(x)
        err = parity_error(ref, y)
        out[fmt] = {
            "max_abs_diff": float(np.abs(ref - y).max()),
            "max_rel_diff": err,
            "matches": err <= PARITY_TOL,
            "precision": run.precision,
        }
    return out


def latency_table(models: dict, imgsz: int, runs: int, warmup: int, n_threads: int = 0, batch: int = 1) -> list[dict]:
    """Latency (ms a batch, batch 1 unless asked: the files must be exported at that batch; median over blocks of
    runs: measuring.compare_latency) of each model in each runtime,
    with the precision that ran, MACs, parameters and file size. models: {label: {"pt": checkpoint (MACs,
    parameters), "model": its name in the rows (default: label; an INT8 label names its float model, the rows'
    precision tells them apart), "torch": bool (default True: time the checkpoint in torch too), "precision": the
    files' own
    (default FP32; an INT8 file's: INT8), "openvino_precisions": OpenVINO precisions to time the IR in (default
    the files' own), <format>: exported file, ...}}. OpenVINO is compiled at each precision asked for."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads(n_threads))
    x = measuring.example_inputs(imgsz, batch)
    fns, file_of, size, counted = {}, {}, {}, {}
    for label, paths in models.items():
        model = checkpoints.load_model(paths["pt"])
        if paths["pt"] not in counted:  # a checkpoint behind several labels (FP32 and INT8) is counted once
            counted[paths["pt"]] = measuring.macs_params(model, imgsz)
        name = paths.get("model", label)
        size[name] = counted[paths["pt"]]
        if paths.get("torch", True):
            fns[(name, "torch", "FP32")], file_of[(name, "torch", "FP32")] = torch_runner(model), paths["pt"]
        own = paths.get("precision", "FP32")
        for fmt, runtime in RUNTIMES.items():
            for asked in (paths.get("openvino_precisions") or [own]) if fmt == "openvino" else [own]:
                if paths.get(fmt):
                    run = runner(paths[fmt], fmt, n_threads, asked)
                    fns[(name, runtime, run.precision)] = run
                    file_of[(name, runtime, run.precision)] = paths[fmt]
    try:
        med = measuring.compare_latency(fns, x, runs, warmup)
    finally:
        torch.set_num_threads(before)
    return [
        dict(
            model=name,
            runtime=rt,
            precision=prec,
            threads=threads(n_threads),
            **({"batch": batch} if batch > 1 else {}),
            latency_ms=round(ms, 2),
            macs=size[name][0],
            params=size[name][1],
            file_mb=round(size_mb(file_of[(name, rt, prec)]), 2),
        )
        for (name, rt, prec), ms in med.items()
    ]


class Timer:
    """Times candidates against one reference model in a runtime (a LATENCY_FORMATS key) at batch 1, in precision
    (FP32; BF16 or FP16 through OpenVINO where the CPU runs it natively): each exported through Ultralytics' exporter
    (the reference once, into a folder the timer keeps) and timed in alternating blocks of runs
    (measuring.timed_blocks)."""

    def __init__(self, reference, imgsz: int, runtime: str, n_threads: int = 0, precision: str = "FP32"):
        if precision != "FP32" and not (runtime == "openvino" and openvino_offers(precision)):
            raise UserError(
                f"latency_precision: {precision} is not run natively by this CPU in {runtime} (OpenVINO "
                f"offers {', '.join(openvino_capabilities()) or 'none'} here); use FP32"
            )
        self.imgsz, self.runtime, self.n_threads, self.precision = imgsz, runtime, n_threads, precision
        self._folder = tempfile.TemporaryDirectory(prefix="prunelib-timer-")
        self._reference = self._runner(reference, "reference")

    def _runner(self, src, key: str):
        fmt = LATENCY_FORMATS[self.runtime]
        model = checkpoints.load_model(src) if isinstance(src, (str, Path)) else src
        if fmt is None:
            return torch_runner(model)
        pt = checkpoints.save_model(model, Path(self._folder.name) / key / f"{key}.pt")
        return runner(export(pt, fmt, self.imgsz), fmt, self.n_threads, self.precision)

    def against(self, candidate, runs: int, warmup: int) -> dict:
        """How much faster candidate (a checkpoint or a model) runs than the reference: {'ms', 'reference_ms'
        (medians), 'speedup' (the median of the block-by-block ratios), 'low', 'high' (their range: how sure the figure
        is), 'runtime', 'precision' (what ran, read back), 'threads'}."""
        before = torch.get_num_threads()
        torch.set_num_threads(threads(self.n_threads))
        try:
            shutil.rmtree(Path(self._folder.name) / "candidate", ignore_errors=True)
            fns = {"reference": self._reference, "candidate": self._runner(candidate, "candidate")}
            ran = getattr(fns["candidate"], "precision", "FP32")
            blocks = measuring.timed_blocks(fns, measuring.example_inputs(self.imgsz), runs, warmup)
        finally:
            torch.set_num_threads(before)
        ratios = measuring.block_speedups(blocks, "reference", "candidate")
        med = {k: statistics.median(t for b in v for t in b) for k, v in blocks.items()}
        return {
            "ms": round(med["candidate"], 3),
            "reference_ms": round(med["reference"], 3),
            "speedup": round(statistics.median(ratios), 4),
            "low": round(min(ratios), 4),
            "high": round(max(ratios), 4),
            "runtime": self.runtime,
            "precision": ran,
            "threads": threads(self.n_threads),
        }


def size_mb(path) -> float:
    p = Path(path)
    return (sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size) / 2**20


def with_speedups(rows: list[dict], reference: str) -> list[dict]:
    """Add latency and MACs speed-up vs the reference model in the same runtime and precision (what pruning alone
    buys there; against the reference's FP32 file in that runtime when the reference was not quantized), and latency
    speed-up vs the reference in onnxruntime at FP32 (what a user has before the kit)."""
    ref = {(r["runtime"], r["precision"]): r for r in rows if r["model"] == reference}
    base = ref.get(("onnxruntime", "FP32"))
    out = []
    for r in rows:
        same = ref.get((r["runtime"], r["precision"])) or ref.get((r["runtime"], "FP32"))
        if same:
            out.append(
                {
                    **r,
                    "latency_speedup": round(same["latency_ms"] / r["latency_ms"], 2),
                    "macs_speedup": round(same["macs"] / r["macs"], 2),
                }
                | ({"vs_onnxruntime_fp32": round(base["latency_ms"] / r["latency_ms"], 2)} if base else {})
            )
    return out


def node_times(onnx_path, imgsz: int, runs: int, warmup: int, n_threads: int = 0) -> dict[str, float]:
    """Mean ms per run spent in each node's kernels, by the path of the module the node came from (``model.2.cv1.conv``
    for Ultralytics' ``/model.2/cv1/conv/Conv``; a node of no module: ``other``), from onnxruntime's profiler,
    warm-up runs left out."""
    x = measuring.example_inputs(imgsz).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        sess = session(onnx_path, n_threads, profile_prefix=str(Path(tmp) / "profile"))
        name = sess.get_inputs()[0].name
        for _ in range(warmup + runs):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    first = starts[warmup] if len(starts) > warmup else 0
    out: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first:
            key = module_path(e["name"][: -len("_kernel_time")])
            out[key] = out.get(key, 0.0) + e["dur"] / 1000 / runs
    return out


def module_path(node: str) -> str:
    """The module an exported node came from: torch's ONNX scopes name each level relative to the nearest module that
    is not a container (``/model.23/cv3.2/cv3.2.0/cv3.2.0.0/conv/Conv`` is ``model.23.cv3.2.0.0.conv``), and the path
    ends at the first operator (capitalised: ``Conv``, ``Mul``, and what onnxruntime's fusions append to the name,
    ``/Mul/QuickGeluFusion/``); ``other`` for a node outside every module."""
    parts: list[str] = []
    for seg in node.strip("/").split("/"):
        if not seg or not (seg[0].islower() or seg[0].isdigit()):
            break
        if parts and seg.startswith(parts[-1] + "."):  # a container's child, named from the same module
            parts[-1] = seg
        else:
            parts.append(seg)
    return ".".join(parts) if parts and parts[0].startswith("model.") else "other"


def layer_times(onnx_path, imgsz: int, runs: int, warmup: int, n_threads: int = 0) -> dict[str, float]:
    """Mean ms per run spent in each top-level layer's kernels (``"<i>"``; nodes of no layer: ``"other"``): node_times
    summed by layer."""
    out: dict[str, float] = {}
    for path, ms in node_times(onnx_path, imgsz, runs, warmup, n_threads).items():
        key = path.split(".")[1] if path != "other" else "other"
        out[key] = out.get(key, 0.0) + ms
    return out


def layer_rows(before: list[dict], after: list[dict], t_before: dict, t_after: dict) -> list[dict]:
    """Per layer (and the nodes of no layer, 'other'): onnxruntime time before and after pruning, and how much time and
    MACs fell (x = times fewer)."""
    layers = [
        (str(b["layer"]), b["layer"], b["type"], b["macs"] / a["macs"] if a["macs"] else None)
        for b, a in zip(before, after)
    ] + [("other", "other", "(no layer)", None)]
    return [
        {
            "layer": layer,
            "type": kind,
            "ms_before": round(t_before[key], 3),
            "ms_after": round(t_after[key], 3),
            "time_ratio": round(t_before[key] / t_after[key], 2) if t_after[key] else None,  # 0: under 1 µs
            "macs_ratio": round(macs, 2) if macs is not None else None,
        }
        for key, layer, kind, macs in layers
        if key in t_before and key in t_after
    ]
