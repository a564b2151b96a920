"""The loop's policy, as small objects: a goal (how much each step prunes, how many steps at most, when it is
reached) and a budget (is a step's accuracy still acceptable). The loop measures; these decide.

Schedules are pure functions of the numbers the loop measured, so they are tested without a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prunelib.core import settings as settings_


def corrected_step_ratio(target: float, steps: int, step: int, base_channels: int, current_channels: int) -> float:
    """The share of the current channels that brings the total to its schedule after ``step`` of ``steps``.

    Equal to 1 - (1 - target)^(1/steps) when every earlier step removed exactly its share; otherwise it absorbs
    their rounding (Torch-Pruning keeps floor(channels * (1 - ratio)) per group), so the last step lands on the
    target.
    """
    keep = base_channels * (1.0 - target) ** (step / steps)
    return min(max(1.0 - keep / current_channels, 0.0), 0.99)


def measured_speedup_ratio(target_macs: float, unpruned_macs: float, macs: float, kept: float) -> float:
    """The share of the current prunable channels to remove so that MACs fall to target_macs.

    MACs = fixed + (unpruned - fixed) * kept^2: ignored layers (Detect, C2PSA) and the image's first conv do not
    shrink with the prunable channels. The fixed part is fitted from what was measured so far (none before the first
    step), so each step corrects the last one's estimate.
    """
    return min(max(1.0 - keep_for(target_macs, unpruned_macs, macs, kept) / kept, 0.0), 0.9)


def keep_for(target_macs: float, unpruned_macs: float, macs: float, kept: float) -> float:
    """The share of the unpruned prunable channels to keep for target_macs, the fixed part fitted from one measured
    (kept, macs) point (none when nothing was pruned yet). Where MACs fell faster than the channels squared (a cut
    ranked across layers by time takes from the costliest layers first), a power law through that point instead."""
    fixed = 0.0
    if kept < 1.0:
        fixed = unpruned_macs - (unpruned_macs - macs) / (1.0 - kept**2)
        if fixed < 0 and 0 < macs < unpruned_macs:
            exponent = math.log(unpruned_macs / macs) / math.log(1.0 / kept)
            return (unpruned_macs / max(target_macs, 1.0)) ** (-1.0 / exponent)
        fixed = min(max(fixed, 0.0), macs)
    return ((max(target_macs - fixed, 0.0)) / (unpruned_macs - fixed)) ** 0.5


REACHED = 0.995  # a speed-up goal within 0.5 % counts as reached: whole channels cannot land on it exactly


@dataclass(frozen=True)
class ChannelGoal:
    """Remove ``target`` of the prunable channels in exactly ``steps`` steps (the reference's schedule)."""

    target: float
    steps: int

    @property
    def most_steps(self) -> int:
        return self.steps

    def ratio(self, step: int, unpruned: dict, current: dict) -> float:
        return corrected_step_ratio(self.target, self.steps, step, unpruned["channels"], current["channels"])

    def reached(self, speedup: float) -> bool:
        return False  # the last step ends the run ('done'), whatever the MACs


@dataclass(frozen=True)
class SpeedupGoal:
    """Cut MACs by ``target`` in ``steps`` steps, each step taking an equal factor of what remains (from the MACs
    measured so far); stepping on until reached or ``most_steps``."""

    target: float
    steps: int
    most_steps: int

    TRIALS = 5  # most pruned copies measured per step (uneven per-layer or time-guided cuts may need more than one)

    def ratio(self, step: int, unpruned: dict, current: dict, trial=None) -> float:
        """unpruned, current: {'channels', 'macs'} of the unpruned model and of the model before this step.

        trial(ratio) -> {'channels', 'macs'}, when given, prunes a copy at the estimate and measures it; the part that
        does not shrink is then fitted from that measurement, so even the first step lands on its share; repeated
        (at most TRIALS copies) while a trial misses its MACs by more than 0.5 %, from the second on by the line
        through the nearest copies (secant). Returns the ratio of the copy nearest the step's MACs."""
        remaining = max(1, self.steps - step + 1)
        target_macs = current["macs"] * (unpruned["macs"] / self.target / current["macs"]) ** (1.0 / remaining)
        kept = current["channels"] / unpruned["channels"]
        ratio = measured_speedup_ratio(target_macs, unpruned["macs"], current["macs"], kept)
        if trial is None:
            return ratio
        tried = []  # (miss, ratio, MACs speed-up over the target's: > 1 cut too much)
        for _ in range(self.TRIALS):  # each trial refits from its own measurement
            if ratio <= 0:
                break
            t = trial(ratio)
            tried.append((abs(t["macs"] / target_macs - 1.0), ratio, target_macs / t["macs"]))
            if tried[-1][0] <= 1.0 - REACHED:
                break
            keep = keep_for(target_macs, unpruned["macs"], t["macs"], t["channels"] / unpruned["channels"])
            ratio = secant([(r, x) for _, r, x in tried]) or min(max(1.0 - keep / kept, 0.0), 0.9)
        return min(tried)[1] if tried else ratio

    def reached(self, speedup: float) -> bool:
        return speedup >= self.target * REACHED


def secant(tried: list[tuple[float, float]]) -> float | None:
    """The next ratio from the copies tried so far, (ratio, measured over wanted speed-up) pairs (> 1: cut too much):
    the line through the nearest copy on either side of the goal (or, until there are both, the two nearest ones), in
    log speed-up against the ratio, where it meets the goal; within [0, 0.9]. None before two distinct ratios."""
    short = [(r, x) for r, x in tried if x < 1.0]
    over = [(r, x) for r, x in tried if x > 1.0]
    if short and over:
        (r0, x0), (r1, x1) = max(short), min(over)
    else:
        near = sorted({r: x for r, x in tried}.items(), key=lambda p: abs(math.log(p[1])))[:2]
        if len(near) < 2:
            return None
        (r0, x0), (r1, x1) = near
    if x1 == x0 or (short and over and r1 <= r0):  # flat, or not monotonic within the noise: halfway
        return min(max((r0 + r1) / 2, 0.0), 0.9)
    return min(max(r0 + (r1 - r0) * -math.log(x0) / (math.log(x1) - math.log(x0)), 0.0), 0.9)


PRIOR_EXPONENT = 0.6  # before anything is timed: latency speed-up = MACs speed-up ** this (2x MACs -> 1.5x time)
LATENCY_TOLERANCE = 0.02  # a timed trial within 2 % of an earlier step's latency share is cut at
LANDING_BAND = 0.05  # the step that reaches the goal lands between it and this much above it (speed beyond the
# goal is accuracy thrown away), aiming at the middle of the band


def latency_exponent(points: list[tuple[float, float]]) -> float:
    """How time followed MACs in the models timed so far: the least-squares exponent of latency speed-up = MACs
    speed-up ** e over (MACs speed-up, latency speed-up) points, in log space through (1, 1); PRIOR_EXPONENT without a
    usable point; within [0.2, 1.5] (one noisy point must not send the next cut astray)."""
    pts = [(math.log(m), math.log(max(t, 1e-6))) for m, t in points if m > 1.01]
    if not pts:
        return PRIOR_EXPONENT
    return min(max(sum(a * b for a, b in pts) / sum(a * a for a, _ in pts), 0.2), 1.5)


IN_BAND, ABOVE, SHORT = "in the band", "above the band", "short of the goal"  # where a goal step's cut landed


@dataclass(frozen=True)
class Blend:
    """A cut between two uniform ones, where whole channel blocks make the uniform cut jump over the band (every
    layer of one width crosses a block at the same ratio): a ``share`` of the prunable layers, the deepest first, cut
    at ``high``; the rest at the step's ratio."""

    high: float
    share: float


def blend_ratios(layers: list[int], low: float, blend: Blend) -> dict[int, float]:
    """{layer index: ratio} of a blended cut: the deepest round(share x layers) layers at blend.high, the rest at
    low. Deepest first: the neck and head have the widest layers (a block is a small share of them) and the early
    backbone is the most fragile (bench/results/fragility.md)."""
    order = sorted(layers, reverse=True)
    k = round(blend.share * len(order))
    return {i: blend.high if n < k else low for n, i in enumerate(order)}


@dataclass(frozen=True)
class Landing:
    """Where a latency goal's step cuts: the ratio, and for the step that reaches the goal where its trial landed
    against the band (IN_BAND; ABOVE when no cut lies in the band, as whole channel blocks may leave none: the
    nearest above; SHORT when no trial reached the goal), with the nearest trials on either side."""

    ratio: float
    blend: Blend | None = None  # a blended cut: part of the layers at a higher ratio (blend_ratios)
    speedup: float | None = None  # the chosen trial's measured speed-up
    where: str | None = None  # IN_BAND, ABOVE or SHORT; None for a step before the goal's
    below: float | None = None  # the fastest trial short of the band, and the slowest above it
    above: float | None = None
    trials: int = 0

    def note(self, target: float) -> str | None:
        """For the ledger: '2.04x in the band 2.00-2.10x (4 trials)'; where none landed in it, the trials on either
        side, so a reader sees that no cut lay between them."""
        if self.where is None:
            return None
        band = f"{target:.2f}-{target * (1 + LANDING_BAND):.2f}x"
        text = f"{self.speedup:.2f}x {self.where} {band} ({self.trials} trials"
        if self.blend:
            text += f"; {self.blend.share:.0%} of the layers, deepest first, cut at {self.blend.high:.3f}"
        if self.where != IN_BAND:
            sides = [f"{v:.2f}x" for v in (self.below, self.above) if v is not None]
            text += f"; nearest: {' and '.join(sides)}" if sides else ""
        return text + ")"


@dataclass(frozen=True)
class LatencyGoal:
    """Cut the measured latency (the run's runtime, batch 1) by ``target`` in ``steps`` steps, each taking an equal
    factor of what remains of it; stepping on until reached or ``most_steps``. Time does not fall with MACs alone
    (activations, memory traffic, the head's share): a step sizes its MACs cut from how time followed MACs in every
    model timed so far (latency_exponent), prunes a copy there and times it against the unpruned model (trial), and
    refits. A step before the goal's stops at a copy within LATENCY_TOLERANCE of its share (at most TRIALS copies);
    the step that must reach the goal brackets it (landing): at most LANDING_TRIALS copies until one lands between the
    goal and LANDING_BAND above it."""

    target: float
    steps: int
    most_steps: int

    TRIALS = 3
    LANDING_TRIALS = 7
    BLEND_TRIALS = 4

    def ratio(self, step: int, unpruned: dict, current: dict, trial=None) -> float:
        """The step's uniform cut (landing(...).ratio)."""
        return self.landing(step, unpruned, current, trial).ratio

    def landing(self, step: int, unpruned: dict, current: dict, trial=None, blends: bool = False) -> Landing:
        """unpruned, current: {'channels', 'macs'} of the unpruned model and of the model before this step, current
        with its measured 'latency_speedup' once a step was timed. trial(ratio, blend=None) -> {'channels', 'macs',
        'latency_speedup'} of a timed copy pruned at ratio (blended: Blend). Without trial, the estimate alone. With
        blends, where no uniform cut lies in the band, blended cuts between the two nearest are tried (blend)."""
        have = current.get("latency_speedup", 1.0)
        remaining = max(1, self.steps - step + 1)
        lands = remaining == 1 or have >= self.target  # the step that must reach the goal (or confirm it)
        want = self.target * (1 + LANDING_BAND / 2) if lands else have * (self.target / have) ** (1.0 / remaining)
        points = [(unpruned["macs"] / current["macs"], have)] if "latency_speedup" in current else []
        kept = current["channels"] / unpruned["channels"]
        target_macs = unpruned["macs"] / want ** (1.0 / latency_exponent(points))
        ratio = measured_speedup_ratio(target_macs, unpruned["macs"], current["macs"], kept)
        if trial is None:
            return Landing(ratio)
        tried: list[tuple[float, float]] = []  # (ratio, measured speed-up)
        known = [(0.0, have)] if lands and have < self.target else []  # no further cut: what the model runs at now
        for _ in range(self.LANDING_TRIALS if lands else self.TRIALS):
            t = trial(ratio)
            x = t["latency_speedup"]
            tried.append((ratio, x))
            if (self._in_band(x) if lands else abs(x / want - 1) <= LATENCY_TOLERANCE) or ratio <= 0:
                break
            points.append((unpruned["macs"] / t["macs"], t["latency_speedup"]))
            target_macs = unpruned["macs"] / want ** (1.0 / latency_exponent(points))
            keep = keep_for(target_macs, unpruned["macs"], t["macs"], t["channels"] / unpruned["channels"])
            estimate = min(max(1.0 - keep / kept, 0.0), 0.9)
            if lands:
                ratio = self._next(known + tried, want, estimate)
            else:
                ratio = secant([(r, x / want) for r, x in tried]) or estimate
            if ratio is None:  # the bracket closed: no cut lies between its two sides
                break
        if not lands:
            return Landing(min(tried, key=lambda p: abs(p[1] / want - 1))[0], trials=len(tried))
        landed = self._landed(tried, known)
        if blends and landed.where == ABOVE and landed.below is not None:
            low = max(r for r, x in known + tried if x < self.target)
            return self.blend(trial, low, landed)
        return landed

    def blend(self, trial, low: float, landed: Landing) -> Landing:
        """Blended cuts between the uniform cut at low (landed.below: its speed-up, short of the band) and the one
        landed above it, at most BLEND_TRIALS: the share of layers cut at the higher ratio by the line through the
        nearest blends on either side (log speed-up against the share); the first in the band is kept, else the
        uniform landing stands, its trials counted."""
        high = landed.ratio
        sides = [(0.0, landed.below), (1.0, landed.speedup)]  # (share, speed-up)
        aim = self.target * (1 + LANDING_BAND / 2)
        for n in range(1, self.BLEND_TRIALS + 1):
            f0, x0 = max(p for p in sides if p[1] < self.target)  # the nearest blends short of and over the band
            f1, x1 = min(p for p in sides if p[1] > self.target)
            share = f0 + (f1 - f0) * math.log(aim / x0) / math.log(x1 / x0) if x1 > x0 else (f0 + f1) / 2
            share = min(max(share, f0 + (f1 - f0) / 8), f1 - (f1 - f0) / 8)  # strictly inside the bracket
            blend = Blend(high, share)
            x = trial(low, blend)["latency_speedup"]
            if self._in_band(x):
                return Landing(low, blend, x, IN_BAND, landed.below, landed.above, landed.trials + n)
            sides.append((share, x))
        return Landing(landed.ratio, None, landed.speedup, ABOVE, landed.below, landed.above, landed.trials + n)

    def _in_band(self, speedup: float) -> bool:
        return self.target <= speedup <= self.target * (1 + LANDING_BAND)

    def _next(self, tried: list[tuple[float, float]], want: float, estimate: float) -> float | None:
        """The next ratio of the goal's step: by the line through the nearest trials on either side of the band
        (secant, toward its middle), within the bracket they make; None when the bracket is narrower than a channel
        block can resolve (MIN_GAP) or every ratio in it was tried."""
        short = [r for r, x in tried if x < self.target]
        over = [r for r, x in tried if x > self.target * (1 + LANDING_BAND)]
        lo, hi = max(short, default=0.0), min(over, default=0.9)
        if short and over and hi - lo <= MIN_GAP:
            return None
        ratio = secant([(r, x / want) for r, x in tried]) or estimate
        if short and over and not lo < ratio < hi:
            ratio = (lo + hi) / 2  # the line left the bracket (noise, a step in the channel counts): halve it
        if any(abs(ratio - r) < MIN_GAP / 2 for r, _ in tried):  # tried already: halve the bracket, or leave a side
            if short and over:
                ratio = (lo + hi) / 2
            else:  # one side only (noise bent the line back): step a sixth of the way out of it
                ratio = lo + (0.9 - lo) / 6 if short else hi * 5 / 6
            if any(abs(ratio - r) < MIN_GAP / 2 for r, _ in tried):
                return None
        return ratio

    def _landed(self, tried: list[tuple[float, float]], known: list[tuple[float, float]] = ()) -> Landing:
        """The trial to cut at: in the band, the one nearest its middle; else the nearest above (the slowest over
        the goal); else, all short, the fastest. known: (0, the speed-up now), the short side a later step starts
        from (never cut at: blends start from it)."""
        inside = [p for p in tried if self._in_band(p[1])]
        short = [x for _, x in [*known, *tried] if x < self.target]
        over = [p for p in tried if p[1] > self.target * (1 + LANDING_BAND)]
        below, above = max(short, default=None), min((x for _, x in over), default=None)
        aim = self.target * (1 + LANDING_BAND / 2)
        if inside:
            ratio, x = min(inside, key=lambda p: abs(math.log(p[1] / aim)))
            where = IN_BAND
        elif over:
            ratio, x = min(over, key=lambda p: p[1])
            where = ABOVE
        else:
            ratio, x = max(tried, key=lambda p: p[1])
            where = SHORT
        return Landing(ratio, None, x, where, below, above, len(tried))

    def reached(self, latency: dict) -> bool:
        """latency: the step's measurement (export.Timer.against). Reached when the median ratio is within half the
        tolerance of the target and no block fell more than twice the tolerance short: never on noise."""
        return latency["speedup"] >= self.target * (1 - LATENCY_TOLERANCE / 2) and latency["low"] >= self.target * (
            1 - 2 * LATENCY_TOLERANCE
        )


MIN_GAP = 0.004  # ratios closer than this prune the same channels on nano widths (a 64-channel layer: 1 / 256)


@dataclass(frozen=True)
class Budget:
    """How much mAP50-95 a step may lose against the unpruned model: absolute, and optionally relative."""

    max_drop: float
    max_drop_rel: float = 0.0

    def within(self, unpruned_map: float, recovered_map: float) -> bool:
        drop = unpruned_map - recovered_map
        return drop <= self.max_drop and (not self.max_drop_rel or drop <= self.max_drop_rel * unpruned_map)


def layer_weights(scan: dict[str, dict[float, float]], unpruned_map: float) -> dict[int, float]:
    """{layer index: weight} sharing a cut out by sensitivity: a layer's weight is its robustness (mAP50-95 after
    pruning it alone, over the unpruned mAP, in [0, 1], averaged over the scanned ratios) over the mean robustness,
    so the weights average 1. A layer that loses nothing takes more than the uniform share, one that collapses takes
    almost none; where every layer collapses at every ratio, the cut is shared uniformly (scan gentler ratios)."""
    robust = {}
    for key, by_ratio in scan.items():
        kept = [min(max(m / unpruned_map, 0.0), 1.0) if unpruned_map > 0 else 1.0 for m in by_ratio.values()]
        robust[int(key.split()[0])] = sum(kept) / len(kept)
    mean = sum(robust.values()) / len(robust) if robust else 0.0
    return {i: r / mean for i, r in robust.items()} if mean > 0 else {i: 1.0 for i in robust}


TRIAL_RATIO = 0.3  # layer_ratios 'latency': the trial cut that is timed (about 2x fewer MACs on YOLO11n)
MOST_WEIGHT = 3.0  # by its timing, no layer takes more than this many times the uniform share of a cut, nor less
# than its inverse: a layer whose timing was lost in noise (or got slower) is still cut, only less


def gain_weights(saved_ms: dict[int, float], saved_macs: dict[int, int]) -> dict[int, float]:
    """{layer index: weight} sharing a cut out by latency: a layer's gain is the time it saved per MAC it lost in a
    timed trial cut (a layer that lost no MACs has none); its weight is its gain over the mean gain, within
    [1 / MOST_WEIGHT, MOST_WEIGHT]. A layer that saves more time per MAC than the others takes more of the cut."""
    gain = {i: max(saved_ms[i], 0.0) / saved_macs[i] for i in saved_ms if saved_macs.get(i, 0) > 0}
    mean = sum(gain.values()) / len(gain) if gain else 0.0
    if mean <= 0:
        return {i: 1.0 for i in gain}
    return {i: min(max(g / mean, 1 / MOST_WEIGHT), MOST_WEIGHT) for i, g in gain.items()}


def layer_ratios(weights: dict[int, float] | None, ratio: float, most: float = 0.9) -> dict[int, float] | None:
    """Each weighted layer's share of this step's cut (the step's ratio times its weight, at most ``most``); layers
    without a weight take ``ratio``. None when the cut is uniform."""
    if not weights:
        return None
    return {i: min(ratio * w, most) for i, w in weights.items()}


def goal(settings: settings_.Goal) -> ChannelGoal | SpeedupGoal | LatencyGoal:
    n = settings.iterative_steps
    if settings.target_latency_speedup:
        return LatencyGoal(settings.target_latency_speedup, n, settings.max_steps or 3 * n)
    if settings.target_speedup:
        return SpeedupGoal(settings.target_speedup, n, settings.max_steps or 3 * n)
    return ChannelGoal(settings.target_prune_rate, n)


def budget(settings: settings_.Goal) -> Budget:
    return Budget(settings.max_map_drop, settings.max_map_drop_rel)


def stop_reason(goal_, step: int, within: bool, speedup) -> str | None:
    """Why the loop stops after this step, or None to go on; speedup: what the goal judges (the MACs speed-up; a
    latency goal's measurement)."""
    if not within:
        return "map_drop"
    if goal_.reached(speedup):
        return "target_reached"
    return "done" if step >= goal_.most_steps else None
