"""How sure a score measured on few images is: the images resampled with replacement (the bootstrap, Efron 1979) and
the task's mAP50-95 computed again on each resample by Ultralytics' own ``ap_per_class``, from the hits the validator
recorded for each image (validation.evaluate with per_image).

Two models validated on the same images are resampled together (a paired bootstrap: each resample draws the same
images for both), so the interval of their ratio, a retention, leaves out how hard the images themselves are. The
interval is the percentile one at ``level`` (95 % by default) over ``resamples`` draws, seeded: the same inputs give
the same interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ultralytics.utils.metrics import ap_per_class


@dataclass(frozen=True)
class ImageHits:
    """What the validator recorded for one image: each detection's hits at the ten IoU thresholds 0.5:0.95, its
    confidence and class, and the classes of the image's labelled objects."""

    hits: np.ndarray  # (detections, 10) booleans
    conf: np.ndarray
    pred_cls: np.ndarray
    target_cls: np.ndarray


@dataclass(frozen=True)
class Interval:
    """A figure and its bootstrap interval."""

    value: float
    low: float
    high: float
    level: float
    resamples: int

    def percent(self) -> str:
        """'92.6% (88.1-96.0%)': a ratio and its interval, in percent."""
        return f"{self.value:.1%} ({self.low:.1%}-{self.high:.1%})"

    def record(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "level": self.level, "n": self.resamples}


def map50_95(images: list[ImageHits]) -> float:
    """The mAP50-95 of the images together, as Ultralytics' validator computes it (0 with no labelled object)."""
    if not images or not sum(len(i.target_cls) for i in images):
        return 0.0
    ap = ap_per_class(*(np.concatenate([getattr(i, k) for i in images]) for k in ImageHits.__dataclass_fields__))[5]
    return float(ap.mean()) if len(ap) else 0.0


def retention(
    before: list[ImageHits], after: list[ImageHits], resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> Interval:
    """after's mAP50-95 over before's on the same images, with its paired bootstrap interval (resamples where before
    scores 0 are left out). Refuses two lists that are not of the same images."""
    return _paired(before, after, lambda b, a: a / b if b > 0 else None, resamples, level, seed)


def difference(
    first: list[ImageHits], second: list[ImageHits], resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> Interval:
    """first's mAP50-95 minus second's on the same images, with its paired bootstrap interval. Refuses two lists
    that are not of the same images."""
    return _paired(second, first, lambda b, a: a - b, resamples, level, seed)


def _paired(before, after, statistic, resamples: int, level: float, seed: int) -> Interval:
    """statistic(before's mAP50-95, after's) on the images and on each resample of them, drawn alike for both (a
    statistic of None is left out): the value and its percentile interval. Refuses other images (another count, or
    other labelled classes on an image)."""
    if len(before) != len(after) or any(
        not np.array_equal(np.sort(a.target_cls), np.sort(b.target_cls)) for a, b in zip(before, after)
    ):
        raise ValueError("bootstrap: the two models were not validated on the same images, in the same order")
    value = statistic(map50_95(before), map50_95(after))
    value = 0.0 if value is None else value
    rng = np.random.default_rng(seed)
    drawn = (rng.integers(0, len(before), len(before)) for _ in range(resamples))
    found = [statistic(map50_95([before[i] for i in d]), map50_95([after[i] for i in d])) for d in drawn]
    found = [f for f in found if f is not None]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(found, [tail, 100 - tail]) if found else (value, value)
    return Interval(round(value, 4), round(float(low), 4), round(float(high), 4), level, len(found))
