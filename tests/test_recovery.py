"""Accuracy recovery on the smoke model: the budget split, BatchNorm recalibration, sparsity training, distillation
and the final fine-tune, each measured, not just run."""

import copy

import pytest
import torch

from prunelib import runs
from prunelib.errors import UserError
from prunelib.core import parameters
from prunelib.core.settings import Pruning, Schedule, Training
from prunelib.runs import stages
from prunelib.surgery import checkpoints, measuring, pruner
from prunelib.surgery.replacement import replace_c3k2
from prunelib.training.datasets import training_batches
from prunelib.training.finetuning import finetune
from prunelib.training.recalibration import recalibrate_batchnorm
from prunelib.training.validation import evaluate

from conftest import RUNS, SMOKE, published_from


VAL = RUNS / "val-recovery"  # where the validator writes


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def replaced(smoke_start):
    model = checkpoints.load_model(smoke_start["model"])
    replace_c3k2(model)
    return model


def pruned_copy(replaced, params, ratio=0.3):
    model = copy.deepcopy(replaced)
    pruner.prune(model, Pruning.of(params), ratio, measuring.example_inputs(params["imgsz"]))
    return model


@pytest.mark.parametrize("given, split", [
    ({"iterative_steps": 2, "finetune_epochs": 5}, {"budget": 10, "sparse": 0, "step": 5, "final": 0}),
    ({"iterative_steps": 2, "finetune_epochs": 5, "final_share": 0.4}, {"budget": 10, "sparse": 0, "step": 3, "final": 4}),
    ({"iterative_steps": 3, "finetune_epochs": 3, "sparse_epochs": 1, "final_share": 0.25}, {"budget": 9, "sparse": 1, "step": 2, "final": 2}),
    ({"iterative_steps": 2, "finetune_epochs": 2, "final_share": 0.9}, {"budget": 4, "sparse": 0, "step": 1, "final": 2}),
    ({"finetune_epochs": 0, "final_share": 0.5}, {"budget": 0, "sparse": 0, "step": 0, "final": 0}),
])  # fmt: skip
def test_sparse_and_final_epochs_come_out_of_the_budget(given, split):
    p = parameters.load([SMOKE], given)
    assert Schedule.of(p).epochs() == split
    assert split["sparse"] + split["step"] * p["iterative_steps"] + split["final"] <= split["budget"]
    assert split["step"] >= 1 or not split["budget"]


def test_a_budget_without_an_epoch_per_step_is_refused():
    with pytest.raises(UserError, match=r"sparse_epochs: 9 leaves fewer than one epoch per step of the budget "
                                        r"iterative_steps x finetune_epochs = 2 x 5 = 10; expected at most 8"):
        parameters.load([SMOKE], {"iterative_steps": 2, "finetune_epochs": 5, "sparse_epochs": 9})


def test_bn_recalibration_holds_the_statistics_of_the_training_images(replaced, smoke_params, smoke_start):
    model = pruned_copy(replaced, smoke_params)
    first = model.model[0]  # its input is the image itself, so its statistics can be computed here independently
    means = []
    with torch.no_grad():
        for batch in training_batches(Training.of(smoke_params), smoke_start["data"], 10**6):
            means.append(first.conv(batch["img"]).mean(dim=(0, 2, 3)))
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    momentum = first.bn.momentum
    used = recalibrate_batchnorm(model, Training.of(smoke_params), smoke_start["data"], 10**6)
    assert used == smoke_params["synth_train"]
    torch.testing.assert_close(first.bn.running_mean, torch.stack(means).mean(0), atol=1e-4, rtol=1e-4)
    assert first.bn.momentum == momentum  # restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())  # only statistics changed


def test_the_smoke_baseline_has_learnt_something(smoke_params, smoke_start):
    m = evaluate(checkpoints.load_model(smoke_start["model"]), Training.of(smoke_params), smoke_start["data"], VAL)
    assert m["map50_95"] > 0.3, m  # measured 0.43: tests below can see accuracy fall and come back


def test_bn_recalibration_gives_back_what_stale_statistics_took(replaced, smoke_params, smoke_start):
    stale = pruned_copy(replaced, smoke_params, ratio=0.4)
    fresh = copy.deepcopy(stale)
    recalibrate_batchnorm(fresh, Training.of(smoke_params), smoke_start["data"], 256)
    before, after = (evaluate(m, Training.of(smoke_params), smoke_start["data"], VAL)["map50_95"]
                     for m in (stale, fresh))
    assert after > before + 0.05, (before, after)


@pytest.mark.slow  # trains or runs the pipeline: make test, not make check
def test_finetuning_recovers_what_pruning_took(replaced, smoke_params, smoke_start, tmp_path):
    params = {**smoke_params, "bn_recalibration": 0}
    model = pruned_copy(replaced, params, ratio=0.4)
    pruned = evaluate(model, Training.of(params), smoke_start["data"], VAL)["map50_95"]
    recovered, _ = finetune(model, Training.of(params), smoke_start["data"], tmp_path / "ft", 3)
    after = evaluate(recovered, Training.of(params), smoke_start["data"], VAL)["map50_95"]
    assert after > pruned + 0.05, (pruned, after)


@pytest.mark.slow  # trains or runs the pipeline: make test, not make check
def test_sparsity_training_weakens_what_the_next_step_removes(replaced, smoke_params, smoke_start, tmp_path):
    x = measuring.example_inputs(smoke_params["imgsz"])
    # an optimizer step every batch of 8 (12 steps an epoch), SGD: the regularisation decays the weak groups
    params = {**smoke_params, "sparse_reg": 0.05, "batch": 8, "nbs": 0, "optimizer": "SGD", "lr0": 0.01}
    before = pruner.weak_channel_share(copy.deepcopy(replaced), Pruning.of(params), 0.5, x)

    def regularizer(model):
        return pruner.build_pruner(model, Pruning.of(params), 0.5, x, reg=params["sparse_reg"])

    src = checkpoints.save_model(copy.deepcopy(replaced), tmp_path / "replaced.pt")
    model, _ = finetune(src, Training.of(params), smoke_start["data"], tmp_path / "sparse", 1,
                        regularizer=regularizer)
    plain, _ = finetune(src, Training.of(params), smoke_start["data"], tmp_path / "plain", 1)
    after, without = (pruner.weak_channel_share(m, Pruning.of(params), 0.5, x) for m in (model, plain))
    # measured here: 0.972 -> 0.953 with the regularisation, 0.972 -> 0.972 without it
    assert before - after > 0.01 and before - after > 10 * abs(before - without), (before, after, without)


@pytest.mark.slow  # trains or runs the pipeline: make test, not make check
def test_distillation_trains_the_student_and_saves_it_alone(replaced, smoke_params, smoke_start, tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    model = pruned_copy(replaced, smoke_params)
    n = measuring.n_params(model)
    teacher = checkpoints.save_model(copy.deepcopy(replaced), tmp_path / "teacher.pt")
    params = {**smoke_params, "distill_weight": 1.0}
    best, trainer = finetune(model, Training.of(params), smoke_start["data"], tmp_path / "ft", 1, teacher=teacher)
    assert "dis_loss" in (tmp_path / "ft" / "results.csv").read_text().splitlines()[0]
    for path in (trainer.best, trainer.last):
        saved = checkpoints.load_model(path)
        assert type(saved) is DetectionModel and measuring.n_params(saved) == n  # the student, plain
    assert measuring.n_params(best) == n


@pytest.mark.slow  # trains or runs the pipeline: make test, not make check
def test_final_finetune_has_its_own_row_and_becomes_final(smoke_start):
    run = runs.open_run([SMOKE], {"run_name": "final-ft", "iterative_steps": 2, "finetune_epochs": 2,
                                  "final_share": 0.5, "max_map_drop": 1.0})  # fmt: skip
    stages.replace(run, log=quiet)
    ledger = stages.prune(run, log=quiet)
    assert [(r.step, r.kind, r.epochs) for r in ledger] == [(1, "prune", 1), (2, "prune", 1), (3, "final", 2)]
    final = ledger[-1]
    assert final.macs == ledger[1].macs and final.pruned_map50_95 == ledger[1].map50_95
    assert published_from(run.final, run.step_weights("final")) and run.final_step() == final
    assert stages.prune(run, log=quiet) == ledger  # complete: nothing more to do
    from prunelib.presentation.report import write_report

    assert "| final | 30." in write_report(run) and "Fine-tuning epochs in all: 4." in write_report(run)


def test_the_recovery_recipe_is_the_default_and_the_reference_is_one_file_away():
    recipe, reference = (parameters.read_yaml(f"params/{f}.yaml") for f in ("recipes/recovery", "reference"))
    assert recipe and all(parameters.DEFAULTS[k] == v for k, v in recipe.items())
    p = parameters.load(["params/default.yaml", "params/reference.yaml"])
    assert (p["bn_recalibration"], p["final_share"], p["distill_weight"], p["sparse_epochs"]) == (0, 0.0, 0.0, 0)
    assert any(parameters.DEFAULTS[k] != v for k, v in reference.items())
