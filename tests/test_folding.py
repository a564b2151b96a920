"""Publishing: prunable blocks fold back into Ultralytics' own C3k2/C2f, exactly, padded with zero channels when
pruning left their halves unequal; the kit takes the folded form back."""

import copy

import pytest
import torch
from ultralytics.nn.modules.block import C2f, C3k2
from ultralytics.nn.tasks import DetectionModel

from prunelib.core import parameters
from prunelib.core.settings import Pruning
from prunelib.surgery import folding, measuring, pruner
from prunelib.surgery.replacement import C3k2Prunable, _flatten, max_output_difference, replace_c3k2

from conftest import MECHANICS

IMGSZ = 64


def largest_output(model, images, train):
    with torch.no_grad():
        return max(t.abs().max().item() for t in _flatten(copy.deepcopy(model).train(train)(images)))


def trained_looking(cfg):
    """A model with BatchNorm statistics that are not the initial ones (a few train-mode batches)."""
    torch.manual_seed(0)
    m = DetectionModel(cfg, nc=2, verbose=False)
    replace_c3k2(m)
    with torch.no_grad():
        for _ in range(3):
            m.train()(torch.randn(4, 3, IMGSZ, IMGSZ))
    return m


@pytest.mark.parametrize("cfg, stock", [("yolo11n.yaml", C3k2), ("yolov8n.yaml", C2f), ("yolo26n.yaml", C3k2)])
@pytest.mark.parametrize("global_pruning", [False, True])
def test_folding_is_exact_and_leaves_only_ultralytics_blocks(cfg, stock, global_pruning):
    model = trained_looking(cfg)
    x = measuring.example_inputs(IMGSZ)
    settings = Pruning.of(parameters.load(overrides={"imgsz": IMGSZ, **MECHANICS, "global_pruning": global_pruning}))
    pruner.prune(model, settings, 0.4, x)
    blocks = {n: b for n, b in model.named_modules() if isinstance(b, C3k2Prunable)}
    halves = {n: (b.cv0.conv.out_channels, b.cv1.conv.out_channels) for n, b in blocks.items()}
    folded = copy.deepcopy(model)
    done = folding.fold(folded)
    # YOLO26's attention block cannot take padding into its inner blocks: left prunable, and reported. With the
    # default ignore_layers (PSABlock kept whole) its inner half is never cut, so every block folds (the README's
    # promise: final.pt needs no prunelib); only a user who prunes PSABlock meets the exception
    unfoldable = [n for n, b in blocks.items() if b.kind == "attn" and halves[n][1] < halves[n][0]]
    assert unfoldable == [] and "PSABlock" in settings.ignore_layers
    assert done["kept"] == unfoldable and done["folded"] == len(halves) - len(unfoldable) and len(halves) == 8
    assert sum(isinstance(m, C3k2Prunable) for m in folded.modules()) == len(unfoldable)
    assert sum(type(m) is stock for m in folded.modules()) == 8 - len(unfoldable)
    if not unfoldable:
        assert not any(type(m).__module__.startswith("prunelib") for m in folded.modules())
    images = torch.rand(2, 3, IMGSZ, IMGSZ)
    # one merged conv sums in another float32 order than two halves: differences are float rounding, relative to
    # the outputs' size (eval: box coordinates up to ~500, measured up to 3e-5; train: up to 9, 3.6e-5)
    for train in (False, True):
        scale = max(1.0, largest_output(model, images, train))
        assert max_output_difference(model, folded, images, train=train) <= 1e-5 * scale
    unequal = sum(abs(a - b) for n, (a, b) in halves.items() if n not in unfoldable)
    assert done["padded_channels"] >= unequal  # each unequal pair padded to the larger, more behind a residual
    if unequal == 0:
        assert done["padded_channels"] == 0
        assert measuring.macs_params(folded, IMGSZ) == measuring.macs_params(model, IMGSZ)
    else:
        assert measuring.macs_params(folded, IMGSZ)[0] > measuring.macs_params(model, IMGSZ)[0]
    if cfg != "yolo26n.yaml":  # layer by layer both halves lose the same share; global ranking cuts them apart
        assert (unequal > 0) == global_pruning  # (measured: 28 zero channels on YOLO11n)
    again = copy.deepcopy(folded)  # the kit takes a folded (published) model back and can prune it further
    assert len(replace_c3k2(again)) == 8 - len(unfoldable)
    assert max_output_difference(folded, again, images) <= 1e-5 * max(1.0, largest_output(folded, images, False))


def test_a_wrong_fold_is_caught_by_the_oracle(monkeypatch):
    """Folding with the halves concatenated in the wrong order (every shape still fits) fails the check the folding
    test passes at 1e-5 of the outputs' size."""
    model = trained_looking("yolo11n.yaml")
    settings = Pruning.of(parameters.load(overrides={"imgsz": IMGSZ, **MECHANICS, "global_pruning": True}))
    pruner.prune(model, settings, 0.4, measuring.example_inputs(IMGSZ))
    concatenated = folding._concatenated
    monkeypatch.setattr(folding, "_concatenated", lambda a, b: concatenated(b, a))  # cv1 = cat(second, first)
    folded = copy.deepcopy(model)
    folding.fold(folded)
    images = torch.rand(2, 3, IMGSZ, IMGSZ)
    for train in (False, True):  # the folding test passes at 1e-5 of the outputs' size
        tolerance = 1e-5 * max(1.0, largest_output(model, images, train))
        assert max_output_difference(model, folded, images, train=train) > (100 if train else 1) * tolerance
