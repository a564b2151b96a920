"""Agreement with the original (prunelib.training.agreement): boxes are matched one to one, by class and IoU, the
most confident first; a model agrees fully with itself and less once its weights are disturbed."""

import numpy as np
import pytest
import torch

from prunelib.training import agreement
from prunelib.training.agreement import Agreement, matches
from prunelib.training.datasets import check_data_yaml

BOX = [10.0, 10.0, 50.0, 50.0]
SHIFTED = [14.0, 10.0, 54.0, 50.0]  # IoU with BOX: 36 / 44 = 0.82
FAR = [30.0, 10.0, 70.0, 50.0]  # IoU with BOX: 20 / 60 = 0.33


def _reference(*boxes, cls=0):
    return np.full(len(boxes), cls), np.array(boxes, dtype=float)


def _candidate(*boxes, cls=0, conf=None):
    return np.full(len(boxes), cls), np.array(boxes, dtype=float), np.array(conf or [0.9] * len(boxes))


def test_a_box_matches_one_of_the_originals_of_its_class_that_it_overlaps_enough():
    assert matches(_reference(BOX), _candidate(SHIFTED)) == 1
    assert matches(_reference(BOX), _candidate(FAR)) == 0  # IoU 0.33 < 0.5
    assert matches(_reference(BOX, cls=1), _candidate(SHIFTED, cls=0)) == 0  # another class
    assert matches(_reference(), _candidate(BOX)) == 0
    assert matches(_reference(BOX), _candidate()) == 0


def test_matching_is_one_to_one_and_the_most_confident_box_takes_the_best_overlap():
    # two predictions over one original box: one match, not two
    assert matches(_reference(BOX), _candidate(BOX, SHIFTED)) == 1
    # two original boxes, two predictions: the confident one overlaps both and takes the closer, so both match
    other = [10.0, 14.0, 50.0, 54.0]
    assert matches(_reference(BOX, other), _candidate(BOX, SHIFTED, conf=[0.9, 0.5])) == 2
    assert agreement.iou([BOX], [SHIFTED])[0, 0] == pytest.approx(36 / 44, rel=1e-6)


def test_precision_recall_and_f1_from_the_counts():
    a = Agreement.of(matched=3, original_boxes=4, model_boxes=6, images=2)
    assert (a.precision, a.recall) == pytest.approx((0.5, 0.75))
    assert a.f1 == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    assert Agreement.of(0, 0, 0, 1).f1 == 1.0  # nothing on either side: full agreement
    assert Agreement.of(0, 0, 3, 1).precision == 0.0  # boxes where the original sees nothing
    assert Agreement.of(0, 2, 0, 1).recall == 0.0


def test_a_model_agrees_fully_with_itself_and_less_once_disturbed(smoke_start, tmp_path):
    from prunelib.surgery import checkpoints

    images = check_data_yaml(smoke_start["data"])["val"][:12]
    model = smoke_start["model"]
    itself = agreement.agreement(model, model, images, 64, "detect", conf=0.1)
    assert itself.original_boxes > 0
    assert (itself.precision, itself.recall, itself.f1) == (1.0, 1.0, 1.0)

    loaded = checkpoints.load_model(model)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in loaded.parameters():
            p.add_(0.3 * p.abs().mean() * torch.randn_like(p))
    disturbed = checkpoints.save_model(loaded, tmp_path / "disturbed.pt", checkpoints.train_args(model))
    apart = agreement.agreement(disturbed, model, images, 64, "detect", conf=0.1)
    assert apart.original_boxes == itself.original_boxes
    assert apart.f1 < 0.9
