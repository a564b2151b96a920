"""Publishing: prunable blocks fold back into Ultralytics' own C3k2/C2f, exactly, padded with zero channels when
pruning left their halves unequal; the kit takes the folded form back."""

import copy

import pytest
import torch
from ultralytics.nn.modules.block import C2f, C3k2
from ultralytics.nn.tasks import DetectionModel

from prunelib.runs import parameters
from prunelib.surgery import folding, measuring, pruner
from prunelib.surgery.replacement import C3k2Prunable, max_output_difference, replace_c3k2

IMGSZ = 64


def trained_looking(cfg):
    """A model with BatchNorm statistics that are not the initial ones (a few train-mode batches)."""
    torch.manual_seed(0)
    m = DetectionModel(cfg, nc=2, verbose=False)
    replace_c3k2(m)
    with torch.no_grad():
        for _ in range(3):
            m.train()(torch.randn(4, 3, IMGSZ, IMGSZ))
    return m


@pytest.mark.parametrize("cfg, stock", [("yolo11n.yaml", C3k2), ("yolov8n.yaml", C2f)])
@pytest.mark.parametrize("global_pruning", [False, True])
def test_folding_is_exact_and_leaves_only_ultralytics_blocks(cfg, stock, global_pruning):
    model = trained_looking(cfg)
    x = measuring.example_inputs(IMGSZ)
    pruner.prune(model, parameters.load(overrides={"imgsz": IMGSZ, "global_pruning": global_pruning}), 0.4, x)
    halves = [(b.cv0.conv.out_channels, b.cv1.conv.out_channels) for b in model.modules()
              if isinstance(b, C3k2Prunable)]  # fmt: skip
    folded = copy.deepcopy(model)
    done = folding.fold(folded)
    assert done["folded"] == len(halves) == 8 and not done["kept"]
    assert not any(isinstance(m, C3k2Prunable) for m in folded.modules())
    assert sum(type(m) is stock for m in folded.modules()) == 8
    assert not any(type(m).__module__.startswith("prunelib") for m in folded.modules())
    images = torch.rand(2, 3, IMGSZ, IMGSZ)
    assert max_output_difference(model, folded, images) <= 1e-5
    # train mode (batch statistics of 2 images): one merged conv sums in another float32 order than two halves;
    # measured up to 3.6e-5 on outputs up to 9 with padding, 0 without
    assert max_output_difference(model, folded, images, train=True) <= 1e-4
    unequal = sum(a != b for a, b in halves)
    if not global_pruning:  # layer by layer, both halves lose the same share: nothing to pad
        assert unequal == 0 and done["padded_channels"] == 0
        assert measuring.macs_params(folded, IMGSZ) == measuring.macs_params(model, IMGSZ)
    else:  # global ranking cut the halves differently (measured: 28 zero channels on YOLO11n)
        assert unequal > 0 and done["padded_channels"] >= sum(abs(a - b) for a, b in halves)
        assert measuring.macs_params(folded, IMGSZ)[0] > measuring.macs_params(model, IMGSZ)[0]
    again = copy.deepcopy(folded)  # the kit takes a folded (published) model back and can prune it further
    assert len(replace_c3k2(again)) == 8 and max_output_difference(folded, again, images) <= 1e-5
