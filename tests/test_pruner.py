"""The pruner built from parameters and the loop's policy: schedule, exact channel ratio, speed-up mode, budget,
ignored layers, importances."""

import copy
import math

import pytest
import torch
from ultralytics.nn.modules import C2PSA, Detect
from ultralytics.nn.tasks import DetectionModel

from prunelib.core import parameters
from prunelib.core.settings import Goal, Pruning, Timing, Training
from prunelib.errors import UserError
from prunelib.deployment import export
from prunelib.runs import policy
from prunelib.surgery import inspection, measuring, pruner
from prunelib.surgery.replacement import replace_c3k2
from prunelib.training import gradients

from conftest import MECHANICS, conv_channels

IMGSZ = 64


@pytest.fixture(scope="module")
def replaced():
    torch.manual_seed(0)
    m = DetectionModel("yolo11n.yaml", nc=8, verbose=False)
    replace_c3k2(m)
    return m


def params(**kw):
    """The cut these tests were written against (the head whole, any channel count) unless a test names its own."""
    return parameters.load(overrides={"imgsz": IMGSZ, **MECHANICS, **kw})


def step_ratio(target: float, steps: int) -> float:
    """The share of the current channels each of steps exact steps removes to remove target in all."""
    return 1.0 - (1.0 - target) ** (1.0 / steps)


def test_step_ratio_compounds_to_the_target():
    for target, n in ((0.5, 10), (0.3, 3), (0.75, 1)):
        now = 1000.0
        for step in range(1, n + 1):  # exact steps: each removes its share of what is left
            now *= 1 - policy.corrected_step_ratio(target, n, step, 1000, now)
        assert now == pytest.approx(1000 * (1 - target))
        assert policy.corrected_step_ratio(target, n, 1, 1000, 1000) == pytest.approx(step_ratio(target, n))
    # an earlier step that removed too little is caught up by the next one
    assert policy.corrected_step_ratio(0.5, 2, 2, 1000, 800) == pytest.approx(1 - 500 / 800)


@pytest.mark.parametrize("target,steps,fixed", [(2.0, 3, 0.0), (2.0, 3, 0.2), (2.0, 3, 0.4), (3.0, 2, 0.0),
                                                (3.0, 2, 0.2), (1.5, 1, 0.0), (1.5, 1, 0.3)])  # fmt: skip
@pytest.mark.parametrize("with_trial", [False, True])
def test_speedup_goal_reaches_its_target_in_its_steps_whatever_does_not_shrink(target, steps, fixed, with_trial):
    # a model whose MACs are fixed + rest * kept^2 (channels rounded down, as Torch-Pruning does), pruned as the loop
    # does: until reached. Without a trial the fixed part is learnt from the first step, so one step more when
    # steps == 1; with a trial (a pruned copy measured first, as the loop does) every step lands on its share
    goal, channels0, macs0 = policy.SpeedupGoal(target, steps, 3 * steps), 1000, 1e9
    unpruned = current = {"channels": channels0, "macs": macs0}

    def measure(channels):
        return {"channels": channels, "macs": macs0 * (fixed + (1 - fixed) * (channels / channels0) ** 2)}

    for step in range(1, goal.most_steps + 1):
        trial = (lambda r, c=current["channels"]: measure(int(c * (1 - r)))) if with_trial else None
        current = measure(int(current["channels"] * (1 - goal.ratio(step, unpruned, current, trial))))
        if step == 1 and with_trial:  # an equal factor of the MACs per step, from the first step on
            assert macs0 / current["macs"] == pytest.approx(target ** (1 / steps), rel=0.01)
        if policy.stop_reason(goal, step, True, macs0 / current["macs"]):
            break
    assert step <= (steps if fixed == 0 or steps > 1 or with_trial else 2)
    assert target * policy.REACHED <= macs0 / current["macs"] < target * 1.02


def test_goal_and_budget_decide_when_to_stop():
    rate = policy.goal(Goal.of(params(target_prune_rate=0.5, iterative_steps=3)))
    unpruned = {"channels": 1000, "macs": 1e9}
    assert rate.most_steps == 3 and rate.ratio(1, unpruned, unpruned) == pytest.approx(step_ratio(0.5, 3))
    assert [policy.stop_reason(rate, s, True, 9.0) for s in (1, 2, 3)] == [None, None, "done"]
    speed = policy.goal(Goal.of(params(target_speedup=2.0, iterative_steps=2)))
    assert speed.most_steps == 6 and speed.ratio(1, unpruned, unpruned) == pytest.approx(1 - 2 ** (-1 / 4))
    assert policy.stop_reason(speed, 1, True, 1.9) is None and policy.stop_reason(speed, 2, True, 2.0) == "target_reached"
    assert policy.stop_reason(speed, 6, True, 1.5) == "done" and policy.stop_reason(speed, 1, False, 3.0) == "map_drop"
    budget = policy.budget(Goal.of(params(max_map_drop=0.1, max_map_drop_rel=0.1)))
    assert budget.within(0.5, 0.45) and not budget.within(0.5, 0.44) and not budget.within(0.9, 0.8)


@pytest.mark.parametrize("target,steps", [(0.5, 3), (0.3, 2)])
def test_channel_ratio_reaches_the_target(replaced, target, steps):
    model, p = copy.deepcopy(replaced), params(target_prune_rate=target, iterative_steps=steps)
    x = measuring.example_inputs(IMGSZ)
    base = pruner.prunable_channels(model, Pruning.of(p), x)
    for step in range(1, steps + 1):
        now = pruner.prunable_channels(model, Pruning.of(p), x)
        pruner.build_pruner(model, Pruning.of(p), policy.corrected_step_ratio(target, steps, step, base, now), x).step()
    reached = 1 - pruner.prunable_channels(model, Pruning.of(p), x) / base
    assert reached == pytest.approx(target, abs=0.02)
    model.eval()
    model(x)  # still runs


def test_speedup_mode_reaches_the_macs_goal_in_its_planned_steps(replaced):
    """The MACs goal's sizing (SpeedupGoal.ratio, with a trial copy per estimate as the loop gives it) lands 2x fewer
    MACs after exactly the 2 planned steps, counted by Torch-Pruning's own counter."""
    import torch_pruning as tp

    model, p = copy.deepcopy(replaced), params(target_speedup=2.0, iterative_steps=2)
    x, settings, goal = measuring.example_inputs(IMGSZ), Pruning.of(p), policy.goal(Goal.of(p))

    def size(m):
        return {"macs": measuring.macs_params(m, IMGSZ)[0], "channels": pruner.prunable_channels(m, settings, x)}

    def trial(ratio):
        m = copy.deepcopy(model)
        pruner.build_pruner(m, settings, ratio, x).step()
        return size(m)

    unpruned = size(model)
    for step in (1, 2):
        pruner.build_pruner(model, settings, goal.ratio(step, unpruned, size(model), trial), x).step()
    before, after = (tp.utils.count_ops_and_params(m.eval(), x)[0] for m in (copy.deepcopy(replaced), model))
    assert before / after == pytest.approx(2.0, rel=0.02)
    assert measuring.macs_params(model, IMGSZ)[0] == after  # the kit's count is Torch-Pruning's


def test_ignored_layers_keep_their_output_channels_and_model_is_trainable(replaced):
    model, p = copy.deepcopy(replaced), params(ignore_layers=["Detect", "C2PSA", "PSABlock", 0])
    x = measuring.example_inputs(IMGSZ)
    kept = {n: m.out_channels for n, m in model.named_modules()
            if isinstance(m, torch.nn.Conv2d) and (n.startswith("model.23") or n.startswith("model.10")
                                                  or n.startswith("model.0."))}  # fmt: skip
    before = conv_channels(model)
    pr = pruner.build_pruner(model, Pruning.of(p), 0.5, x)
    assert model.training and all(q.requires_grad for q in model.parameters())
    pr.step()
    after = conv_channels(model)
    assert {n: after[n] for n in kept} == kept
    assert sum(after.values()) < sum(before.values())
    assert isinstance(model.model[23], Detect) and isinstance(model.model[10], C2PSA)


@pytest.mark.parametrize("name", parameters.IMPORTANCES)
def test_every_importance_prunes(replaced, name, smoke_start, smoke_params):
    model = copy.deepcopy(replaced)
    p = {**params(importance=name), "batch": 4}
    x = measuring.example_inputs(IMGSZ)
    before = pruner.prunable_channels(model, Pruning.of(p), x)
    pruner.prune(model, Pruning.of(p), 0.25, x, gradients.for_pruning(Training.of(p), smoke_start["data"]))
    assert pruner.prunable_channels(model, Pruning.of(p), x) < before
    assert "args" not in vars(model) and getattr(model, "criterion", None) is None  # gradients leave nothing behind


def test_importances_rank_channels_differently(replaced, smoke_start):
    """The same cut (the same channel counts, layer by layer) keeps other channels under each importance: which
    filters of the first conv survive, as the sums of their weights, differ between every pair (lamp ranks by l2
    within a layer, as l2 does, so its kept set may equal l2's: it is compared with the others)."""
    kept, counts = {}, {}
    x = measuring.example_inputs(IMGSZ)
    for name in parameters.IMPORTANCES:
        torch.manual_seed(0)  # random's ranking, the same every run
        model = copy.deepcopy(replaced)
        p = {**params(importance=name), "batch": 4}
        grads = gradients.for_pruning(Training.of(p), smoke_start["data"])
        pruner.prune(model, Pruning.of(p), 0.25, x, grads)
        counts[name] = conv_channels(model)
        w = model.model[0].conv.weight.detach()
        kept[name] = tuple(sorted(round(float(v), 4) for v in w.flatten(1).abs().sum(1)))
    assert all(c == counts["l2"] for c in counts.values())  # uniform per-layer ratios: the same widths
    pairs = [(a, b) for i, a in enumerate(kept) for b in list(kept)[i + 1:] if {a, b} != {"l2", "lamp"}]
    assert [(a, b) for a, b in pairs if kept[a] == kept[b]] == []


def test_unknown_layer_index():
    m = DetectionModel("yolo11n.yaml", nc=8, verbose=False)
    with pytest.raises(UserError, match="layer index 99 is out of range; this model has layers 0-23"):
        pruner.ignored_modules(m, Pruning.of(parameters.load(overrides={"ignore_layers": [99]})))


def test_layer_weights_share_the_cut_by_robustness():
    scan = {"0 Conv": {0.25: 0.55, 0.5: 0.10}, "7 Conv": {0.5: 0.60}, "8 C3k2Prunable": {0.5: 0.65}}
    w = policy.layer_weights(scan, unpruned_map=0.60)
    # robustness averaged over the scanned ratios, each capped at 1: (11/12 + 1/6) / 2 = 13/24, 1, 1 -> mean 61/72
    assert w == pytest.approx({0: (13 / 24) / (61 / 72), 7: 1 / (61 / 72), 8: 1 / (61 / 72)}, rel=1e-9)
    assert sum(w.values()) / len(w) == pytest.approx(1.0)
    assert policy.layer_ratios(w, 0.5, most=0.55) == pytest.approx({0: 0.5 * w[0], 7: 0.55, 8: 0.55})
    assert policy.layer_ratios(None, 0.5) is None
    assert policy.layer_weights({"3 Conv": {0.5: 0.0}}, 0.6) == {3: 1.0}  # nothing robust: uniform


def test_gain_weights_share_the_cut_by_time_saved_per_mac():
    # gains: 2/100, 1/100, 0 (slower after the cut), none (lost no MACs) -> mean 1/100 over three layers
    w = policy.gain_weights({0: 2.0, 1: 1.0, 2: -0.5, 3: 1.0}, {0: 100, 1: 100, 2: 100, 3: 0})
    assert w == pytest.approx({0: 2.0, 1: 1.0, 2: 1 / policy.MOST_WEIGHT})  # still cut, least
    capped = policy.gain_weights({0: 20.0, **dict.fromkeys(range(1, 10), 1.0)}, dict.fromkeys(range(10), 1))
    assert capped[0] == policy.MOST_WEIGHT and capped[1] == pytest.approx(10 / 29)  # mean 2.9: 20 / 2.9 > 3
    assert policy.gain_weights({0: 0.0}, {0: 5}) == {0: 1.0}  # nothing measured: uniform


def test_layer_ratios_cut_each_layer_by_its_own_share(replaced):
    model, p = copy.deepcopy(replaced), params()
    x = measuring.example_inputs(IMGSZ)
    before = conv_channels(model)
    pruner.prune(model, Pruning.of(p), 0.5, x, layer_ratios={1: 0.0, 3: 0.25})
    after = conv_channels(model)
    assert after["model.1.conv"] == before["model.1.conv"]  # its share is nothing
    assert after["model.3.conv"] == before["model.3.conv"] - before["model.3.conv"] // 4
    assert after["model.5.conv"] == before["model.5.conv"] // 2  # no share of its own: the step's ratio


def test_latency_is_timed_in_blocks_each_after_an_untimed_run():
    calls = []
    fns = {name: (lambda x, name=name: calls.append(name)) for name in ("a", "b")}
    med = measuring.compare_latency(fns, None, runs=25, warmup=2)
    assert set(med) == {"a", "b"} and all(v >= 0 for v in med.values())
    blocks = -(-25 // measuring.BLOCK)  # 3 blocks of at most BLOCK timed runs, each after one untimed run
    assert calls.count("a") == calls.count("b") == 2 + 25 + blocks
    timed = calls[4:]  # after the warm-up: a's block, then b's, in turn
    assert timed[: measuring.BLOCK + 1] == ["a"] * (measuring.BLOCK + 1) and timed[measuring.BLOCK + 1] == "b"


def test_a_latency_goal_sizes_its_cut_from_what_it_timed():
    """LatencyGoal: time falls as MACs ** 0.5 on this scripted machine; the trials refit the exponent and land in the
    band between the goal and LANDING_BAND above it, so that the copy reaches it; reached only on a figure its blocks
    confirm."""
    unpruned = {"channels": 1000, "macs": 1e9}
    tried = []

    def trial(ratio):  # MACs = 0.2 fixed + 0.8 * kept^2; latency speed-up = MACs speed-up ** 0.5
        kept = 1 - ratio
        macs = 1e9 * (0.2 + 0.8 * kept**2)
        tried.append(ratio)
        return {"channels": 1000 * kept, "macs": macs, "latency_speedup": (1e9 / macs) ** 0.5}

    goal = policy.LatencyGoal(1.5, 1, 3)
    landing = goal.landing(1, unpruned, unpruned, trial)
    landed = trial(landing.ratio)["latency_speedup"]
    assert 1 < len(tried) - 1 <= goal.LANDING_TRIALS and landing.trials == len(tried) - 1
    assert 1.5 <= landed <= 1.5 * (1 + policy.LANDING_BAND) and landing.where == policy.IN_BAND
    assert landing.speedup == pytest.approx(landed)
    assert landing.note(1.5).startswith(f"{landed:.2f}x in the band 1.50-1.58x (")
    assert goal.reached({"speedup": landed, "low": landed})
    assert goal.reached({"speedup": 1.5, "low": 1.47}) and not goal.reached({"speedup": 1.5, "low": 1.3})
    assert not goal.reached({"speedup": 1.4, "low": 1.4})
    assert policy.latency_exponent([]) == policy.PRIOR_EXPONENT
    assert policy.latency_exponent([(4.0, 2.0)]) == pytest.approx(0.5)


UNCUT = {"channels": 1000, "macs": 1e9}


def _stairs(steps: list[tuple[float, float]]):
    """A scripted machine whose cuts come in whole channel blocks: (ratio from which a cut applies, its speed-up); a
    blend of two cuts runs between their speed-ups, as the share of layers cut at the higher ratio grows."""
    tried = []

    def level(ratio):
        return max((x for r, x in steps if ratio >= r), default=1.0)

    def trial(ratio, blend=None):
        x = level(ratio) * (level(blend.high) / level(ratio)) ** blend.share if blend else level(ratio)
        tried.append((ratio, x))
        kept = 1 - ratio
        return {"channels": 1000 * kept, "macs": 1e9 / x**1.6, "latency_speedup": x}

    return trial, tried


def test_the_goal_step_brackets_the_band_and_lands_in_it_where_a_cut_lies_there():
    # the prior's first estimate overshoots to 2.6x; a cut at 2.05x lies between ratios 0.40 and 0.45
    trial, tried = _stairs([(0.2, 1.5), (0.3, 1.8), (0.35, 1.95), (0.40, 2.05), (0.45, 2.3), (0.5, 2.6)])
    landing = policy.LatencyGoal(2.0, 1, 3).landing(1, UNCUT, UNCUT, trial)
    assert landing.where == policy.IN_BAND and landing.speedup == 2.05 and 0.40 <= landing.ratio < 0.45
    assert len(tried) <= policy.LatencyGoal.LANDING_TRIALS


def test_where_whole_blocks_leave_no_cut_in_the_band_the_nearest_above_is_taken_and_said():
    trial, tried = _stairs([(0.2, 1.5), (0.35, 1.9), (0.42, 2.3), (0.6, 3.0)])  # nothing in 2.00-2.10x
    landing = policy.LatencyGoal(2.0, 1, 3).landing(1, UNCUT, UNCUT, trial)
    assert landing.where == policy.ABOVE and landing.speedup == 2.3 and 0.42 <= landing.ratio < 0.6
    assert (landing.below, landing.above) == (1.9, 2.3)
    assert landing.note(2.0) == f"2.30x above the band 2.00-2.10x ({landing.trials} trials; nearest: 1.90x and 2.30x)"
    assert landing.trials == len(tried) <= policy.LatencyGoal.LANDING_TRIALS
    # the bracket closed (0.35 <= cut < 0.42 gives 1.9x, above it 2.3x) before every trial was spent, or spent them
    assert any(0.35 <= r < 0.42 for r, _ in tried) and any(0.42 <= r < 0.6 for r, _ in tried)



def test_a_bracket_with_one_side_steps_out_of_it_instead_of_trying_a_ratio_again():
    goal = policy.LatencyGoal(2.0, 1, 3)
    over = goal._next([(0.5, 2.6)], 2.05, estimate=0.5)  # the estimate repeats the one trial, over the band
    short = goal._next([(0.2, 1.5)], 2.05, estimate=0.2)
    assert 0.3 < over < 0.5 and 0.2 < short < 0.5
    assert goal._next([(0.30, 1.9), (0.302, 2.3)], 2.05, estimate=0.31) is None  # no cut between the two sides


def test_where_no_uniform_cut_lies_in_the_band_a_blend_of_the_two_nearest_lands_there():
    trial, tried = _stairs([(0.2, 1.5), (0.35, 1.9), (0.42, 2.3), (0.6, 3.0)])
    landing = policy.LatencyGoal(2.0, 1, 3).landing(1, UNCUT, UNCUT, trial, blends=True)
    assert landing.where == policy.IN_BAND and 2.0 <= landing.speedup <= 2.1 and landing.blend
    assert 0.35 <= landing.ratio < 0.42 and 0.42 <= landing.blend.high < 0.6 and 0 < landing.blend.share < 1
    assert landing.trials == len(tried) <= policy.LatencyGoal.LANDING_TRIALS + policy.LatencyGoal.BLEND_TRIALS
    assert "of the layers, deepest first, cut at" in landing.note(2.0)
    layers = policy.blend_ratios([2, 4, 6, 8], 0.3, policy.Blend(0.5, 0.5))
    assert layers == {8: 0.5, 6: 0.5, 4: 0.3, 2: 0.3}  # the deepest half at the higher ratio


def test_a_later_step_a_hair_short_of_the_goal_blends_from_where_it_stands():
    # step 1 was timed at 1.97x; the smallest further uniform cut runs at 2.32x: no trial is short of the band, but
    # the model as it stands is (ratio 0), so blends between it and that cut land in the band
    trial, tried = _stairs([(0.0, 1.97), (0.05, 2.32)])
    current = {"channels": 600, "macs": 4e8, "latency_speedup": 1.97}
    landing = policy.LatencyGoal(2.0, 1, 3).landing(2, UNCUT, current, trial, blends=True)
    assert landing.where == policy.IN_BAND and 0 <= landing.ratio < 0.05 <= landing.blend.high
    assert 2.0 <= landing.speedup <= 2.1 and (landing.below, landing.above) == (1.97, 2.32)
    assert all(r > 0 for r, _ in tried)  # the model as it stands is known, not timed again


def test_a_step_before_the_goals_aims_at_its_share_and_says_nothing():
    trial, _ = _stairs([(0.1, 1.2), (0.2, 1.42), (0.3, 1.8)])
    landing = policy.LatencyGoal(2.0, 2, 4).landing(1, UNCUT, UNCUT, trial)
    assert landing.where is None and landing.note(2.0) is None and landing.trials <= policy.LatencyGoal.TRIALS


def test_a_time_guided_cut_takes_most_where_time_goes(replaced):
    """TimeGuided: with layer 2's blocks given most of the time, a step ranked by importance per ms cuts layer 2
    deeper than a uniform cut of the same channel ratio, spares the layers that take no time, removes as many
    channels in all, and leaves every group at least what MOST_BEYOND allows."""
    x = measuring.example_inputs(IMGSZ)
    def ms(name):  # layer 2's convs take most of the time; layer 7 and the convs reading its output none
        return 5.0 if name.startswith("model.2.") else 0.0 if name.startswith(("model.7.", "model.8.cv0",
                                                                                  "model.8.cv1")) else 0.01
    times = {name: ms(name) for name, m in replaced.named_modules() if isinstance(m, torch.nn.Conv2d)}
    settings = Pruning.of(params())
    before = conv_channels(replaced)
    cuts = {}
    count = {}
    for label, t in (("uniform", None), ("time", times)):
        m = copy.deepcopy(replaced)
        pruner.prune(m, settings, 0.3, x, times=t)
        cuts[label], count[label] = conv_channels(m), pruner.prunable_channels(m, settings, x)
        assert m.eval()(x)[0].shape == replaced.eval()(x)[0].shape
    kept = {k: {n: c[n] / before[n] for n in ("model.2.cv1.conv", "model.7.conv")} for k, c in cuts.items()}
    assert kept["time"]["model.2.cv1.conv"] < kept["uniform"]["model.2.cv1.conv"] - 0.1
    assert kept["time"]["model.7.conv"] == 1.0 and kept["uniform"]["model.7.conv"] < 0.8  # saves no time: kept
    most = 0.3 + 0.7 * pruner.MOST_BEYOND
    assert all(cuts["time"][n] >= int(before[n] * (1 - most)) for n in before)
    assert abs(count["time"] - count["uniform"]) <= 0.02 * pruner.prunable_channels(replaced, settings, x)


def test_conv_times_charge_outputs_with_their_block_and_inputs_with_the_conv(replaced):
    times = {"model.0.conv": 2.0, "model.0.act": 1.0, "model.23.cv2.0.2": 0.5}
    ct = pruner.conv_times(replaced, times)
    assert ct[replaced.model[0].conv] == (3.0, 2.0)  # out: conv and activation; in: the conv alone
    assert ct[replaced.model[-1].cv2[0][2]] == (0.5, 0.5)  # a plain Conv2d: its own node
    assert ct[replaced.model[1].conv] == (0.0, 0.0)


@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolo26n.yaml"])
def test_prune_attention_cuts_the_feed_forward_and_keeps_the_heads(cfg):
    from ultralytics.nn.modules.block import PSABlock

    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=8, verbose=False)
    replace_c3k2(model)
    x = measuring.example_inputs(IMGSZ)
    shape = model.eval()(x)[0].shape  # the decoded predictions (both families return them first in eval)
    blocks = [b for b in model.modules() if isinstance(b, PSABlock)]
    before = [(b.ffn[0].conv.out_channels, b.ffn[-1].conv.out_channels, b.attn.qkv.conv.out_channels) for b in blocks]
    settings = Pruning.of(params(prune_attention=True))
    said = [r["ignored because of"] for r in inspection.ignored(model, settings) if "PSABlock" in r["ignored because of"]]
    assert said and all("prune_attention" in s for s in said)  # inspect names what is cut inside a kept layer
    pruner.prune(model, settings, 0.5, x)
    after = [(b.ffn[0].conv.out_channels, b.ffn[-1].conv.out_channels, b.attn.qkv.conv.out_channels) for b in blocks]
    assert blocks and all(a[0] < b[0] and a[1:] == b[1:] for a, b in zip(after, before)), (before, after)
    assert model.eval()(x)[0].shape == shape


def test_a_goal_steers_by_the_copies_it_measured():
    """A cut whose MACs do not follow the goal's model of the network (time-guided ranking): from the second copy on,
    the line through the nearest copies lands it; the ratio returned is always one that was measured."""
    unpruned = {"channels": 1000, "macs": 1e9}
    tried = []

    def trial(ratio):  # MACs fall linearly with the ratio: the quadratic model first falls short, then overshoots
        tried.append(ratio)
        return {"channels": 1000 * (1 - ratio), "macs": 1e9 * (1 - 1.5 * ratio)}

    ratio = policy.SpeedupGoal(2.0, 1, 1).ratio(1, unpruned, unpruned, trial)
    assert len(tried) <= 3 and ratio in tried and abs(trial(ratio)["macs"] / 5e8 - 1) <= 1 - policy.REACHED
    assert policy.secant([(0.2, 0.9), (0.6, 1.2)]) == pytest.approx(0.2 + 0.4 * -math.log(0.9) / math.log(1.2 / 0.9))
    assert policy.secant([(0.2, 0.9), (0.3, 0.95)]) == pytest.approx(0.2 + 0.1 * -math.log(0.9) / math.log(0.95 / 0.9))
    assert policy.secant([(0.1, 0.5), (0.2, 0.9), (0.6, 1.2)]) == policy.secant([(0.2, 0.9), (0.6, 1.2)])  # nearest
    assert policy.secant([(0.2, 0.9)]) is None


def test_node_times_name_the_modules_that_ran(smoke_start, smoke_params):
    """The exported model's profile, node by node, maps onto the model's own modules: every path but 'other' is one
    of them, and the convolution blocks the time-guided cut charges hold most of the time."""
    from prunelib.runs import layer_time
    from prunelib.surgery import checkpoints

    model = checkpoints.load_model(smoke_start["model"])
    replace_c3k2(model)
    times = layer_time.node_times(model, smoke_params["imgsz"], Timing.of(smoke_params))
    names = {n for n, _ in model.named_modules()}
    # a path is a module, or one's shared activation ('.act': Ultralytics' Conv blocks share one SiLU object) or repeated
    # call ('model.9.m_1': SPPF's pool, run thrice)
    assert times and all(path in names or path.rsplit(".", 1)[0] in names for path in times if path != "other")
    charged = sum(out for out, _ in pruner.conv_times(model, times).values())
    assert 0.5 * sum(times.values()) < charged <= sum(times.values()) * 1.0001
    assert export.module_path("/model.23/cv3.2/cv3.2.0/cv3.2.0.0/conv/Conv") == "model.23.cv3.2.0.0.conv"
    assert export.module_path("/model.2/m.0/Add") == "model.2.m.0" and export.module_path("Concat_7") == "other"
    assert export.module_path("/model.0/act/Mul/QuickGeluFusion/") == "model.0.act"  # onnxruntime fused it


def test_round_to_keeps_every_cut_layer_a_multiple_with_the_head_pruned(replaced):
    """prune_head with round_to: every convolution the cut narrowed, the head's hidden ones among them, keeps a
    multiple of round_to channels (what onnxruntime's blocked kernels compute in whole blocks)."""
    model, p = copy.deepcopy(replaced), params(prune_head=True, round_to=16)
    before = conv_channels(model)
    pruner.prune(model, Pruning.of(p), 0.5, measuring.example_inputs(IMGSZ))
    after = conv_channels(model)
    cut = {n: c for n, c in after.items() if c != before[n]}
    assert any(n.startswith("model.23.") for n in cut) and len(cut) > 20
    assert all(c % 16 == 0 for c in cut.values()), {n: c for n, c in cut.items() if c % 16}


def test_a_layer_named_by_index_stays_whole_with_the_head_pruned(replaced):
    """ignore_layers by index keeps that layer whole, its hidden convolutions too, where prune_head carves the
    head's out of the layers named by class (before, naming the head's index still let its hidden layers go)."""
    model, head = copy.deepcopy(replaced), len(replaced.model) - 1
    settings = Pruning.of(params(prune_head=True, round_to=16, ignore_layers=["Detect", "C2PSA", head]))
    before = conv_channels(model)
    pruner.prune(model, settings, 0.5, measuring.example_inputs(IMGSZ))
    cut = {n for n, c in conv_channels(model).items() if c != before[n]}
    assert cut and not any(n.startswith(f"model.{head}.") for n in cut), sorted(cut)
    assert not any("prune_head" in row["ignored because of"] for row in inspection.ignored(replaced, settings))


@pytest.mark.parametrize("round_to", [0, 16])
def test_the_sensitivity_scan_cuts_the_scanned_layer_alone(replaced, round_to):
    """A scan's cut of one layer narrows that layer's convolutions only, even where the run prunes the head, the
    attention blocks and rounds to whole blocks (before, the head's hidden convolutions lost a block in every scan)."""
    from prunelib.runs.sensitivity import alone

    model = copy.deepcopy(replaced)
    settings = Pruning.of(params(prune_head=True, prune_attention=True, round_to=round_to))
    before = conv_channels(model)
    pruner.prune(model, alone(settings, len(model.model), 7), 0.25, measuring.example_inputs(IMGSZ))
    cut = {n for n, c in conv_channels(model).items() if c != before[n]}
    assert cut and all(n.startswith("model.7.") for n in cut), cut
