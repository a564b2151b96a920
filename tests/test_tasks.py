"""Every task and YOLO26: a smoke-sized run through the CLI per task (segment, pose, OBB with YOLO11; YOLO26
detection) keeps its task, prunes, validates in the task's metric and exports ONNX that onnxruntime runs; the
synthetic labels of every task; heads kept whole."""

import json

import numpy as np
import pytest
import torch
import ultralytics.nn.tasks
import yaml

from conftest import ROOT, cli
from prunelib import tasks
from prunelib.core import parameters
from prunelib.core.settings import Pruning
from prunelib.surgery import measuring, pruner
from prunelib.surgery.replacement import replace_c3k2
from prunelib.training import synthetic

RUNS = {  # smoke parameter file -> (task, the model class final.pt holds, its head, fine-tuned with distillation)
    "smoke-segment": ("segment", "SegmentationModel", "Segment", True),
    "smoke-pose": ("pose", "PoseModel", "Pose", True),
    "smoke-obb": ("obb", "OBBModel", "OBB", True),
    "smoke-yolo26": ("detect", "DetectionModel", "Detect", False),
}


@pytest.fixture(scope="module", params=list(RUNS))
def task_run(request, runs_root):
    name = request.param
    distill = RUNS[name][3]  # Ultralytics' distillation with the task's trainer, from the unpruned model
    r = cli("run", "--params", ROOT / "params" / f"{name}.yaml", "--set", f"run_name=task-{name}", "--set",
            "iterative_steps=1", "--set", "export_formats=[onnx]", "--set", "int8=false", "--set",
            f"distill_weight={1.0 if distill else 0.0}")  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return name, runs_root / f"task-{name}"


@pytest.mark.slow  # trains or runs the pipeline: make test, not make check
def test_each_task_prunes_validates_and_exports_in_its_own_terms(task_run):
    name, run_dir = task_run
    task, model_class, head, distill = RUNS[name]
    unpruned = json.loads((run_dir / "unpruned.json").read_text())
    ledger = [json.loads(line) for line in (run_dir / "ledger.jsonl").read_text().splitlines()]
    losses = (run_dir / "steps" / "step_01" / "results.csv").read_text().splitlines()[0]
    assert ("dis_loss" in losses) == distill  # the task's losses, with the distillation loss when asked
    assert unpruned["task"] == task and unpruned["metric"] == tasks.TASKS[task].label
    assert unpruned["max_abs_diff"] <= 1e-5 and 0 < unpruned["map50_95"] <= 1  # the baseline learnt something
    assert ledger[-1]["params"] < unpruned["params"] and ledger[-1]["speedup"] > 1.1
    assert all(0 <= r["map50_95"] <= 1 for r in ledger)

    from ultralytics import YOLO

    final = YOLO(str(run_dir / "final.pt"))
    assert final.task == task and type(final.model).__name__ == model_class
    assert type(final.model.model[-1]).__name__.removesuffix("26") == head  # YOLO26 heads: Segment26, ...
    replaced = YOLO(str(run_dir / "unpruned.pt"))
    assert measuring.n_params(final.model) < measuring.n_params(replaced.model)  # YOLO26: both head branches counted

    export = json.loads((run_dir / "export.json").read_text())
    assert export["formats"]["onnx"]["matches"], export["formats"]["onnx"]
    import onnxruntime as ort

    sess = ort.InferenceSession(str(run_dir / "final.onnx"), providers=["CPUExecutionProvider"])
    x = measuring.example_inputs(64).numpy()
    outputs = sess.run(None, {sess.get_inputs()[0].name: x})
    with torch.no_grad():
        ref = final.model.float().eval()(torch.from_numpy(x))
    while isinstance(ref, (list, tuple)):  # a segmentation model's first output: (predictions, prototypes)
        ref = ref[0]
    assert outputs[0].shape == tuple(ref.shape)  # the task's own output (masks' coefficients, keypoints, angles)
    deployed = {r["model"]: r for r in export["deployment"]}
    assert deployed["pruned"]["map50_95"] == pytest.approx(final_row(ledger)["map50_95"], abs=0.02)

    report = (run_dir / "report.md").read_text()
    label = tasks.TASKS[task].label
    assert f"{label} recovered" in report and f"{label} pruned" in report
    inspect = (run_dir / "10-inspect.ipynb").read_text()
    assert f"'task': '{task}'" in inspect or f'\\"task\\": \\"{task}\\"' in inspect


def final_row(ledger):
    from prunelib.core.folder import final_step

    return final_step(ledger)


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
    pruner.prune(model, Pruning.of(parameters.load(overrides={"imgsz": 64})), 0.3, measuring.example_inputs(64))
    assert head_outputs() == head  # only the inputs it takes from the pruned neck shrink
    assert before / measuring.macs_params(model, 64)[0] > 1.2
    out = model.eval()(measuring.example_inputs(64))
    assert out is not None


@pytest.mark.parametrize("cfg", ["yolo11n-seg.yaml", "yolo26n-seg.yaml"])
def test_prune_proto_cuts_the_mask_prototype_but_keeps_its_masks(cfg):
    def cut(prune_proto):
        torch.manual_seed(0)
        model = ultralytics.nn.tasks.SegmentationModel(cfg, nc=3, verbose=False)
        replace_c3k2(model)
        before = measuring.macs_params(model, 64)[0]
        params = parameters.load(overrides={"imgsz": 64, "prune_proto": prune_proto})
        pruner.prune(model, Pruning.of(params), 0.3, measuring.example_inputs(64))
        for mode in (True, False):  # YOLO26's training-only semantic branch included
            assert model.train(mode)(measuring.example_inputs(64)) is not None
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
