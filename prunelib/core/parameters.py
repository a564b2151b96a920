"""Every parameter of the kit, with its default, type and one-line description; loading, merging and checking.

Parameter files (params/*.yaml) hold flat ``key: value`` deltas over these defaults. ``load(files, overrides)``
merges the files in order, then the overrides, and checks the result: an unknown key is an error suggesting the
closest known one; a wrong type or an out-of-range value is an error naming the key and what is allowed.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from prunelib.core import settings
from prunelib.errors import UserError
from prunelib.paths import resolve

# The values some parameters choose from. Each is that parameter's meaning, so it lives here; the modules that act on
# the choice (surgery.pruner, training.synthetic, deployment.export) key their tables by these names.
IMPORTANCES = ("l2", "l1", "bn_scale", "taylor", "lamp", "random")  # Torch-Pruning's channel importances
SYNTH_CLASSES = (
    "square",
    "square_outline",
    "rounded_square",
    "circle",
    "circle_outline",
    "triangle",
    "triangle_outline",
    "cross",
)  # the shapes the synthetic data set draws, one class each
EXPORT_FORMATS = ("onnx", "torchscript", "openvino")  # Ultralytics' export formats the kit checks and times
LAYER_RATIOS = ("uniform", "sensitivity", "latency", "time")
LATENCY_PRECISIONS = ("FP32", "BF16", "FP16")  # a latency goal's; the reduced ones through OpenVINO's precision hint
INT8_ONNX_FORMS = ("u8s8", "u8s8-reduce-range", "qoperator-u8s8", "s8s8", "s8s8-per-channel")  # quantize.FORMS
LATENCY_RUNTIMES = ("onnxruntime", "openvino", "torch")  # where a latency goal is timed (FP32, batch 1)
COMPENSATIONS = ("choose", "fold", "recalibrate", "none")  # prunelib.runs.loop's repairs of a cut
OPTIMIZERS = ("auto", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp", "Adamax")


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    type: type  # str, int, float, bool or list
    help: str
    check: Callable[[Any], str | None] | None = None  # returns what is allowed when the value is not
    may_change: bool = False  # changes only what is shown or measured after the loop: a run may resume with another


def _range(lo=None, hi=None, lo_open=False, hi_open=False):
    def check(v):
        bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (
            hi is not None and (v >= hi if hi_open else v > hi)
        )
        if bad:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            return f"a number in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        return None

    return check


def _round_to(v):
    return None if v == "auto" or v >= 0 else "an integer >= 0, or auto"


def _choice(*allowed):
    return lambda v: None if v in allowed else "one of " + ", ".join(map(str, allowed))


def _imgsz(v):
    return None if v >= 32 and v % 32 == 0 else "a multiple of 32, at least 32 (the model's largest stride)"


def _imgsz_or_model(v):
    return None if v == 0 else _imgsz(v) and "0 (the model's own) or " + _imgsz(v)


EMBEDDED_IMGSZ = 320  # imgsz 0 without a model of the user's: the embedded baseline's size


def _run_name(v):
    ok = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", v or "")
    return None if ok else "1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"


def _device(v):
    ok = v in ("cpu", "mps") or re.fullmatch(r"\d+(,\d+)*", v)
    return None if ok else "'cpu', 'mps', a GPU index such as 0, or several such as 0,1"


def _speedup(v):
    return None if v == 0 or v > 1 else "0 (off: use target_prune_rate) or a MACs speed-up greater than 1"


def _latency_speedup(v):
    return None if v == 0 or v > 1 else "0 (off) or a measured latency speed-up greater than 1"


GOALS = ("target_latency_speedup", "target_speedup", "target_prune_rate")  # a run has one; the last named decides


def _shapes(v):
    bad = [c for c in v if c not in SYNTH_CLASSES] or len(set(v)) != len(v)
    return f"distinct names among {', '.join(SYNTH_CLASSES)} (empty = all)" if bad else None


def _ratios(v):
    bad = [r for r in v if not isinstance(r, (int, float)) or not 0 < r < 1]
    return "a list of ratios each in (0, 1)" if bad or not v else None


def _checkpoints(v):
    ok = all(isinstance(x, str) and x.lower().endswith(".pt") for x in v) and len(set(v)) == len(v)
    return None if ok else "a list of distinct checkpoint files (.pt)"


def _formats(v):
    allowed = "a list of distinct formats among " + ", ".join(EXPORT_FORMATS) + ", with onnx"
    if "onnx" not in v or len(set(v)) != len(v) or any(f not in EXPORT_FORMATS for f in v):
        return allowed
    if "openvino" in v and importlib.util.find_spec("openvino") is None:
        return allowed + " (openvino is not installed here: pip install openvino, or leave it out)"
    return None


# fmt: off
PARAMS = [
    # --- run ---
    Param("run_name", "default", str, "folder under runs_dir holding everything this run writes", _run_name),
    Param("runs_dir", "runs", str, "where runs live, relative to the project root ($PRUNELIB_RUNS replaces the "
          "default)"),
    Param("cache_dir", "", str, "cache of the embedded data, baseline and unpruned measurements ('' = <runs>/.cache)",
          may_change=True),
    Param("seed", 0, int, "random seed for data generation, training and fine-tuning"),
    Param("training_seed", 0, int, "another seed for fine-tuning (and the stock alternative's training) alone, the "
          "data and baseline kept (0 = seed)", _range(0)),
    Param("device", "cpu", str, "'cpu', a GPU index 0, or several 0,1 (fine-tuning then uses DDP)", _device,
          may_change=True),
    Param("threads", 0, int, "torch CPU threads (0 = all cores; Ultralytics alone would use cores-1)", _range(0),
          may_change=True),
    # --- model and data (empty: the embedded default, a synthetic data set and a baseline trained on it) ---
    Param("model", "", str, "trained YOLO11/YOLO26/YOLOv8 checkpoint (.pt: detect, segment, pose or obb); empty: "
          "the embedded baseline"),
    Param(
        "data",
        "",
        str,
        "Ultralytics data YAML, or a folder of unlabelled images (the model labels them); empty: the embedded "
        "synthetic data set",
    ),
    Param("cfg", "", str, "Ultralytics training-settings YAML used as the base of fine-tuning (the reference's --cfg)"),
    Param("imgsz", 0, int, "image size for validation, fine-tuning, MACs and export (0 = your model's training size; "
          f"{EMBEDDED_IMGSZ} embedded)", _imgsz_or_model),
    # --- embedded default ---
    Param("synth_train", 200, int, "synthetic training images", _range(4)),
    Param("synth_val", 60, int, "synthetic validation images", _range(2)),
    Param("synth_imgsz", 320, int, "synthetic image size in pixels", _imgsz),
    Param("synth_classes", [], list, "shapes the synthetic set draws, by name (empty = all 8, named below the "
          "table by python -m prunelib params)", _shapes),
    Param("baseline_epochs", 100, int, "epochs to train the embedded baseline from baseline_cfg", _range(1)),
    Param("baseline_cfg", "yolo11n.yaml", str, "architecture YAML of the embedded baseline (Ultralytics' own; "
          "its task, e.g. yolo11n-seg.yaml, is the synthetic set's)"),
    Param("baseline_lr0", 0.002, float, "learning rate of the baseline's AdamW training from scratch",
          _range(0, 1, True)),
    Param("baseline_nbs", 64, int, "nominal batch of the baseline's training (Ultralytics' nbs; 0 = an optimizer "
          "step every batch)", _range(0)),
    # --- pruning ---
    Param("iterative_steps", 1, int, "number of prune -> fine-tune steps (the reference's --iterative-steps)",
          _range(1)),
    Param("target_prune_rate", 0.5, float, "goal as a channel ratio removed after all steps (the reference's "
          "--target-prune-rate; given, it turns off the others)", _range(0, 1, True, True)),
    Param("target_speedup", 0.0, float, "goal as MACs speed-up instead of a channel ratio (0 = off; a later "
          "target_prune_rate turns it off)", _speedup),
    Param("target_latency_speedup", 2.0, float, "goal as latency speed-up measured here in latency_runtime, batch 1 "
          "(0 = off; another goal given turns it off)",
          _latency_speedup),
    Param("latency_runtime", "onnxruntime", str, "where a latency goal is timed, at latency_threads: "
          + ", ".join(LATENCY_RUNTIMES), _choice(*LATENCY_RUNTIMES)),
    Param("latency_precision", "FP32", str, "the precision a latency goal is timed in: FP32; BF16 or FP16 in openvino "
          "where the CPU runs it", _choice(*LATENCY_PRECISIONS)),
    Param("max_steps", 0, int, "speed-up mode: most steps to try (0 = 3 x iterative_steps); each step past the plan "
          "fine-tunes too", _range(0)),
    Param("importance", "l2", str, "channel importance: " + ", ".join(IMPORTANCES), _choice(*IMPORTANCES)),
    Param("ignore_layers", ["Detect", "C2PSA", "PSABlock"], list,
          "layers never pruned (output channels): module class names (and their subclasses) or layer indices"),
    Param("prune_proto", True, bool, "segment models: prune the mask prototype's hidden channels too (false: Proto "
          "whole, as the head)"),
    Param("prune_head", True, bool, "prune the head's hidden layers too (each branch's last conv and DFL stay: what "
          "it emits is unchanged)"),
    Param("prune_attention", False, bool, "prune the attention blocks' feed-forward hidden channels too (C2PSA, "
          "PSABlock; the attention heads stay whole)"),
    Param("round_to", "auto", int, "keep channel counts multiples of this (0 = none; auto = the channel block of this "
          "CPU's convolution kernels, measured)", _round_to),
    Param("global_pruning", False, bool, "rank channels across layers instead of within each layer"),
    Param("isomorphic", False, bool, "with global_pruning: rank channels only against groups of the same structure "
          "(Torch-Pruning's isomorphic pruning)"),
    Param("layer_ratios", "uniform", str, "how a step's cut is shared: uniform, sensitivity (robust layers more), "
          "latency (ms per MAC), time (importance per ms)", _choice(*LAYER_RATIOS)),
    Param("max_pruning_ratio", 1.0, float, "most any one layer may lose", _range(0, 1, True)),
    Param("bn_recalibration", 256, int, "calibration images (training images, no labels) for the repair of each "
          "cut (0 = no repair)", _range(0)),
    Param("compensation", "choose", str, "repair of each cut: fold (removed channels' means into readers), "
          "recalibrate (BatchNorm), none, choose (best on val)", _choice(*COMPENSATIONS)),
    Param("max_map_drop", 0.2, float, "stop when unpruned - recovered mAP50-95 exceeds this (the reference's "
          "--max-map-drop)",
          _range(0, 1)),
    Param("max_map_drop_rel", 0.0, float, "stop when the drop exceeds this share of the unpruned mAP50-95 (0 = off)",
          _range(0, 1, hi_open=True)),
    # --- fine-tuning (override the cfg YAML; everything else comes from cfg or Ultralytics' defaults) ---
    Param("finetune_epochs", 10, int, "fine-tuning epochs per step: the budget is iterative_steps x this, more if a "
          "MACs goal steps on (0 = none)", _range(0)),
    Param("final_share", 0.0, float, "share of the budget for one more fine-tune of final.pt after the last step "
          "(steps share the rest)", _range(0, 1, hi_open=True)),
    Param("sparse_epochs", 0, int, "epochs of sparsity training (group regularisation) before the first step, "
          "out of the budget", _range(0)),
    Param("sparse_reg", 5e-4, float, "strength of the sparsity regularisation (GroupNormPruner's reg)",
          _range(0, 1, True)),
    Param("distill_weight", 0.0, float, "distillation from the unpruned model while fine-tuning: Ultralytics' dis "
          "weight (0 = off)", _range(0)),
    Param("match_original", 1.0, float, "weight of matching the unpruned model's outputs on each batch while "
          "fine-tuning (0: the labels alone)", _range(0)),
    Param("match_features", 0.0, float, "with match_original: the head's inputs at the channels the cut kept match "
          "the original's too: weight (0 = off)", _range(0)),
    Param("label_weight", 1.0, float, "weight of the loss on the data's labels while fine-tuning (0: the original's "
          "outputs alone)", _range(0)),
    Param("batch", 16, int, "batch size for fine-tuning, training and validation", _range(1)),
    Param("nbs", 0, int, "nominal batch of fine-tuning: gradients accumulate over nbs/batch batches per optimizer "
          "step (0 = every batch)", _range(0)),
    Param("optimizer", "auto", str, "Ultralytics optimizer; auto = its rule (AdamW at 0.002 x 5 / (4 + classes) "
          "for short runs)",
          _choice(*OPTIMIZERS)),
    Param("lr0", 0.01, float, "initial learning rate (when optimizer is not 'auto')", _range(0, 1, True)),
    Param("warmup_epochs", 0.0, float, "warm-up epochs of each fine-tuning", _range(0)),
    Param("freeze_bn_stats", False, bool, "fine-tune with BatchNorm statistics frozen (false: they follow the "
          "training batches)"),
    Param("workers", 0, int, "data loader workers (0 = in the main process; fastest on small CPUs)", _range(0),
          may_change=True),
    # --- analysis ---
    Param("sensitivity", False, bool, "measure per-layer sensitivity (mAP after pruning one layer alone)",
          may_change=True),
    Param("sensitivity_ratios", [0.25, 0.5, 0.75], list, "ratios of the sensitivity scan; layer_ratios sensitivity "
          "shares a cut by each layer's mean over them", _ratios,
          may_change=True),
    Param("detection_images", 6, int, "validation images drawn in detections.png with the ground truth and each "
          "model's predictions (0 = none)", _range(0), may_change=True),
    Param("sensitivity_layers", 0, int, "sensitivity: most layers to scan (0 = all prunable ones)", _range(0),
          may_change=True),
    # --- export and latency ---
    Param("export_formats", ["onnx", "torchscript", "openvino"], list, "export formats of both models, each "
          "checked against torch and timed (onnx required: INT8, per-layer times)",
          _formats, may_change=True),
    Param("int8", True, bool, "also export both models to INT8, calibrated on training images (ONNX: onnxruntime, "
          "int8_onnx_form; OpenVINO: NNCF)",
          may_change=True),
    Param("int8_onnx_form", "fastest", str, "INT8 ONNX quantization: fastest (each form timed on the pruned model), "
          "auto (by the CPU's flags) or a form", _choice("auto", "fastest", *INT8_ONNX_FORMS), may_change=True),
    Param("max_precision_drop", 0.01, float, "a lower-precision file (INT8, BF16) is recommended only within this "
          "much mAP50-95 of its own model's float file", _range(0, 1), may_change=True),
    Param("int8_fraction", 1.0, float, "share of the training images that calibrate the INT8 export",
          _range(0, 1, lo_open=True), may_change=True),
    Param("onnx_simplify", True, bool, "simplify the exported ONNX graph with onnxslim", may_change=True),
    Param("opset", 0, int, "ONNX opset (0 = Ultralytics' default)", _range(0), may_change=True),
    Param("latency_threads", 1, int, "threads of every batch-1 timing and the latency goal: 1 = a stream per core, "
          "0 = all cores",
          _range(0), may_change=True),
    Param("latency_runs", 30, int, "timed runs per model and runtime (median reported)", _range(1), may_change=True),
    Param("throughput_batch", 8, int, "batch at which the float files' throughput (images/s, all cores) is measured "
          "(0 = not measured)", _range(0), may_change=True),
    Param("latency_warmup", 5, int, "untimed warm-up runs before timing", _range(0), may_change=True),
    # --- alternatives: what a user would deploy instead, beside the pruned model in the export stage ---
    Param("alternatives", [], list, "checkpoints to deploy instead (same task and classes), exported, validated and "
          "timed beside the pruned model", _checkpoints, may_change=True),
    Param("stock_alternative", False, bool, "also train the model's family at the width that runs as fast as final.pt, from "
          "scratch on the run's data", may_change=True),
    Param("stock_epochs", 0, int, "the stock alternative's epochs (0 = the model's training epochs, from its "
          "checkpoint, + the run's fine-tuning budget)", _range(0), may_change=True),
    Param("stock_distill", False, bool, "distil the stock alternative from the unpruned model (at distill_weight; 1 "
          "when that is 0)", may_change=True),
]
# fmt: on
BY_NAME = {p.name: p for p in PARAMS}
DEFAULTS = {p.name: p.default for p in PARAMS}


def load(files=(), overrides: dict | None = None) -> dict:
    """Defaults, then each YAML file in order, then overrides; checked. Returns a new flat dict. The run has one goal
    (GOALS): the layer that names one last decides it (a goal given turns the speed-up goals before it off)."""
    merged = dict(DEFAULTS)
    for f in files or ():
        merged.update(_one_goal(_check_keys(read_yaml(f), source=str(f)), source=str(f)))
    merged.update(_one_goal(_check_keys(dict(overrides or {}), source="overrides"), source="overrides"))
    return check(merged)


def _one_goal(layer: dict, source: str) -> dict:
    named = [k for k in GOALS if k in layer and (k == "target_prune_rate" or layer[k])]
    if len(named) > 1:
        raise UserError(
            f"{' and '.join(named)} are all set in {source}; a run has one goal: give "
            "target_latency_speedup (measured time), target_speedup (MACs) or target_prune_rate (channels)"
        )
    off = {k: 0.0 for k in GOALS[:2] if named and k != named[0]}  # the speed-up goals a later goal turns off
    return {**layer, **off}


def parse_set(items) -> dict:
    """``key=value`` strings (CLI --set) to a dict; values parsed as YAML scalars/lists."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected key=value, e.g. --set iterative_steps=3")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


def parse_value(text: str):
    """One command-line value: a YAML scalar or list ('' for nothing; 1e-3 is a number, as people mean it)."""
    if not text.strip():
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
        return float(value)
    return value


def changed(params: dict, keys) -> list[str]:
    """Which of keys the merged parameters set away from their defaults, in the order given."""
    return [k for k in keys if params[k] != DEFAULTS[k]]


def read_yaml(path) -> dict:
    p = resolve(path)
    if not p.is_file():
        raise UserError(f"parameter file {path!s} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"parameter file {path!s} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"parameter file {path!s} must hold flat 'key: value' lines, not a {type(data).__name__}")
    return data


def check(params: dict) -> dict:
    """Coerce and check every value; raise UserError naming the first bad key and what is allowed."""
    _check_keys(params, source="parameters")
    out = {}
    for p in PARAMS:
        value = _coerce(p, params.get(p.name, p.default))
        if p.check and (allowed := p.check(value)):
            raise UserError(f"{p.name}: {value!r} is not allowed; expected {allowed}")
        out[p.name] = value
    if not out["imgsz"] and not out["model"]:
        out["imgsz"] = EMBEDDED_IMGSZ  # with a model, opening a run reads its size from the checkpoint
    _check_combinations(out)
    _check_paths(out)
    _check_ignore_names(out["ignore_layers"])
    settings.Schedule.of(out).epochs()  # the fine-tuning budget shares out
    return out


def describe() -> str:
    """The parameter table as text (``python -m prunelib params``); * marks keys a finished run may change."""
    width = max(len(p.name) for p in PARAMS) + 1
    lines = [f"{p.name + ('*' if p.may_change else ''):<{width}}  {p.default!r:<28}  {p.help}" for p in PARAMS]
    return "\n".join(
        lines
        + [
            "",
            "* changes only what is shown or measured after the loop: a run resumes with it",
            f"synth_classes: any of {', '.join(SYNTH_CLASSES)}",
        ]
    )


def _check_keys(d: dict, source: str) -> dict:
    for key in d:
        if key not in BY_NAME:
            close = difflib.get_close_matches(str(key), BY_NAME, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see 'python -m prunelib params'"
            raise UserError(f"unknown parameter {key!r} in {source}{hint}")
    return d


def _coerce(p: Param, v):
    def bad():
        kind = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}[p.type]
        kind += " or auto" if p.name == "round_to" else ""
        return UserError(f"{p.name}: expected {kind}, got {v!r} ({type(v).__name__})")

    if p.type is bool:
        if not isinstance(v, bool):
            raise bad()
        return v
    if p.name == "round_to" and v == "auto":  # resolved on the machine that prunes (settings.Pruning.of)
        return v
    if p.type is int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise bad()
        return int(v)
    if p.type is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad()
        return float(v)
    if p.type is list:
        if isinstance(v, str):  # "Detect,C2PSA" from --set
            v = [s.strip() for s in v.split(",") if s.strip()]
        if not isinstance(v, (list, tuple)):
            raise bad()
        return list(v)
    if v is None:
        return ""
    if p.name == "device" and isinstance(v, int) and not isinstance(v, bool):  # device: 0, as Ultralytics takes it
        return str(v)
    if not isinstance(v, (str, Path)):
        raise bad()
    return str(v)


def _check_combinations(params: dict) -> None:
    """Settings that are each allowed but do nothing, or contradict each other, together."""
    if params["isomorphic"] and not params["global_pruning"]:
        raise UserError(
            "isomorphic: true does nothing without global_pruning: true (it narrows global ranking to "
            "groups of one structure); set both, or neither"
        )
    if params["optimizer"] == "auto" and params["lr0"] != BY_NAME["lr0"].default:
        raise UserError(
            f"lr0: {params['lr0']} does nothing under optimizer: auto (Ultralytics then chooses the "
            f"learning rate itself); set an optimizer too ({', '.join(o for o in OPTIMIZERS if o != 'auto')}"
            f"), or leave lr0 at {BY_NAME['lr0'].default}"
        )
    if params["label_weight"] == 0 and params["match_original"] == 0 and params["finetune_epochs"]:
        raise UserError(
            "label_weight: 0 leaves fine-tuning nothing to learn from with match_original 0; give match_original a "
            "weight (the original's outputs as targets), or keep label_weight above 0"
        )
    if params["match_features"] and not params["match_original"]:
        raise UserError(
            f"match_features: {params['match_features']} does nothing with match_original 0 (it is a term of the "
            "match with the original); give match_original a weight too, or leave match_features 0"
        )
    if params["max_steps"] and not (params["target_speedup"] or params["target_latency_speedup"]):
        raise UserError(
            f"max_steps: {params['max_steps']} does nothing without target_speedup or "
            "target_latency_speedup (a channel goal takes exactly iterative_steps steps); set one, or leave "
            "max_steps 0"
        )
    if params["latency_precision"] != "FP32" and params["latency_runtime"] != "openvino":
        raise UserError(
            f"latency_precision: {params['latency_precision']} is timed through OpenVINO's precision hint; "
            f"latency_runtime {params['latency_runtime']!r} runs FP32 only: set latency_runtime: openvino, "
            "or latency_precision: FP32"
        )
    if params["max_steps"] and params["max_steps"] < params["iterative_steps"]:
        raise UserError(
            f"max_steps: {params['max_steps']} is less than iterative_steps {params['iterative_steps']}; "
            f"expected 0 (3 x iterative_steps) or at least {params['iterative_steps']}"
        )


def _check_paths(params: dict) -> None:
    for key, suffixes in (("model", (".pt",)), ("data", (".yaml", ".yml")), ("cfg", (".yaml", ".yml"))):
        value = params[key]
        if not value or (key == "data" and settings.image_folder(value)):  # a folder of images: its model labels it
            continue
        if Path(value).suffix.lower() not in suffixes:
            raise UserError(f"{key}: {value!r} is not allowed; expected a {' or '.join(suffixes)} file")
        if not resolve(value).is_file():
            raise UserError(f"{key}: file {value!r} does not exist (relative paths start at the project root)")
    for value in params["alternatives"]:
        if not resolve(value).is_file():
            raise UserError(f"alternatives: file {value!r} does not exist (relative paths start at the project root)")
    if params["model"] and not params["data"]:
        raise UserError(
            "data: a data YAML, or a folder of images, is required with your own model (model is set, data is empty)"
        )
    if settings.image_folder(params["data"]) and not params["model"]:
        raise UserError(
            f"data: folder {params['data']!r} has no labels and the model that would label it is not given; set "
            "model (your checkpoint), or give a data YAML"
        )


def _check_ignore_names(items) -> None:
    # slow: the table is read by --help and 'params'; only a run's check loads the module namespaces
    import torch.nn
    from ultralytics.nn.modules import activation, block, conv, head, transformer

    namespaces = (torch.nn, block, conv, head, transformer, activation)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise UserError(f"ignore_layers: {item!r} is not allowed; expected a module class name or layer index")
        if isinstance(item, int) or str(item).isdigit():
            continue
        if not any(isinstance(getattr(ns, item, None), type) for ns in namespaces):
            known = [n for ns in namespaces[1:] for n in dir(ns) if n[:1].isupper()]
            close = difflib.get_close_matches(item, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserError(
                f"ignore_layers: {item!r} is not an Ultralytics or torch.nn module class{hint} "
                "(allowed: class names such as Detect, C2PSA, PSABlock, or layer indices such as 22)"
            )
