"""C3k2 -> C3k2Prunable is exact for every kind of C3k2 in YOLO11 and YOLO26 (and YOLOv8's C2f), for every task's
model, in eval and train mode."""

import copy

import pytest
import torch
from ultralytics.nn.modules.block import C2f, C3k2
import ultralytics.nn.tasks
from ultralytics.nn.tasks import DetectionModel

from prunelib import tasks

from prunelib.surgery.replacement import (
    C3k2Prunable,
    _flatten,
    block_kind,
    find_blocks,
    max_output_difference,
    replace_c3k2,
)

TOL = 1e-5


def randomize_batchnorm(model, seed=0):
    """Non-trivial BN statistics and affine terms, so an error in splitting them would show."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)


LARGE = pytest.mark.slow  # the same blocks at greater widths: seconds each, in make test only


@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolo11s.yaml", pytest.param("yolo11m.yaml", marks=LARGE),
                                 pytest.param("yolo11l.yaml", marks=LARGE), pytest.param("yolo11x.yaml", marks=LARGE),
                                 "yolov8n.yaml", "yolo26n.yaml", "yolo26s.yaml", "yolo11n-seg.yaml", "yolo11n-pose.yaml",
                                 "yolo11n-obb.yaml", "yolo26n-seg.yaml", "yolov8n-pose.yaml"])  # fmt: skip
def test_replacement_is_exact(cfg):
    torch.manual_seed(0)
    model = getattr(ultralytics.nn.tasks, tasks.of_cfg(cfg).model)(cfg, nc=8, verbose=False)
    randomize_batchnorm(model)
    replaced = copy.deepcopy(model)
    kinds_before = {k for _, k in find_blocks(model)}
    done = replace_c3k2(replaced)
    assert done and not any(type(m) in (C2f, C3k2) for m in replaced.modules())
    assert {k for _, k in done} == kinds_before
    if cfg.startswith("yolo11"):
        assert "c3k" in kinds_before  # the deeper layers of every size use C3k inner blocks
    x = torch.randn(2, 3, 64, 64)
    assert max_output_difference(model, replaced, x) <= TOL
    assert max_output_difference(model, replaced, x, train=True) <= TOL


def test_attention_variant_is_exact_and_keeps_routing_attributes():
    torch.manual_seed(0)
    block = C3k2(64, 64, n=2, attn=True)
    block.f, block.i, block.type, block.np = -1, 7, "C3k2", 1234
    randomize_batchnorm(block)
    holder = torch.nn.Sequential(copy.deepcopy(block))
    replace_c3k2(holder)
    new = holder[0]
    assert isinstance(new, C3k2Prunable) and new.kind == "attn" == block_kind(block)
    assert (new.f, new.i, new.type, new.np) == (-1, 7, "C3k2", 1234)
    x = torch.randn(2, 64, 16, 16)
    assert max_output_difference(block, new, x) <= TOL
    assert max_output_difference(block, new, x, train=True) <= TOL


def test_split_convs_keep_batchnorm_settings_and_halves():
    block = C3k2(32, 32, n=1, c3k=True)
    randomize_batchnorm(block)
    new = C3k2Prunable(block)
    for half, sl in ((new.cv0, slice(0, block.c)), (new.cv1, slice(block.c, 2 * block.c))):
        assert half.bn.eps == block.cv1.bn.eps and half.bn.momentum == block.cv1.bn.momentum
        assert torch.equal(half.conv.weight, block.cv1.conv.weight[sl])
        assert torch.equal(half.bn.running_var, block.cv1.bn.running_var[sl])
    assert new.cv2 is block.cv2 and new.m is block.m


def test_difference_check_does_not_move_batchnorm_statistics():
    model = DetectionModel("yolo11n.yaml", nc=8, verbose=False)
    before = copy.deepcopy(model.state_dict())
    max_output_difference(model, model, torch.randn(2, 3, 64, 64), train=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class _Dropped(torch.nn.Module):
    """A model that loses its last output: what a faulty replacement or fold could do."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return _flatten(self.model(x))[:-1]


def test_the_oracle_catches_a_wrong_replacement_a_missing_output_and_a_reshaped_one():
    """max_output_difference, the oracle of the replacement and folding tests, sees each fault they exist to catch."""
    torch.manual_seed(0)
    model = DetectionModel("yolo11n.yaml", nc=3, verbose=False)
    randomize_batchnorm(model)
    x = torch.randn(1, 3, 64, 64)
    wrong = copy.deepcopy(model)
    replace_c3k2(wrong)
    block = next(m for m in wrong.modules() if isinstance(m, C3k2Prunable))
    block.cv0, block.cv1 = block.cv1, block.cv0  # the two halves of cv1 swapped: every shape still fits
    assert max_output_difference(model, wrong, x) > 100 * TOL  # the tests pass a replacement at TOL
    assert max_output_difference(model, wrong, x, train=True) > 100 * TOL
    assert max_output_difference(model, _Dropped(model), x) == float("inf")  # an output missing, not skipped

    class Narrow(torch.nn.Module):  # the same outputs, the last one cut short
        def forward(self, y):
            out = _flatten(model(y))
            return [*out[:-1], out[-1][..., :-1]]

    assert max_output_difference(model, Narrow(), x) == float("inf")
