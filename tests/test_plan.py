"""The command a user types gets the measured recipe, and a run says in its first line what it will do."""

from __future__ import annotations

import pytest

from prunelib import machine, runs
from prunelib.core import parameters
from prunelib.core.settings import Settings
from prunelib.runs import plan

from conftest import SMOKE


def test_the_built_in_defaults_are_the_recipe_and_the_reference_is_one_file_away():
    p = parameters.load()
    assert (p["target_latency_speedup"], p["prune_head"], p["round_to"]) == (2.0, True, "auto")
    assert p["optimizer"] == "auto" and p["latency_threads"] == 1
    reference = parameters.load(["params/reference.yaml"])
    assert (reference["target_latency_speedup"], reference["target_prune_rate"]) == (0.0, 0.5)
    assert (reference["prune_head"], reference["round_to"], reference["bn_recalibration"]) == (False, 0, 0)
    # the reference script's own flag turns the latency goal off, as a goal given always does
    flagged = parameters.load(overrides={"target_prune_rate": 0.3})
    assert (flagged["target_latency_speedup"], flagged["target_prune_rate"]) == (0.0, 0.3)
    assert parameters.load(overrides={"target_speedup": 3})["target_latency_speedup"] == 0.0


def test_the_first_line_names_the_goal_the_recipe_the_budget_and_the_time(smoke_start, monkeypatch):
    # a fixed training time per image (0.1 s): the estimate's arithmetic is checked, not this machine's speed
    monkeypatch.setattr(plan, "_training_seconds_per_image", lambda source, imgsz: 0.1)
    run = runs.open_run([SMOKE], {"run_name": "plan-smoke", "target_latency_speedup": 1.5, "latency_threads": 0})
    line = plan.first_line(run)
    assert line.startswith("Goal: 1.5x faster, timed in onnxruntime FP32, batch 1, ") and "(all cores)" in line
    assert "your recipe (prune_head, round_to, iterative_steps changed): head whole, any channel count" in line
    assert "fine-tuning 2 steps x 1 epoch;" in line
    # 2 epochs x 4/3 (the original matched on each batch) x (96 training + 24 / 3 validation images) x 0.1 s, 90 s of
    # timed trials, and 2 models exported and validated at (75 + 24 / 4 x 0.1) s each: 27.7 + 90 + 151.2 = 269 s
    assert line.endswith("; about 4 min here")
    # at 10 s an image the teacher's share shows: 2 x (96 + 8) x 10 = 2080 s of fine-tuning on the labels alone,
    # 2773 s matching the original; + 90 + 2 x (75 + 60) = 360 s: 40.7 and 52.2 minutes
    monkeypatch.setattr(plan, "_training_seconds_per_image", lambda source, imgsz: 10.0)
    assert plan.estimate(run) == "about 52 min here"
    given = {"run_name": "plan-smoke-labels", "target_latency_speedup": 1.5, "latency_threads": 0}
    labels = runs.open_run([SMOKE], {**given, "match_original": 0.0})
    assert plan.estimate(labels) == "about 41 min here"


def test_the_recipe_line_says_the_kits_recipe_when_nothing_is_changed():
    p = parameters.load(overrides={"run_name": "x"})
    block = machine.channel_block()
    expected = (
        f"the kit's recipe: head pruned, whole blocks of {block} channels, Ultralytics' optimizer rule, on the labels "
        "and the original's outputs, each cut repaired by the best of fold / recalibrate / none"
    )
    assert plan.recipe(Settings.of(p), parameters.changed(p, plan.RECIPE)) == expected
    labels = {**p, "match_original": 0.0}
    said = plan.recipe(Settings.of(labels), parameters.changed(labels, plan.RECIPE))
    assert said.startswith("your recipe (match_original changed)") and "original's outputs" not in said
    alone = {**p, "label_weight": 0.0, "freeze_bn_stats": True}
    assert "on the original's outputs alone, BatchNorm statistics frozen" in plan.recipe(Settings.of(alone), [])
    assert plan.goal(Settings.of(p)) == "Goal: 2x faster, timed in onnxruntime FP32, batch 1, 1 thread, on this machine"
    assert (
        plan.goal(Settings.of(parameters.load(["params/reference.yaml"])))
        == "Goal: 50% of the prunable channels removed"
    )


@pytest.mark.parametrize("device, said", [("cpu", False), ("0", True)])
def test_a_gpu_run_is_told_that_the_latency_goal_is_timed_on_this_cpu(device, said):
    p = {**parameters.load(), "device": device}
    note = plan.device_note(Settings.of(p))
    assert (note is not None) == said
    if said:
        assert "timed on this machine's CPU" in note and "target_speedup" in note


def test_the_first_line_counts_the_alternatives_and_the_stock_models_training(smoke_start, monkeypatch):
    monkeypatch.setattr(plan, "_training_seconds_per_image", lambda *_: 0.01)  # a fixed time: known estimates
    base = runs.open_run([SMOKE], {"run_name": "plan-alternatives"})
    stocked = runs.open_run([SMOKE], {"run_name": "plan-alternatives", "stock_alternative": True,
                                      "alternatives": [str(smoke_start["model"])]})  # fmt: skip
    assert plan.budget(base.settings) == "fine-tuning 2 steps x 1 epoch"
    assert plan.budget(stocked.settings) == "fine-tuning 2 steps x 1 epoch, beside 2 alternatives"
    # 2 epochs x (96 + 24 / 3) images x 0.01 s + 2 models x (75 + 0.25 x 24 x 0.01) s = 152 s; with the stock model
    # (the baseline's 200 epochs + 2) and 4 models: 204 x 104 x 0.01 + 4 x 75.06 = 512 s
    assert [plan.estimate(r) for r in (base, stocked)] == ["about 3 min here", "about 9 min here"]
