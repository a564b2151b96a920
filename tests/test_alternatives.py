"""Alternatives: what a user would deploy instead of the pruned model, checked, exported and timed beside it, and
whether the recommended file beats each (prunelib.deployment.alternatives, prunelib.runs.stock)."""

import dataclasses
import json
import math
import types

import numpy as np
import pytest
from ultralytics.nn.tasks import DetectionModel, SegmentationModel

from conftest import SMOKE, cli, precision_drop
from conftest import deployed as _row
from prunelib.core import parameters
from prunelib.core.settings import Settings
from prunelib.deployment import alternatives
from prunelib.deployment.alternatives import Verdict
from prunelib.deployment.records import Deployed, holds_precision
from prunelib.errors import UserError
from prunelib.runs import stock
from prunelib.surgery import checkpoints, measuring
from prunelib.training.bootstrap import ImageHits


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Untrained checkpoints: YOLO11s on the smoke set's 2 classes (another scale), a segmentation model, and a
    YOLO11n of 3 classes."""
    root = tmp_path_factory.mktemp("alternatives")
    out = {
        "scale": DetectionModel("yolo11s.yaml", nc=2, verbose=False),
        "segment": SegmentationModel("yolo11n-seg.yaml", nc=2, verbose=False),
        "classes": DetectionModel("yolo11n.yaml", nc=3, verbose=False),
    }
    return {k: checkpoints.save_model(m, root / k / "weights" / "best.pt") for k, m in out.items()}


def test_a_checkpoint_of_another_scale_is_an_alternative_named_for_its_training_folder(made):
    (alt,) = alternatives.read([str(made["scale"])], "detect", 2)
    assert alt.label == "scale" and alt.kind == "yours" and alt.path == made["scale"]


def test_a_name_the_run_uses_is_not_taken_and_two_names_never_clash(made, tmp_path):
    pruned = checkpoints.save_model(checkpoints.load_model(made["scale"]), tmp_path / "pruned.pt")
    again = checkpoints.save_model(checkpoints.load_model(made["scale"]), tmp_path / "scale.pt")
    labels = [a.label for a in alternatives.read([str(pruned), str(made["scale"]), str(again)], "detect", 2)]
    assert labels == ["pruned-2", "scale", "scale-2"]


@pytest.mark.parametrize(
    ("which", "said"),
    [("segment", "is a segment model; this run's model is a detect model"), ("classes", "predicts 3 classes")],
)
def test_a_wrong_task_or_class_count_is_refused_in_one_line(made, which, said):
    with pytest.raises(UserError) as e:
        alternatives.read([str(made[which])], "detect", 2)
    assert said in str(e.value) and "\n" not in str(e.value) and str(made[which]) in str(e.value)


def test_the_cli_refuses_a_wrong_alternative_before_writing_anything(made, runs_root):
    r = cli("prune", "--params", SMOKE, "--set", "run_name=alt-refused", "--set", f"alternatives=[{made['segment']}]")
    assert r.returncode != 0
    said = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(said) == 1 and "alternatives:" in said[0] and "segment model" in said[0], r.stderr
    assert not (runs_root / "alt-refused").exists()


TOLERANCE = precision_drop()
ROWS = [
    _row("unpruned", "onnxruntime", "FP32", 10.0, 0.70),
    _row("unpruned", "onnxruntime", "INT8", 6.0, 0.66),
    _row("unpruned", "openvino", "INT8", 5.0, 0.65),
    _row("pruned", "onnxruntime", "FP32", 5.0, 0.62),
    _row("small", "onnxruntime", "FP32", 5.5, 0.60),
    _row("small", "openvino", "INT8", 2.0, 0.55),
    _row("better", "onnxruntime", "FP32", 4.0, 0.64),
    _row("mixed", "onnxruntime", "FP32", 4.0, 0.50),
]


def test_verdicts_compare_in_the_recommended_files_runtime_and_precision():
    best = ROWS[3]
    kinds = {"small": "yours", "better": "stock", "mixed": "yours"}
    got = {v.alternative: v for v in alternatives.verdicts(ROWS, best, kinds, max_precision_drop=0.1)}
    small = got["small"]  # the onnxruntime FP32 file, not its faster INT8 one
    assert (small.runtime, small.precision, small.latency_ms) == ("onnxruntime", "FP32", 5.5)
    assert small.dominates and not small.dominated and small.faster == pytest.approx(1.1)
    assert small.more_accurate == pytest.approx(0.02)
    assert got["better"].dominated and not got["better"].dominates
    assert not got["mixed"].dominates and not got["mixed"].dominated
    alone = got["unpruned INT8"]  # the unpruned model's fastest file at a lower precision, in any runtime
    assert (alone.runtime, alone.precision, alone.latency_ms, alone.kind) == ("openvino", "INT8", 5.0,
                                                                               alternatives.LOWER_PRECISION)  # fmt: skip
    assert alone.dominated and not alone.dominates  # as fast and more accurate: the unpruned INT8 file wins here
    bf16 = [*ROWS, _row("unpruned", "openvino", "BF16", 4.5, 0.69)]  # a faster BF16 file: that is the one
    lower = next(v for v in alternatives.verdicts(bf16, best, {}, 0.1) if v.kind == alternatives.LOWER_PRECISION)
    assert (lower.alternative, lower.latency_ms) == ("unpruned BF16", 4.5)
    assert got["small"].sentence().startswith("**Beats small (yours, onnxruntime FP32)**: 1.10x faster")
    assert got["better"].sentence().startswith("**Loses to better (stock, onnxruntime FP32)**: 1.25x slower")
    assert "neither is both faster and as accurate" in got["mixed"].sentence()
    assert Verdict.of(json.loads(json.dumps(small.record()))) == small


def test_with_no_file_within_the_budget_every_alternative_is_still_judged_against_final_pt():
    # a run whose pruned files all fell outside max_map_drop: the stock model that lost by far still gets its verdict
    got = {v.alternative: v for v in alternatives.verdicts(ROWS, None, {"small": "yours", "mixed": "stock"}, 0.1)}
    assert set(got) == {"small", "mixed", "unpruned INT8"}
    small = got["small"]
    assert (small.pruned_file, small.pruned_latency_ms, small.within_budget) == (ROWS[3].file, 5.0, False)
    assert "outside the run's mAP budget" in small.sentence() and small.sentence().startswith("**Beats small")
    assert all(v.within_budget for v in alternatives.verdicts(ROWS, ROWS[3], {"small": "yours"}, 0.1))
    no_pruned = [r for r in ROWS if r.model != "pruned"]
    assert alternatives.verdicts(no_pruned, None, {"small": "yours"}, 0.1) == []


def test_the_lower_precision_alternative_keeps_its_float_files_accuracy():
    # by default (1 point) the unpruned INT8 files, 0.04 and 0.05 below its FP32 file, are no alternative
    kinds = [v.kind for v in alternatives.verdicts(ROWS, ROWS[3], {}, TOLERANCE)]
    assert alternatives.LOWER_PRECISION not in kinds
    bf16 = [*ROWS, _row("unpruned", "openvino", "BF16", 8.0, 0.695)]  # slower than the INT8 files, but it holds
    lower = [v for v in alternatives.verdicts(bf16, ROWS[3], {}, TOLERANCE) if v.kind == alternatives.LOWER_PRECISION]
    assert [(v.alternative, v.latency_ms) for v in lower] == [("unpruned BF16", 8.0)]


def test_an_alternative_with_no_file_in_the_runtime_is_compared_by_its_fastest():
    best = dataclasses.replace(ROWS[3], runtime="openvino", precision="BF16")
    (v, _) = alternatives.verdicts(ROWS, best, {"small": "yours"}, max_precision_drop=0.1)
    assert (v.runtime, v.precision, v.latency_ms) == ("openvino", "INT8", 2.0) and not (v.dominates or v.dominated)


def test_a_difference_within_the_noise_of_the_val_images_is_said_so():
    """with_noise: the interval of the mAP50-95 difference over resampled val images, paired; a verdict whose
    interval holds 0 is 'as accurate, within noise' whatever the point figures say."""
    rng = np.random.default_rng(0)

    def images(n, hit_rate):  # n images of 3 objects of one class, one detection each
        return [ImageHits(rng.random((3, 1)).repeat(10, 1) < hit_rate, rng.random(3), np.zeros(3), np.zeros(3))
                for _ in range(n)]  # fmt: skip

    good, noisy = images(40, 1.0), images(40, 0.95)
    rows = [dataclasses.replace(r, map_of=r.file) for r in ROWS]
    hits = {ROWS[3].file: good, ROWS[4].file: good[:20] + noisy[20:], ROWS[6].file: images(40, 0.2)}
    kinds = {"small": "yours", "better": "stock", "mixed": "yours"}
    found = alternatives.with_noise(alternatives.verdicts(rows, rows[3], kinds, 0.1), rows, hits)
    got = {v.alternative: v for v in found}
    small, better = got["small"], got["better"]
    assert small.within_noise and small.outcome == "is as accurate, within noise, as"  # 0.62 vs 0.60 as given
    assert "holds 0" in small.sentence() and small.difference_low <= 0 <= small.difference_high
    assert not better.within_noise and better.difference_low > 0  # its hits: far below final.pt's
    assert got["mixed"].difference_low is None and not got["mixed"].within_noise  # no hits: as before
    assert Verdict.of(json.loads(json.dumps(small.record()))) == small


def test_the_stock_family_changes_width_only():
    arch = DetectionModel("yolo11n.yaml", nc=2, verbose=False).yaml
    narrow, wide = (stock.at_width(arch, f, "detect", 2) for f in (0.5, 2.0))
    channels = [[m.out_channels for m in model.modules() if type(m).__name__ == "Conv2d"] for model in (narrow, wide)]
    assert len(channels[0]) == len(channels[1])  # the same layers: depth kept
    assert channels[0][0] == 8 and channels[1][0] == 32  # yolo11n's first conv, 16 channels, at half and twice
    assert stock.family(arch, {}) == "yolo11n.yaml"
    legacy = {**{k: v for k, v in arch.items() if k not in ("scales", "scale", "yaml_file")}, "width_multiple": 0.25}
    assert stock.family(legacy, {"model": "yolov8n.pt"}) == "yolov8n"  # an older checkpoint names no YAML
    assert stock.at_width_yaml(legacy, 0.5)["width_multiple"] == pytest.approx(0.125)  # a YOLOv8 checkpoint's YAML


def test_the_stock_model_keeps_its_best_of_as_many_last_epochs_as_final_pt_had(tmp_path):
    """BestOfLast keeps the best val fitness among the last epochs alone (an earlier, better epoch is not a
    candidate), the checkpoint saved at that epoch; candidate_epochs is final.pt's last fine-tuning's length."""
    keeps, weights = stock.BestOfLast(3), tmp_path / "weights"
    weights.mkdir()
    trainer = types.SimpleNamespace(epochs=10, wdir=weights, last=weights / "last.pt")
    for epoch, fitness in enumerate([0.1, 0.9, 0.3, 0.3, 0.3, 0.3, 0.3, 0.5, 0.7, 0.6]):
        trainer.last.write_text(f"epoch {epoch + 1}")  # what Ultralytics saved before on_model_save
        trainer.epoch, trainer.fitness = epoch, fitness
        keeps(trainer)
    assert (keeps.epoch, keeps.fitness) == (9, 0.7)  # not epoch 2's 0.9: outside the last 3
    assert (weights / stock.BestOfLast.FILE).read_text() == "epoch 9"

    def planned(**given):
        return Settings.of(parameters.load(overrides=given))

    assert stock.candidate_epochs(planned(iterative_steps=1, finetune_epochs=10, final_share=0.0), 110) == 10
    steps = planned(iterative_steps=4, finetune_epochs=5, final_share=0.5)  # 20 epochs: 10 final, 2 steps of 2.5
    assert stock.candidate_epochs(steps, 110) == steps.schedule.epochs()["final"] == 10
    assert stock.candidate_epochs(planned(iterative_steps=1, finetune_epochs=10, final_share=0.0), 4) == 4
    assert alternatives.label_of(tmp_path / "stock" / "weights" / stock.BestOfLast.FILE) == "stock"


class _WidthTimer:
    """A stand-in for export.Timer with known times: a model runs in time proportional to its parameter count."""

    def __init__(self, reference, imgsz, runtime, n_threads=0, precision="FP32"):
        self.reference = measuring.n_params(checkpoints.load_model(reference))

    def against(self, candidate, runs, warmup):
        speedup = self.reference / measuring.n_params(candidate)
        return {"speedup": speedup, "low": speedup, "high": speedup, "runtime": "onnxruntime", "precision": "FP32",
                "threads": 1}  # fmt: skip


def test_the_stock_width_is_bisected_to_the_try_that_runs_as_fast_as_final_pt(monkeypatch, tmp_path):
    """Fed known times (_WidthTimer), the bisection narrows on the width of a final.pt made at half the width, and
    keeps the try whose time is nearest final.pt's."""
    arch = DetectionModel("yolo11n.yaml", nc=2, verbose=False).yaml
    final = checkpoints.save_model(stock.at_width(arch, 0.5, "detect", 2), tmp_path / "final.pt")
    given = {"imgsz": 64, "latency_threads": 1, "latency_runs": 1, "latency_warmup": 0}
    run = types.SimpleNamespace(final=final, settings=Settings.of(parameters.load(overrides=given)))
    monkeypatch.setattr(stock.exporter, "Timer", _WidthTimer)
    factor, timing = stock.matched_width(run, arch, "detect", 2, log=lambda *_: None)
    size = measuring.n_params(checkpoints.load_model(final))
    ratios = {f: measuring.n_params(stock.at_width(arch, f, "detect", 2)) / size for f, _ in timing["tries"]}
    assert [round(r, 4) for r in ratios.values()] == [r for _, r in timing["tries"]]  # recorded as known
    assert [f for f, _ in timing["tries"]][:2] == [pytest.approx(0.3536, abs=1e-4), pytest.approx(0.5946, abs=1e-4)]
    assert factor == pytest.approx(min(ratios, key=lambda f: abs(math.log(ratios[f]))), abs=1e-4)
    assert 0.45 < factor < 0.55 and abs(math.log(ratios[round(factor, 4)])) < 0.05


@pytest.mark.slow
def test_a_run_exports_and_times_its_alternatives_and_says_which_it_beats(made, runs_root):
    sets = ["run_name=alt-smoke", f"alternatives=[{made['scale']}]", "stock_alternative=true", "stock_epochs=1",
            "sensitivity=false", "detection_images=0"]  # fmt: skip
    r = cli("prune", "--params", SMOKE, *(a for s in sets for a in ("--set", s)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run_dir = runs_root / "alt-smoke"
    export = json.loads((run_dir / "export.json").read_text())
    rows = {(d["model"], d["runtime"], d["precision"]) for d in export["deployment"]}
    for model in ("scale", "stock"):
        assert {(model, "onnxruntime", "FP32"), (model, "onnxruntime", "INT8"), (model, "openvino", "INT8")} <= rows
    assert all(d["map50_95"] >= 0 and d["latency_ms"] > 0 for d in export["deployment"])
    assert export["recommended"]["model"] == "pruned"
    said = {v["alternative"]: Verdict.of(v) for v in export["alternatives"]}
    # the unpruned model at a lower precision: its fastest file within max_precision_drop of its FP32 file, if any
    deployed = [Deployed.of(d) for d in export["deployment"]]
    lower_files = [r for r in deployed if r.model == "unpruned" and r.lower_precision]
    held = [r for r in lower_files if holds_precision(r, deployed, TOLERANCE)]
    lower = {f"unpruned {min(held, key=lambda r: r.latency_ms).precision}"} if held else set()
    assert set(said) - {"scale", "stock"} == lower
    report = (run_dir / "report.md").read_text()
    summary = report.split("## Summary\n\n")[1].split("\n## ")[0]
    for v in said.values():
        assert v.sentence() in summary
    made_stock = json.loads((run_dir / "stock" / "stock.json").read_text())
    assert made_stock["epochs"] == 1 and made_stock["epochs_from"] == "stock_epochs"
    assert len(made_stock["tries"]) == stock.TRIES  # every width timed is recorded (the choice: the test above)
    assert made_stock["width_factor"] in [factor for factor, _ in made_stock["tries"]]
    assert made_stock["candidate_epochs"] == 1 and made_stock["kept_epoch"] == 1  # its one epoch, as final.pt's last
    assert said["stock"].matched_in == f"{made_stock['runtime']} {made_stock['precision']}"  # where it was sized
    assert (run_dir / "deployment.png").stat().st_size > 0


def test_a_stock_model_is_judged_where_its_width_was_matched_and_nowhere_else():
    best = ROWS[3]  # onnxruntime FP32
    kinds = {"better": "stock"}
    there = alternatives.verdicts(ROWS, best, kinds, 0.1, {"better": "onnxruntime FP32"})[0]
    assert there.matched and there.outcome == "loses to"
    # recommended in OpenVINO BF16 (4.0 ms) while the stock width was matched in onnxruntime FP32: the verdict is
    # drawn there, final.pt's onnxruntime FP32 file (5.0 ms) against the stock model's (4.0 ms), not the BF16 files
    bf16 = dataclasses.replace(best, runtime="openvino", precision="BF16", latency_ms=4.0)
    rows = [*ROWS, dataclasses.replace(ROWS[6], runtime="openvino", precision="BF16", latency_ms=3.0), bf16]
    moved = alternatives.verdicts(rows, bf16, kinds, 0.1, {"better": "onnxruntime FP32"})[0]
    assert moved.matched and (moved.pruned_runtime, moved.pruned_precision, moved.runtime) == (
        "onnxruntime", "FP32", "onnxruntime")  # fmt: skip
    assert (moved.pruned_latency_ms, moved.latency_ms, moved.outcome) == (5.0, 4.0, "loses to")
    assert "(final.pt against it in onnxruntime FP32, where its width was matched)" in moved.sentence()
    # matched where neither model has a file (torch, say): compared against the recommended file, no verdict
    elsewhere = alternatives.verdicts(rows, bf16, kinds, 0.1, {"better": "torch FP32"})[0]
    assert not elsewhere.matched and elsewhere.outcome == "is not matched with"
    assert (elsewhere.pruned_runtime, elsewhere.runtime) == ("openvino", "openvino")
    said = elsewhere.sentence()
    assert said.startswith("**No verdict on better (stock, openvino BF16)**")
    assert "matched to final.pt's latency in torch FP32, not in openvino BF16" in said
    assert Verdict.of(json.loads(json.dumps(elsewhere.record()))) == elsewhere
