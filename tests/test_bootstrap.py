"""How sure a score on few images is (prunelib.training.bootstrap): the hits recorded per image give back the
validator's own mAP50-95, and a paired bootstrap brackets a retention."""

import dataclasses

import numpy as np
import pytest

from prunelib.core.settings import Training
from prunelib.surgery import checkpoints
from prunelib.training import bootstrap
from prunelib.training.bootstrap import ImageHits
from prunelib.training.validation import evaluate


def test_the_images_hits_give_back_the_validators_own_score(smoke_start, smoke_params, tmp_path):
    model = checkpoints.load_model(smoke_start["model"])
    scored = evaluate(model, Training.of(smoke_params), smoke_start["data"], tmp_path / "val", per_image=True)
    images = scored["images"]
    assert len(images) > 1 and all(i.hits.shape[1:] == (10,) for i in images)
    assert scored["map50_95"] > 0.05  # a model that finds something: the check below is not 0 == 0
    assert bootstrap.map50_95(images) == pytest.approx(scored["map50_95"], abs=1e-6)
    itself = bootstrap.retention(images, images, resamples=50)
    assert (itself.value, itself.low, itself.high) == (1.0, 1.0, 1.0)


def _image(rng, hit_rate: float, objects: int = 4) -> ImageHits:
    """An image of `objects` labelled objects of classes 0-1, one detection each, hitting at every IoU threshold with
    probability hit_rate."""
    hits = np.repeat((rng.random(objects) < hit_rate)[:, None], 10, axis=1)
    classes = rng.integers(0, 2, objects).astype(float)
    return ImageHits(hits, rng.random(objects), classes, classes)


def test_a_paired_bootstrap_brackets_a_retention_and_narrows_with_more_images():
    rng = np.random.default_rng(1)
    few = [_image(rng, 1.0) for _ in range(10)]
    many = [_image(rng, 1.0) for _ in range(200)]

    def halved(images):  # the same images, every other detection a miss
        return [dataclasses.replace(i, hits=i.hits & (np.arange(len(i.hits)) % 2 == 0)[:, None]) for i in images]

    narrow, wide = (bootstrap.retention(i, halved(i), resamples=300) for i in (many, few))
    for interval in (narrow, wide):
        assert interval.low <= interval.value <= interval.high and 0.2 < interval.value < 0.8
    assert narrow.high - narrow.low < wide.high - wide.low
    assert bootstrap.retention(many, halved(many), resamples=300) == narrow  # seeded: the same interval again
    assert narrow.percent().startswith(f"{narrow.value:.1%} (")
    lost = bootstrap.difference(halved(many), many, resamples=300)  # about half the score lost: well below 0
    assert lost.low <= lost.value <= lost.high < 0
    same = bootstrap.difference(many, many, resamples=50)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)


def test_two_lists_of_other_images_are_refused():
    rng = np.random.default_rng(2)
    a, b = [_image(rng, 1.0) for _ in range(5)], [_image(rng, 1.0, objects=3) for _ in range(5)]
    with pytest.raises(ValueError, match="were not validated on the same images"):
        bootstrap.retention(a, b)
    with pytest.raises(ValueError, match="were not validated on the same images"):
        bootstrap.retention(a, a[:4])
