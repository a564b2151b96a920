"""Building the Torch-Pruning pruner from the run's pruning settings (prunelib.core.settings.Pruning), and counting
what it can prune.

All of the pruner's knobs are here, in one place: importance by name, ignored layers, round_to, global pruning,
max pruning ratio. The pruner is rebuilt for every step (fine-tuning returns new module objects), with
``iterative_steps=1`` and the step's share of the current channels, which the run's goal chooses
(prunelib.runs.policy).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch_pruning as tp
from ultralytics.nn.modules.block import Proto, PSABlock
from ultralytics.nn.modules.conv import Conv
from ultralytics.nn.modules.head import Detect

from prunelib.core.settings import Pruning
from prunelib.errors import UserError
from prunelib.surgery import lineage

# importance name (the parameter table's IMPORTANCES, the same names: tested) -> factory. 'l2' is the reference
# script's GroupMagnitudeImportance(p=2).
IMPORTANCES = {
    "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
    "bn_scale": lambda: tp.importance.BNScaleImportance(),
    "taylor": lambda: tp.importance.GroupTaylorImportance(),
    "lamp": lambda: tp.importance.LAMPImportance(p=2),
    "random": lambda: tp.importance.RandomImportance(),
}
NEEDS_GRADIENTS = {"taylor"}


def prune(
    model: nn.Module,
    settings: Pruning,
    ratio: float,
    example_inputs: torch.Tensor,
    gradients=None,
    layer_ratios: dict[int, float] | None = None,
    times: dict[str, float] | None = None,
    fold=None,
) -> None:
    """Remove ``ratio`` of the current prunable channels of model, in place; layer_ratios {index into model.model:
    ratio} overrides it per layer; times (node ms by module path, export.node_times of this model) makes the cut
    time-guided (TimeGuided). gradients(model) fills the weights' gradients first, for an importance that ranks
    by them (NEEDS_GRADIENTS: prunelib.training.gradients.accumulate_gradients, on the run's training images).
    fold(group), when given, sees each group Torch-Pruning's interactive step yields before it is pruned
    (compensation.Folding: what the removed channels carried, folded into their consumers). The head's inputs keep
    the list of the original channels they still compute (lineage)."""
    p = build_pruner(model, settings, ratio, example_inputs, layer_ratios=layer_ratios, times=times)
    if settings.importance in NEEDS_GRADIENTS:
        if gradients is None:
            raise ValueError(f"importance {settings.importance!r} ranks channels by gradients: pass gradients=")
        gradients(model)
    head_inputs = lineage.mark(model)
    for group in p.step(interactive=True):
        lineage.record(head_inputs, group)
        if fold is not None:
            fold(group)
        group.prune()
    model.zero_grad(set_to_none=True)


def ignored_modules(model: nn.Module, settings: Pruning) -> list[nn.Module]:
    """The layers settings.ignore_layers names, whose output channels are never pruned: by class name (every instance
    of it or of a subclass, with all it holds: ``Detect`` keeps Segment, Pose and OBB heads whole) or by layer index
    into model.model (``22``)."""
    by_name = [
        m
        for item in settings.ignore_layers
        if not _is_index(item)
        for m in model.modules()
        if item in {c.__name__ for c in type(m).__mro__}
    ]
    return by_name + pinned_layers(model, settings)


def pinned_layers(model: nn.Module, settings: Pruning) -> list[nn.Module]:
    """The layers settings.ignore_layers names by index into model.model: kept whole, hidden layers and all
    (prune_head, prune_proto and prune_attention carve theirs out of the layers named by class only)."""
    layers = getattr(model, "model", None)
    out = []
    for item in settings.ignore_layers:
        if _is_index(item):
            i = int(item)
            if layers is None or not 0 <= i < len(layers):
                n = len(layers) if layers is not None else 0
                raise UserError(f"ignore_layers: layer index {i} is out of range; this model has layers 0-{n - 1}")
            out.append(layers[i])
    return out


def _is_index(item) -> bool:
    return isinstance(item, int) or str(item).isdigit()


def _emitted(module: nn.Module) -> set[int]:
    """ids of the plain Conv2d layers in module (not the conv of an Ultralytics Conv block): in a head, each ends a
    branch and makes what the head emits (4 x reg_max, the classes, mask coefficients, keypoints, angles, YOLO26-seg's
    semantic classes), so its output channels stay."""
    wrapped = {id(b.conv) for b in module.modules() if isinstance(b, Conv)}
    return {id(m) for m in module.modules() if isinstance(m, nn.Conv2d) and id(m) not in wrapped}


def proto_hidden(model: nn.Module) -> set[int]:
    """ids of the modules inside a segment head's mask prototype (Proto, Proto26) before its last convolution: what
    ``prune_proto`` lets the pruner cut (the last convolution makes the masks, whose count the head relies on;
    YOLO26's training-only semantic branch keeps its class outputs)."""
    return {
        id(m)
        for proto in model.modules()
        if isinstance(proto, Proto)
        for part in proto.children()
        if part is not proto.cv3
        for m in part.modules()
        if id(m) not in _emitted(part)
    }


def head_hidden(model: nn.Module) -> set[int]:
    """ids of the modules inside every head (Detect and its subclasses) that ``prune_head`` lets the pruner cut: its
    hidden convolutions (Ultralytics' Conv and DWConv blocks of the box, class, mask-coefficient, keypoint and angle
    branches, YOLO26's one-to-one copies included). What the head emits stays: each branch ends in a plain Conv2d
    (4 x reg_max, the classes, the mask coefficients, keypoints, angles), which is not a Conv block, and DFL, strides
    and anchors hold no Conv block. The mask prototype is prune_proto's (proto_hidden)."""
    proto = {id(m) for p in model.modules() if isinstance(p, Proto) for m in p.modules()}
    return {
        id(m)
        for head in model.modules()
        if isinstance(head, Detect)
        for block in head.modules()
        if isinstance(block, Conv) and id(block) not in proto
        for m in block.modules()
    }


def attention_hidden(model: nn.Module) -> set[int]:
    """ids of the modules inside every attention block's feed-forward (PSABlock.ffn, in C2PSA and YOLO26's C3k2
    with attention) before its last convolution: what ``prune_attention`` lets the pruner cut. The attention itself
    (query, key and value heads, their positional conv and projection) stays whole: its channels are reshaped into
    heads, which Torch-Pruning cannot keep consistent in these blocks."""
    return {id(m) for block in model.modules() if isinstance(block, PSABlock) for m in block.ffn[:-1].modules()}


def carved_out(model: nn.Module, settings: Pruning) -> dict[str, set[int]]:
    """{parameter: ids of the modules it lets the pruner cut inside ignored layers}, for each of prune_head,
    prune_proto and prune_attention that is on: the heads', the mask prototype's and the attention blocks'
    feed-forward hidden layers, less those in layers named by index (pinned_layers), which stay whole."""
    pinned = {id(m) for layer in pinned_layers(model, settings) for m in layer.modules()}
    wanted = {
        "prune_head": (settings.prune_head, head_hidden),
        "prune_proto": (settings.prune_proto, proto_hidden),
        "prune_attention": (settings.prune_attention, attention_hidden),
    }
    return {name: hidden(model) - pinned for name, (on, hidden) in wanted.items() if on}


def kept_whole(model: nn.Module, settings: Pruning) -> list[nn.Module]:
    """Every module whose output channels stay, as Torch-Pruning's ``ignored_layers``: all the ignored layers hold,
    less what prune_head, prune_proto and prune_attention carve out of them (carved_out)."""
    kept = [m for layer in ignored_modules(model, settings) for m in layer.modules()]
    hidden = set().union(*carved_out(model, settings).values())
    if hidden:
        kept = [m for m in kept if not any(id(c) in hidden for c in m.modules())]  # modules() includes m
    return kept


def prunable_layers(model: nn.Module, settings: Pruning) -> list[int]:
    """Indices into model.model of the layers whose channels the pruner may cut: they hold convolutions and neither
    are nor hold an ignored module."""
    ignored = {id(m) for m in ignored_modules(model, settings)}
    return [
        i
        for i, layer in enumerate(model.model)
        if any(p.dim() == 4 for p in layer.parameters()) and not any(id(m) in ignored for m in layer.modules())
    ]


def training_branches(model: nn.Module, example_inputs: torch.Tensor) -> list[tuple[nn.Module, nn.Module]]:
    """(sibling, branch) pairs: each branch a module that runs only in training (YOLO26-pose's keypoint sigmas,
    YOLO26-seg's semantic head), its sibling a module that runs in eval too and reads the same tensor. Torch-Pruning
    traces the eval graph, where a branch is absent; traced beside its sibling (trace_with), what feeds it shrinks
    only as the branch does. Found by one forward in each mode (BatchNorm statistics kept), on a copy, once per
    architecture (the pairs' module names are remembered: pruning changes channel counts, not modules)."""
    modules = dict(model.named_modules())
    key = tuple(modules)
    if key not in _BRANCHES:
        _BRANCHES[key] = _branch_names(model, example_inputs)
    return [(modules[a], modules[b]) for a, b in _BRANCHES[key]]


_BRANCHES: dict[tuple, list[tuple[str, str]]] = {}  # module names of a model -> its (sibling, branch) name pairs


def _branch_names(model: nn.Module, example_inputs: torch.Tensor) -> list[tuple[str, str]]:
    m = copy.deepcopy(model)
    names = {id(mod): n for n, mod in m.named_modules()}
    seen, inputs, alive = {}, {}, []  # alive: every tensor read stays, so no id is reused within a forward

    def record(mode):
        def hook(mod, args):
            seen.setdefault(mode, set()).add(id(mod))
            if args and isinstance(args[0], torch.Tensor):
                alive.append(args[0])
                inputs.setdefault(mode, {}).setdefault(id(args[0]), []).append(id(mod))

        return hook

    x = example_inputs.to(next(m.parameters()).device)
    for mode in (False, True):
        hooks = [mod.register_forward_pre_hook(record(mode)) for mod in m.modules()]
        m.train(mode)
        for bn in m.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                bn.eval()
        with torch.no_grad():
            m(x)
        for h in hooks:
            h.remove()
    only = seen[True] - seen[False]
    outer = {i for i in only if not any(names[i].startswith(names[j] + ".") for j in only if j != i)}
    pairs = []
    for readers in inputs[True].values():  # in call order: an outer module before what it holds
        for branch in (i for i in readers if i in outer):
            sibling = next((i for i in readers if i in seen[False]), None)
            if sibling is not None:
                pairs.append((names[sibling], names[branch]))
    return pairs


def trace_with(branches: list[tuple[nn.Module, nn.Module]]):
    """Torch-Pruning's forward_fn: the model's eval forward, whose raw outputs come with each training-only branch's
    output, computed on the input its sibling receives (see training_branches)."""

    def forward(model, example_inputs):
        extra = []
        hooks = [
            sibling.register_forward_pre_hook(lambda _m, args, b=branch: extra.append(b(args[0])))
            for sibling, branch in branches
        ]
        try:
            out = model(example_inputs)
        finally:
            for h in hooks:
                h.remove()
        return [raw_outputs(out), extra]

    return forward


def raw_outputs(out):
    """What Torch-Pruning traces the graph back from: the head's raw outputs (a model in eval mode returns (decoded,
    raw)). The box decoding after them holds no channels to prune, and its concatenations can break Torch-Pruning's
    channel inference (YOLO26 with 8 classes: TypeError in its concat index mapping)."""
    return out[-1] if isinstance(out, tuple) else out


def build_pruner(
    model: nn.Module,
    settings: Pruning,
    ratio: float,
    example_inputs: torch.Tensor,
    reg: float = 0.0,
    layer_ratios: dict[int, float] | None = None,
    times: dict[str, float] | None = None,
):
    """A Torch-Pruning GroupNormPruner (the reference's) for one step removing ``ratio`` of current channels (or
    layer_ratios[i] of layer i's, through Torch-Pruning's pruning_ratio_dict); with reg > 0 its ``regularize(model)``
    pushes the weights of the least important groups towards zero (sparsity training). With times (node ms by module
    path), channels are ranked across all groups by importance per ms their group saves (TimeGuided).

    The dependency graph is traced in eval mode (no BatchNorm statistics move); the model is returned to train mode
    with gradients enabled, as Ultralytics' trainer expects.
    """
    ignored = kept_whole(model, settings)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    importance = IMPORTANCES[settings.importance]()
    if times is not None:
        importance = TimeGuided(
            importance,
            conv_times(model, times),
            most=min(settings.max_pruning_ratio, ratio + (1 - ratio) * MOST_BEYOND),
        )
    pruner = tp.pruner.GroupNormPruner(
        model,
        example_inputs.to(next(model.parameters()).device),
        importance=importance,
        # basic
        pruning_ratio=ratio,  # share of the current channels this step removes
        pruning_ratio_dict={model.model[i]: r for i, r in (layer_ratios or {}).items()} or None,  # per layer
        forward_fn=trace_with(training_branches(model, example_inputs)),  # raw outputs, training-only branches
        iterative_steps=1,  # one step per pruner: the graph is rebuilt after every fine-tuning
        ignored_layers=ignored,  # Detect, C2PSA, PSABlock by default (but Proto's and the head's hidden layers when
        # prune_proto, prune_head): kept
        global_pruning=settings.global_pruning or times is not None,  # rank channels across layers
        max_pruning_ratio=settings.max_pruning_ratio,  # most any one layer may lose
        round_to=settings.channel_multiple or None,  # channel alignment
        isomorphic=settings.isomorphic,  # with global_pruning: rank only within groups of the same structure
        # advanced
        reg=reg,  # sparsity regularisation strength; 0 when the pruner only removes channels
    )
    model.train()
    return pruner


MOST_BEYOND = 0.5  # a time-guided cut takes at most this share of what a uniform cut of the step would leave a group


def conv_times(model: nn.Module, times: dict[str, float]) -> dict[nn.Module, tuple[float, float]]:
    """{Conv2d: (ms a whole group saves per run for its output channels, for its input channels)} from node times by
    module path (export.node_times): an output channel takes its share of the conv's Ultralytics block (the conv and
    its activation: both shrink with the outputs), an input channel its share of the conv alone (its activation does
    not shrink). A plain Conv2d's node time serves both."""

    def under(prefix: str) -> float:
        return sum(ms for path, ms in times.items() if path == prefix or path.startswith(prefix + "."))

    out = {}
    blocks = {id(b.conv): name for name, b in model.named_modules() if isinstance(b, Conv)}
    for name, conv in model.named_modules():
        if isinstance(conv, nn.Conv2d):
            block = blocks.get(id(conv))
            out[conv] = (under(block), times.get(name, 0.0)) if block else (times.get(name, 0.0),) * 2
    return out


class TimeGuided(tp.importance.Importance):
    """Torch-Pruning importance that ranks channels by what they carry per unit of time their removal saves: the
    base importance of a channel over its group's mean, divided by the ms the group's layers spend (conv_times: the
    outputs' blocks and the inputs' convs). Under global ranking, a step then removes the channels that cost the least
    importance for the time they save: a greedy knapsack over groups, under the step's channel count (which a latency
    goal sizes by timing). Removing a share of a group costs about that share of what it carries (as a uniform cut
    assumes); no group loses more than ``most`` of its channels in one step (its strongest are kept)."""

    FLOOR = 1e-6  # ms: a group whose layers took no measurable time is kept (it would save none)

    def __init__(self, base, times: dict[nn.Module, tuple[float, float]], most: float):
        self.base, self.times, self.most = base, times, most

    def group_ms(self, group) -> float:
        ms = 0.0
        for dep, _ in group:
            layer, fn = dep.layer, dep.pruning_fn
            if layer in self.times and fn == tp.pruner.function.prune_conv_out_channels:
                ms += self.times[layer][0]
            elif layer in self.times and fn == tp.pruner.function.prune_conv_in_channels and layer.groups == 1:
                ms += self.times[layer][1]
        return ms

    @torch.no_grad()
    def __call__(self, group):
        imp = self.base(group)
        if imp is None:
            return None
        score = imp / imp.mean().clamp_min(1e-12) / max(self.group_ms(group), self.FLOOR)
        keep = len(imp) - int(len(imp) * self.most)
        score[imp.topk(keep).indices] = float("inf")
        return score


def prunable_channels(model: nn.Module, settings: Pruning, example_inputs: torch.Tensor) -> int:
    """Channels the pruner can remove: the sum over its dependency groups of each group's channel count.

    The pruning ratio of a run is measured on this count, so channels that can never be pruned (ignored layers and
    what they pin) do not dilute it. Traced in eval mode; the model's mode is restored.
    """
    ignored = kept_whole(model, settings)
    was_training = model.training
    model.eval()
    graph = tp.DependencyGraph().build_dependency(
        model, example_inputs=example_inputs, forward_fn=trace_with(training_branches(model, example_inputs))
    )
    model.train(was_training)
    groups = graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear])
    return sum(len(group[0].idxs) for group in groups)


def prunable_groups(model: nn.Module, settings: Pruning, example_inputs: torch.Tensor) -> int:
    """Number of dependency groups the pruner would prune (for inspection)."""
    pruner = build_pruner(model, settings, 0.5, example_inputs)
    return sum(
        1
        for _ in pruner.DG.get_all_groups(
            ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types
        )
    )


def weak_channel_share(model: nn.Module, settings: Pruning, ratio: float, example_inputs: torch.Tensor) -> float:
    """How much of a group's importance its weakest channels hold: over the pruner's groups, the mean importance of
    the ``ratio`` least important channels divided by that of the others, averaged. Sparsity training should lower
    it (what the next step removes carries less); 1.0 means pruning has nothing to prefer."""
    p = build_pruner(model, settings, ratio, example_inputs)
    shares = []
    for group in p.DG.get_all_groups(ignored_layers=p.ignored_layers, root_module_types=p.root_module_types):
        imp = p.estimate_importance(group)
        k = int(len(imp) * ratio) if imp is not None else 0
        if 0 < k < len(imp):
            ranked = imp.sort().values
            shares.append(float(ranked[:k].mean() / ranked[k:].mean().clamp_min(1e-12)))
    return sum(shares) / len(shares) if shares else 1.0
