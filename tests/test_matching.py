"""Fine-tuning toward the original (prunelib.training.matching): the match term is zero where the pruned model
predicts what the original does and grows as it departs; as the trainer's criterion it adds one named term to the
task's loss, weighted as asked."""

import copy

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import IterableSimpleNamespace
from ultralytics.cfg import DEFAULT_CFG_DICT

from prunelib.training import matching


@pytest.fixture(scope="module")
def original():
    torch.manual_seed(0)
    model = DetectionModel("yolo11n.yaml", nc=3, verbose=False)
    model.args = IterableSimpleNamespace(**DEFAULT_CFG_DICT)
    return model.eval()


def _images(n=2):
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_the_match_is_zero_on_the_original_and_grows_as_a_copy_departs(original):
    x = _images()
    with torch.no_grad():
        theirs = matching.raw(original(x))
        assert float(matching.match(theirs, theirs)) == pytest.approx(0.0, abs=1e-5)
        distances = []
        for noise in (0.01, 0.05, 0.2):
            torch.manual_seed(0)
            copy_ = copy.deepcopy(original)
            for p in copy_.parameters():
                p.data += noise * torch.randn_like(p)
            distances.append(float(matching.match(matching.raw(copy_.train()(x)), theirs)))
    assert 0 < distances[0] < distances[1] < distances[2]


def test_as_the_criterion_it_adds_one_named_term_to_the_tasks_loss(original):
    student = copy.deepcopy(original).train()
    for p in student.parameters():
        p.data += 0.05 * torch.randn_like(p)
    x = _images()
    batch = {
        "img": x,
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[0.0], [2.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.4, 0.6, 0.2, 0.4]]),
    }
    labels = student.init_criterion()
    plain, plain_items = labels(student(x), batch)
    criterion = matching.MatchesOriginal(student.init_criterion(), original, match_original=2.0, label_weight=0.5)
    preds = student(x)
    loss, items = criterion(preds, batch)
    assert list(items) == [*plain_items, "match_loss"]
    assert torch.allclose(loss[:-1], plain * 0.5, rtol=1e-5)
    term = matching.match(matching.raw(preds), matching.raw(original(x)))
    assert float(loss[-1]) == pytest.approx(float(term) * 2.0 * len(x), rel=1e-5)
    loss.sum().backward()  # the original stays frozen; the student learns
    assert all(p.grad is None for p in original.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
