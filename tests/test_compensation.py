"""Compensation at the cut (prunelib.surgery.compensation), checked against its definition: a model pruned with each
removed channel's mean folded into its consumers computes what the unpruned model computes with those inputs held at
their means; pruned without a fold, what it computes with them at zero. Both on YOLO11 (C3k2) and YOLOv8 (C2f), the
head's hidden layers cut too. Convolutions pad by replicating the border here, so that a constant stays a constant up
to the edge and the match is exact everywhere (with zero padding it holds away from the border only)."""

import copy

import pytest
import torch
import torch.nn as nn
from ultralytics.nn.tasks import DetectionModel

from prunelib.core import parameters
from prunelib.core.settings import Pruning
from prunelib.surgery import compensation, measuring, pruner
from prunelib.surgery.replacement import replace_c3k2

IMGSZ = 64


def _model(cfg: str) -> nn.Module:
    """A model whose features vary across the image at every depth: BatchNorm statistics estimated on images (a
    fresh model's would let activations fade into constants), its shifts spread as a trained model's are."""
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=8, verbose=False)
    replace_c3k2(model)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.padding != (0, 0):
            m.padding_mode = "replicate"
    for m in norms:
        m.bias.data.uniform_(-1.0, 1.0)
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    with torch.no_grad():
        model.train()(_images(0, 8))
    return model.eval()


def _images(seed: int, n: int = 4) -> torch.Tensor:
    """Images with shapes as large as the deepest maps' cells (coarse noise, smoothed): deep features that vary
    across the image, as a photograph's do, where fine noise would leave them near-constant."""
    coarse = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    return nn.functional.interpolate(coarse, size=IMGSZ, mode="bilinear", align_corners=False)


def _cut(model: nn.Module, means: dict) -> compensation.Folding:
    """model pruned by a third of its channels (head included, any count), folding means; the Folding used."""
    fold = compensation.Folding(model, means)
    settings = Pruning.of(parameters.load(overrides={"imgsz": IMGSZ, "round_to": 0}))
    pruner.prune(model, settings, 0.3, measuring.example_inputs(IMGSZ), fold=fold)
    return fold


def _held(model: nn.Module, removed: dict[str, list[int]], means: dict[str, torch.Tensor]):
    """Hooks on model's convs that hold each removed input channel at its value in means (by conv name)."""
    convs = dict(model.named_modules())

    def hold(name):
        def hook(conv, args):
            x = args[0].clone()
            x[:, removed[name]] = means[name][removed[name]].view(1, -1, 1, 1).to(x)
            return (x,)

        return hook

    return [convs[name].register_forward_pre_hook(hold(name)) for name in removed]


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model.eval()(x)
    return out[0] if isinstance(out, (list, tuple)) else out


def _cut_against_held(unpruned: nn.Module, measured: dict, folded: dict) -> tuple:
    """A copy of unpruned cut folding ``folded`` means, and unpruned with the inputs the cut removed held at their
    ``measured`` means: ({conv name: its inputs removed}, the cut's output, the held model's output) on other
    images."""
    pruned, means = copy.deepcopy((unpruned, folded))  # the means keyed by the copy's own convs
    fold = _cut(pruned, means)
    names = {m: n for n, m in pruned.named_modules()}
    removed = {names[c]: idx for c, idx in fold.removed.items()}
    by_name = {n: measured[m] for n, m in unpruned.named_modules() if m in measured}
    hooks = _held(unpruned, removed, by_name)
    x = _images(2)
    want = _outputs(unpruned, x)
    for h in hooks:
        h.remove()
    return removed, _outputs(pruned, x), want


@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolov8n.yaml"])
@pytest.mark.parametrize("at", ["means", "zero"])
def test_a_cut_computes_what_the_unpruned_model_computes_with_the_removed_inputs_held(cfg, at):
    unpruned = _model(cfg)
    measured = compensation.input_means(unpruned, [_images(1)])
    if at == "zero":
        measured = {c: torch.zeros_like(m) for c, m in measured.items()}
    removed, got, want = _cut_against_held(unpruned, measured, measured)
    assert sum(map(len, removed.values())) > 100  # inputs folded inside the blocks and the head's class branch
    assert any(".m.0." in n for n in removed) and any(
        n.startswith(f"model.{len(unpruned.model) - 1}.cv3.") for n in removed
    )
    scale = want.abs().max()
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-4 * scale
    plain = _model(cfg)
    pruner.prune(plain, Pruning.of(parameters.load(overrides={"imgsz": IMGSZ, "round_to": 0})), 0.3,
                 measuring.example_inputs(IMGSZ))  # fmt: skip
    difference = (_outputs(plain, _images(2)) - got).abs().max()
    if at == "zero":  # a plain cut is the fold of zeros
        assert difference <= 1e-5 * scale
    else:  # and the fold is no small change: without it the pruned model computes something else
        assert difference > 1e-2 * scale


def test_a_mean_folded_into_the_wrong_consumer_is_caught():
    """SPPF's last conv reads each channel four times, three of them max-pooled, each with a mean of its own:
    folding the unpooled mean of its first input (the producer's) into all four does not match."""
    unpruned = _model("yolo11n.yaml")
    measured = compensation.input_means(unpruned, [_images(1)])
    sppf = unpruned.model[9].cv2.conv
    wrong = dict(measured)
    wrong[sppf] = measured[sppf][: sppf.in_channels // 4].repeat(4)  # the producer's mean, as if pooling kept it
    assert not torch.allclose(wrong[sppf], measured[sppf])
    removed, got, want = _cut_against_held(unpruned, measured, wrong)
    assert "model.9.cv2.conv" in removed
    assert (got - want).abs().max() > 1e-3 * want.abs().max()


def test_depthwise_convs_are_no_consumers_their_readers_are():
    model = _model("yolo11n.yaml")  # its head's class branch holds depthwise convs
    means = compensation.input_means(model, [_images(1)])
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise and not any(m in means for m in depthwise)
    assert all(len(v) == c.in_channels for c, v in means.items())
