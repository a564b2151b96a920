"""Every task and YOLO26, the way a user arrives: a checkpoint trained with plain Ultralytics, their data YAML in
each layout Ultralytics trains on, a --cfg, through ``prunelib prune`` (segment, pose, OBB) and ``prunelib run``
(YOLO26); final.pt keeps its task, loads, validates in the task's own figure and exports where only Ultralytics is
installed, and its ONNX file computes the same values; both models in FP32 and INT8 (FORMATS), validated in the
task's figure.
The synthetic labels of every task; heads kept whole."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import ultralytics.nn.tasks
import yaml

from conftest import MECHANICS, ROOT, cli
from prunelib import tasks
from prunelib.core import parameters
from prunelib.deployment import export as exporter
from prunelib.core.settings import Pruning, Settings, Timing
from prunelib.surgery import measuring, pruner
from prunelib.surgery.replacement import replace_c3k2
from prunelib.training import synthetic

RUNS = {  # smoke parameter file -> (task, the model class final.pt holds, its head, fine-tuned with distillation,
    # the data layout the user brings, the command that runs it)
    "smoke-segment": ("segment", "SegmentationModel", "Segment", True, "image lists", "prune"),
    "smoke-pose": ("pose", "PoseModel", "Pose", True, "relative path", "prune"),
    "smoke-obb": ("obb", "OBBModel", "OBB", True, "list of folders", "prune"),
    "smoke-yolo26": ("detect", "DetectionModel", "Detect", False, "roboflow", "run"),
}
FORMATS = ["onnx", "openvino"]  # each task's files: ONNX and OpenVINO, FP32 (or OpenVINO's BF16) and INT8
METRIC_KEY = {"detect": "metrics/mAP50-95(B)", "segment": "metrics/mAP50-95(M)", "pose": "metrics/mAP50-95(P)",
              "obb": "metrics/mAP50-95(B)"}  # Ultralytics' own name of each task's figure, not the kit's table


def user_data(data_yaml: Path, layout: str, out: Path) -> Path:
    """The synthetic set (images/{train,val}, labels/{train,val}) rewritten as a user's data YAML of one layout."""
    src, d = data_yaml.parent, yaml.safe_load(data_yaml.read_text())
    keep = {k: d[k] for k in ("names", "kpt_shape", "flip_idx") if k in d}
    out.mkdir(parents=True)
    if layout == "image lists":  # train: train.txt, one image path a line
        for split in ("train", "val"):
            (out / f"{split}.txt").write_text("".join(f"{p}\n" for p in sorted((src / "images" / split).iterdir())))
        d = {"path": str(out), "train": "train.txt", "val": "val.txt"}
    elif layout == "relative path":  # path: relative, as Ultralytics resolves it (the working folder first)
        d = {"path": os.path.relpath(src, ROOT), "train": "images/train", "val": "images/val"}
    elif layout == "list of folders":
        d = {"path": str(src), "train": ["images/train"], "val": ["images/val"]}
    else:  # Roboflow's export: data.yaml beside train/ and valid/, each with images/ and labels/, no path
        for split, name in (("train", "train"), ("val", "valid")):
            for kind in ("images", "labels"):
                (out / name).mkdir(exist_ok=True)
                (out / name / kind).symlink_to(src / kind / split, target_is_directory=True)
        d = {"train": "../train/images", "val": "../valid/images"}
    (out / "data.yaml").write_text(yaml.safe_dump({**d, **keep}))
    return out / "data.yaml"


@pytest.fixture(scope="module", params=list(RUNS))
def task_run(request, runs_root, tmp_path_factory):
    """A user's way in: a checkpoint trained with plain Ultralytics (the shipped smoke baseline of the task), their
    data YAML in one of the layouts Ultralytics trains on, a training-settings --cfg, no imgsz (the checkpoint's);
    the head pruned too (prune_head), so fine-tuning, distillation, export and plain loading see a pruned head."""
    from prunelib.training import embedded

    name = request.param
    task, _, _, distill, layout, command = RUNS[name]
    smoke = Settings.of(parameters.load([ROOT / "params" / f"{name}.yaml"]))
    model, _ = embedded.model_path(smoke)
    tmp = tmp_path_factory.mktemp(name)
    data = user_data(embedded.data_yaml(smoke), layout, tmp / "data")
    cfg = tmp / "train.yaml"
    cfg.write_text("mosaic: 0.0\nfliplr: 0.0\nlr0: 0.005\n")  # two applied, one the parameters decide
    user = {"model": str(model), "data": str(data), "cfg": str(cfg), "iterative_steps": 1, "target_prune_rate": 0.3,
            "finetune_epochs": 1, "max_map_drop": 1.0, "export_formats": FORMATS, "int8": True, "latency_runs": 3,
            "latency_warmup": 1, "distill_weight": 1.0 if distill else 0.0, "prune_head": True,
            "round_to": 0}  # fmt: skip
    (tmp / "user.yaml").write_text(yaml.safe_dump(user))
    r = cli(command, "--params", tmp / "user.yaml", "--set", f"run_name=task-{name}")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return name, runs_root / f"task-{name}", r.stdout, data


PLAIN = """
import json, sys

class NoPrunelib:  # a machine where only ultralytics is installed
    def find_spec(self, name, *args):
        if name.split(".")[0] == "prunelib":
            raise ImportError("prunelib is not installed here")

sys.meta_path.insert(0, NoPrunelib())
import numpy as np, onnxruntime as ort, torch
from ultralytics import YOLO

final, data, key = sys.argv[1:4]
m = YOLO(final)
args = dict(data=data, imgsz=64, batch=16, rect=False, plots=False, verbose=False, project=sys.argv[4])
val = m.val(name="pt", **args).results_dict[key]
onnx = m.export(format="onnx", imgsz=64)
x = torch.rand(1, 3, 64, 64)
with torch.no_grad():
    ref = m.model.float().eval()(x)
while isinstance(ref, (list, tuple)):
    ref = ref[0]
sess = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
rel = float((np.abs(out - ref.numpy()) / np.maximum(1, np.abs(ref.numpy()))).max())
onnx_val = YOLO(onnx, task=m.task).val(name="onnx", **args).results_dict[key]
print("PLAIN", json.dumps({"task": m.task, "val": val, "onnx_val": onnx_val, "rel": rel,
                           "shape": list(out.shape), "prunelib": "prunelib" in sys.modules}))
"""


@pytest.mark.slow  # trains or runs the pipeline: make test, not make check
def test_each_task_prunes_validates_and_exports_in_its_own_terms(task_run, tmp_path):
    name, run_dir, stdout, data = task_run
    task, model_class, head, distill, layout, command = RUNS[name]
    unpruned = json.loads((run_dir / "unpruned.json").read_text())
    ledger = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    losses = (run_dir / "steps" / "step_01" / "results.csv").read_text().splitlines()[0]
    assert ("dis_loss" in losses) == distill  # the task's losses, with the distillation loss when asked
    assert unpruned["task"] == task and unpruned["metric"] == tasks.TASKS[task].label
    # the baseline learnt something: an untrained model scores ~0.000; the weakest shipped one (mask mAP50-95) 0.064
    assert unpruned["max_abs_diff"] <= 1e-5 and 0.03 < unpruned["map50_95"] <= 1
    assert ledger[-1]["params"] < unpruned["params"] and ledger[-1]["speedup"] > 1.1
    assert all(0 <= r["map50_95"] <= 1 for r in ledger)
    params = yaml.safe_load((run_dir / "params.yaml").read_text())
    assert params["imgsz"] == 64  # not set: the size the checkpoint was trained at
    args = yaml.safe_load((run_dir / "steps" / "step_01" / "args.yaml").read_text())
    assert (args["mosaic"], args["fliplr"], args["lr0"]) == (0.0, 0.0, 0.01)  # the cfg applied, lr0 the kit's
    assert "decide 1 of its keys: lr0 0.005 -> 0.01 (set lr0)" in stdout  # ... and said so before the run

    from ultralytics import YOLO

    final = YOLO(str(run_dir / "final.pt"))
    assert final.task == task and type(final.model).__name__ == model_class
    assert type(final.model.model[-1]).__name__.removesuffix("26") == head  # YOLO26 heads: Segment26, ...
    unpruned_model = YOLO(str(run_dir / "unpruned.pt"))
    assert measuring.n_params(final.model) < measuring.n_params(unpruned_model.model)  # YOLO26: both branches
    hidden = [m.conv.out_channels for m in final.model.model[-1].modules() if id(m) in pruner.head_hidden(final.model)
              and hasattr(m, "conv")]  # fmt: skip
    whole = [m.conv.out_channels for m in unpruned_model.model.model[-1].modules()
             if id(m) in pruner.head_hidden(unpruned_model.model) and hasattr(m, "conv")]  # fmt: skip
    assert len(hidden) == len(whole) and sum(hidden) < sum(whole)  # prune_head: the head's hidden layers cut

    export = json.loads((run_dir / "export.json").read_text())
    assert export["formats"]["onnx"]["matches"], export["formats"]["onnx"]
    deployed = {(r["model"], r["runtime"], r["precision"]): r for r in export["deployment"]}
    assert deployed[("pruned", "onnxruntime", "FP32")]["map50_95"] == pytest.approx(final_row(ledger)["map50_95"],
                                                                                   abs=0.02)  # fmt: skip
    ov = "BF16" if exporter.openvino_offers("BF16") else "FP32"  # OpenVINO's own choice here, labelled as it ran
    runtimes = [("onnxruntime", "_int8.onnx")] + ([("openvino", "_int8_openvino_model")] if "openvino" in FORMATS
                                                  else [])  # fmt: skip
    for m in ("unpruned", "pruned"):  # every precision in the task's own figure (masks, keypoints, angles; YOLO26)
        fp32 = deployed[(m, "onnxruntime", "FP32")]
        if "openvino" in FORMATS:
            assert export["formats"]["openvino"]["matches"], export["formats"]["openvino"]
            assert deployed[(m, "openvino", ov)]["map50_95"] == pytest.approx(fp32["map50_95"], abs=0.03)
        for rt, suffix in runtimes:
            int8 = deployed[(m, rt, "INT8")]
            assert int8["file"].rstrip("/").endswith(suffix) and int8["file_mb"] < fp32["file_mb"] / 2
            assert int8["map50_95"] >= 0.5 * fp32["map50_95"] - 0.02, (m, rt, int8["map50_95"], fp32["map50_95"])

    # where only Ultralytics is installed: final.pt loads, validates in the task's own figure (Ultralytics' mask,
    # pose or box mAP, not the kit's lookup) as the run measured it, exports, and the ONNX file computes the same
    r = subprocess.run([sys.executable, "-c", PLAIN, str(run_dir / "final.pt"), str(data), METRIC_KEY[task],
                        str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    plain = json.loads(r.stdout.split("PLAIN ", 1)[1])
    assert plain["task"] == task and not plain["prunelib"]
    assert plain["val"] == pytest.approx(final_row(ledger)["map50_95"], abs=0.02)
    assert plain["onnx_val"] == pytest.approx(plain["val"], abs=0.02)
    assert plain["rel"] <= 1e-3  # every output value, relative to max(1, |value|): masks, keypoints, angles

    # what pruning did, in the task's own terms: every class of the data set, each image drawn once per model
    names = yaml.safe_load(data.read_text())["names"]
    classes = json.loads((run_dir / "classes.json").read_text())
    assert sorted(r["class"] for r in classes) == sorted(names.values() if isinstance(names, dict) else names)
    shown = json.loads((run_dir / "detections.json").read_text())
    columns = 1 + len(shown[0]["found"])  # the ground truth, then each model
    assert len(shown) == 6 and {"unpruned", "pruned"} <= set(shown[0]["found"])
    from PIL import Image

    from prunelib.presentation import detections

    assert Image.open(run_dir / "detections.png").size == (columns * detections.CELL,
                                                           6 * (detections.CELL + detections.TITLE))  # fmt: skip

    report = (run_dir / "report.md").read_text()
    label = tasks.TASKS[task].label
    assert f"{label} recovered" in report and f"{label} pruned" in report
    if command == "run":  # the staged notebooks
        inspect = (run_dir / "10-inspect.ipynb").read_text()
        assert f"'task': '{task}'" in inspect or f'\\"task\\": \\"{task}\\"' in inspect


def final_row(ledger: list[dict]) -> dict:
    """final.pt's ledger row, as ledger.jsonl holds it."""
    from prunelib.core.ledger import Step, final_step

    return final_step([Step.of(r) for r in ledger]).record()


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
def test_synthetic_labels_of_each_task(task, tmp_path):
    data = yaml.safe_load(synthetic.generate(tmp_path / task, 8, 2, 96, seed=3, task=task).read_text())
    lines = [line.split() for f in sorted((tmp_path / task / "labels" / "train").glob("*.txt"))
             for line in f.read_text().splitlines()]  # fmt: skip
    assert len(lines) >= 8 * 3  # 3-10 shapes an image
    values = [np.array(line[1:], dtype=float) for line in lines]
    if task == "segment":
        assert all(len(v) % 2 == 0 and len(v) >= 6 for v in values)  # a polygon of 3 points or more
    elif task == "obb":
        assert all(len(v) == 8 for v in values)
        corners = [v.reshape(4, 2) for v in values]  # a square turned: four equal sides (in pixels)
        sides = [np.linalg.norm(np.roll(c, -1, 0) - c, axis=1) for c in corners]
        assert all(np.ptp(s) < 1e-3 for s in sides)
    else:
        assert data["kpt_shape"] == [4, 3] and data["flip_idx"] == [0, 3, 2, 1]
        assert all(len(v) == 4 + 4 * 3 for v in values)
        assert all((v[6::3] == 2).all() for v in values)  # every keypoint visible
        kpts = [v[4:].reshape(4, 3)[:, :2] for v in values]
        for v, k in zip(values, kpts):  # keypoints lie in the object's box
            lo, hi = v[:2] - v[2:4] / 2 - 1e-5, v[:2] + v[2:4] / 2 + 1e-5
            assert ((k >= lo) & (k <= hi)).all()
    coords = np.concatenate([v if task != "pose" else np.delete(v, np.s_[6::3]) for v in values])
    assert coords.min() >= 0 and coords.max() <= 1


def test_the_detection_data_set_is_drawn_as_before():
    # the embedded default's cache key (and so its shipped baseline) does not change with the tasks
    params = parameters.load([ROOT / "params" / "default.yaml"])
    key = synthetic.cache_key(params["synth_train"], params["synth_val"], params["synth_imgsz"], params["seed"],
                              params["synth_classes"])  # fmt: skip
    assert key == "710224214f22"


@pytest.mark.parametrize("cfg", ["yolo11n-seg.yaml", "yolo11n-pose.yaml", "yolo11n-obb.yaml", "yolo26n.yaml",
                                 "yolo26n-seg.yaml", "yolov8n.yaml"])  # fmt: skip
def test_heads_stay_whole_and_the_rest_prunes(cfg):
    torch.manual_seed(0)  # 8 classes as the embedded default: Torch-Pruning failed on YOLO26's box decoding with them
    model = getattr(ultralytics.nn.tasks, tasks.of_cfg(cfg).model)(cfg, nc=8, verbose=False)
    replace_c3k2(model)
    hidden = pruner.proto_hidden(model)  # prune_proto (the default) cuts these: test_prune_proto_... checks them
    def head_outputs():  # output channels of every other conv in the head, Proto's masks and keypoint branches included
        return {n: m.out_channels for n, m in model.model[-1].named_modules()
                if isinstance(m, torch.nn.Conv2d) and id(m) not in hidden}  # fmt: skip

    head = head_outputs()
    before = measuring.macs_params(model, 64)[0]
    emitted = _tensors(model.eval()(measuring.example_inputs(64)))[0].shape  # the predictions (then the features)
    pruner.prune(model.train(), Pruning.of(parameters.load(overrides={"imgsz": 64, **MECHANICS})), 0.3,
                 measuring.example_inputs(64))  # fmt: skip
    assert head_outputs() == head  # only the inputs it takes from the pruned neck shrink
    assert before / measuring.macs_params(model, 64)[0] > 1.2
    out = _tensors(model.eval()(measuring.example_inputs(64)))[0]
    assert out.shape == emitted and torch.isfinite(out).all()  # what it emits, unchanged


def _tensors(out) -> list:
    """Every tensor in a model's output (tensors, lists, tuples and dicts of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    items = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else []
    return [t for item in items for t in _tensors(item)]


@pytest.mark.parametrize("cfg", ["yolo11n-seg.yaml", "yolo26n-seg.yaml"])
def test_prune_proto_cuts_the_mask_prototype_but_keeps_its_masks(cfg):
    def cut(prune_proto):
        torch.manual_seed(0)
        model = ultralytics.nn.tasks.SegmentationModel(cfg, nc=3, verbose=False)
        replace_c3k2(model)
        before = measuring.macs_params(model, 64)[0]
        params = parameters.load(overrides={"imgsz": 64, **MECHANICS, "prune_proto": prune_proto})
        pruner.prune(model, Pruning.of(params), 0.3, measuring.example_inputs(64))
        for mode in (True, False):  # YOLO26's training-only semantic branch included
            out = model.train(mode)(measuring.example_inputs(64))
            masks = [t for t in _tensors(out) if t.dim() == 4 and t.shape[1] == 32]  # the prototype's 32 masks
            assert masks and all(torch.isfinite(t).all() for t in _tensors(out)), type(out)
        proto = model.model[-1].proto
        return before / measuring.macs_params(model, 64)[0], proto.cv1.conv.out_channels, proto.cv3.conv.out_channels

    whole, pruned = cut(False), cut(True)
    assert whole[1:] == (64, 32) and pruned[2] == 32  # the hidden width cut, the 32 masks kept
    assert pruned[1] < 64 and pruned[0] > whole[0] + 0.2  # measured: 1.27x -> 1.59x (YOLO11n-seg), 1.25x -> 1.61x


def test_every_task_has_a_trainer_that_keeps_the_pruned_model():
    from prunelib.training.finetuning import KeepsPrunedModel, trainer_for

    for name, task in tasks.TASKS.items():
        trainer = trainer_for(name)
        base = trainer.__mro__[2]  # the task's own Ultralytics trainer, after the mix-in
        assert issubclass(trainer, KeepsPrunedModel) and base is task.trainer_class(), name
        assert base.__module__.startswith(f"ultralytics.models.yolo.{task.package}."), name
        assert trainer.__name__ == f"Pruned{task.trainer}" and trainer_for(name) is trainer  # made once


@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolo11n-seg.yaml", "yolo11n-pose.yaml", "yolo11n-obb.yaml",
                                 "yolo26n.yaml"])  # fmt: skip
def test_layer_table_knows_every_head(cfg):
    """The head hands on no channels of its own, whatever kind of Detect it is (its class was matched by exact name:
    Segment, Pose, OBB and YOLO26's heads got their last conv's width)."""
    model = getattr(ultralytics.nn.tasks, tasks.of_cfg(cfg).model)(cfg, nc=8, verbose=False)
    rows = measuring.layer_table(model, 64)
    assert rows[-1]["type"] == type(model.model[-1]).__name__
    assert rows[-1]["c_out"] is None and rows[-1]["macs"] > 0
    assert rows[0]["c_out"] == model.model[0].conv.out_channels  # a plain conv still says its width


def _emitted_shapes(model, x, train):
    """Shapes of what the model returns, less the neck features it hands on for the loss (the head's inputs)."""
    from prunelib.surgery.replacement import _flatten

    inputs = []
    hook = model.model[-1].register_forward_pre_hook(lambda _m, args: inputs.extend(args[0]))
    out = model.train(train)(x)
    hook.remove()
    fed = {tuple(i.shape) for i in inputs}  # YOLO26 hands on detached copies of them in training
    return [tuple(t.shape) for t in _flatten(out) if tuple(t.shape) not in fed]


@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolov8n.yaml", "yolo26n.yaml", "yolo11n-seg.yaml",
                                 "yolo11n-pose.yaml", "yolo11n-obb.yaml", "yolo26n-seg.yaml", "yolo26n-pose.yaml",
                                 "yolo26n-obb.yaml"])  # fmt: skip
def test_prune_head_cuts_its_hidden_layers_and_keeps_what_it_emits(cfg):
    """Every family and task: the head's hidden convolutions shrink with the neck, each branch's last Conv2d keeps
    its outputs, and the model's outputs keep their shapes in eval and in training (YOLO26's training-only sigma and
    semantic branches traced beside their eval-time siblings, so what feeds them shrinks with them)."""
    def cut(prune_head):
        torch.manual_seed(0)
        model = getattr(ultralytics.nn.tasks, tasks.of_cfg(cfg).model)(cfg, nc=8, verbose=False)
        replace_c3k2(model)
        x = measuring.example_inputs(64)
        shapes = [_emitted_shapes(model, x, mode) for mode in (False, True)]
        head = model.model[-1]
        emitted = {n: m.out_channels for n, m in head.named_modules() if id(m) in pruner._emitted(head)}
        hidden = sum(m.conv.out_channels for m in head.modules() if id(m) in pruner.head_hidden(model)
                     and hasattr(m, "conv"))  # fmt: skip
        before = measuring.macs_params(model, 64)[0]
        params = parameters.load(overrides={"imgsz": 64, "round_to": 0, "prune_head": prune_head})
        pruner.prune(model, Pruning.of(params), 0.5, x)
        after = {n: m.out_channels for n, m in head.named_modules() if id(m) in pruner._emitted(head)}
        assert after == emitted  # 4 x reg_max, classes, mask coefficients, keypoints (and sigmas), angles
        assert [_emitted_shapes(model, x, mode) for mode in (False, True)] == shapes
        hidden_after = sum(m.conv.out_channels for m in head.modules() if id(m) in pruner.head_hidden(model)
                           and hasattr(m, "conv"))  # fmt: skip
        return before / measuring.macs_params(model, 64)[0], hidden_after / hidden

    whole, pruned = cut(False), cut(True)
    assert whole[1] == 1.0 and pruned[1] < 0.75  # the head's hidden layers: whole, then cut
    assert pruned[0] > whole[0] + 0.7  # measured: 1.99x -> 3.50x (YOLO11n), 1.44x -> 3.49x (YOLO26n-pose)


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo26n.yaml", "yolo11n-seg.yaml", "yolo11n-pose.yaml",
                                 "yolo11n-obb.yaml", "yolo26n-seg.yaml"])  # fmt: skip
def test_the_demo_cut_in_whole_blocks_keeps_every_family_and_task_whole(cfg):
    """The demo's cut (prune_head with round_to) on the other families and tasks: every convolution it narrowed keeps
    a multiple of round_to channels, and the model emits what it did, in eval and in training."""
    torch.manual_seed(0)
    model = getattr(ultralytics.nn.tasks, tasks.of_cfg(cfg).model)(cfg, nc=8, verbose=False)
    replace_c3k2(model)
    x = measuring.example_inputs(64)
    shapes = [_emitted_shapes(model, x, mode) for mode in (False, True)]
    before = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    pruner.prune(model, Pruning.of(parameters.load(overrides={"imgsz": 64, "prune_head": True, "round_to": 16})), 0.5,
                 x)
    cut = {n: m.out_channels for n, m in model.named_modules()
           if isinstance(m, torch.nn.Conv2d) and m.out_channels != before[n]}  # fmt: skip
    assert any(n.startswith(f"model.{len(model.model) - 1}.") for n in cut) and len(cut) > 10
    assert all(c % 16 == 0 for c in cut.values()), {n: c for n, c in cut.items() if c % 16}
    assert [_emitted_shapes(model, x, mode) for mode in (False, True)] == shapes


@pytest.mark.slow  # exports and profiles nine models: make test, not make check
@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolov8n.yaml", "yolo26n.yaml", "yolo11n-seg.yaml",
                                 "yolo11n-pose.yaml", "yolo11n-obb.yaml", "yolo26n-seg.yaml", "yolo26n-pose.yaml",
                                 "yolo26n-obb.yaml"])  # fmt: skip
def test_time_guided_cuts_see_every_layer_of_every_family_and_task(cfg):
    """layer_ratios 'time' on every family and task, head and attention prunable: the exported model's node times
    reach every conv of the backbone, neck and head by module path (nothing falls through as 0 ms), and the cut they
    guide keeps what the model emits and differs from the uniform one."""
    from prunelib.runs import layer_time

    def model():
        torch.manual_seed(0)
        m = getattr(ultralytics.nn.tasks, tasks.of_cfg(cfg).model)(cfg, nc=8, verbose=False)
        replace_c3k2(m)
        return m.eval()

    params = parameters.load(overrides={"imgsz": 64, "round_to": 0, "prune_head": True, "prune_attention": True, "latency_runs": 3,
                                        "latency_threads": 1})  # fmt: skip
    settings, x = Pruning.of(params), measuring.example_inputs(64)
    guided, uniform = model(), model()
    times = layer_time.node_times(guided, 64, Timing.of(params))
    convs = pruner.conv_times(guided, times)
    head = {id(m) for m in guided.model[-1].modules()}
    branches = {id(m) for _, b in pruner.training_branches(guided, x) for m in b.modules()}
    untimed = [n for n, m in guided.named_modules() if m in convs and convs[m][1] <= 0 and id(m) not in branches
               and ".one2one_" not in n]  # YOLO26's NMS-free branch: not in the file Ultralytics exports by default
    assert not untimed, untimed  # every conv's node found by its module path, the head's and attention's included
    assert sum(ms for m, (ms, _) in convs.items() if id(m) in head) > 0
    shapes = _emitted_shapes(guided, x, False)
    pruner.prune(guided, settings, 0.3, x, times=times)
    pruner.prune(uniform, settings, 0.3, x)
    assert _emitted_shapes(guided, x, False) == shapes
    widths = [[m.out_channels for m in g.modules() if isinstance(m, torch.nn.Conv2d)] for g in (guided, uniform)]
    assert widths[0] != widths[1] and sum(widths[0]) < sum(m.out_channels for m in model().modules()
                                                           if isinstance(m, torch.nn.Conv2d))  # fmt: skip


PLAIN_LOAD = """
import sys

class NoPrunelib:
    def find_spec(self, name, *args):
        if name.split(".")[0] == "prunelib":
            raise ImportError("prunelib is not installed here")

sys.meta_path.insert(0, NoPrunelib())
import torch
from ultralytics import YOLO

m = YOLO(sys.argv[1])
y = m.model.float().eval()(torch.rand(1, 3, 64, 64))
print("LOADED", type(m.model.model[-1]).__name__, tuple(y[0].shape), "prunelib" in sys.modules)
"""


@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolov8n.yaml"])
def test_a_pruned_head_exports_and_loads_without_prunelib(cfg, tmp_path):
    """YOLO11 and YOLOv8 detection with prune_head: published (folded), exported to ONNX and OpenVINO matching torch,
    loaded where prunelib cannot be imported (the detection tasks' user path runs in test_each_task_...)."""
    from prunelib.deployment import export
    from prunelib.surgery import checkpoints

    torch.manual_seed(0)
    model = ultralytics.nn.tasks.DetectionModel(cfg, nc=8, verbose=False)
    replace_c3k2(model)
    pruner.prune(model, Pruning.of(parameters.load(overrides={"imgsz": 64, "round_to": 0, "prune_head": True})), 0.5,
                 measuring.example_inputs(64))  # fmt: skip
    final = tmp_path / "final.pt"
    checkpoints.publish(checkpoints.save_model(model, tmp_path / "pruned.pt", train_args={"imgsz": 64}), final)
    files = {fmt: export.export(final, fmt, 64) for fmt in ("onnx", "openvino")}
    assert all(r["matches"] for r in export.parity(final, files, 64).values())
    r = subprocess.run([sys.executable, "-c", PLAIN_LOAD, str(final)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "LOADED Detect (1, 12, 84) False" in r.stdout  # 4 box values + 8 classes, for each of the 84 anchors
