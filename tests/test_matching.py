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


def _student_and_batch(original):
    """A copy of the original a little apart (in training mode), two images and their labels as Ultralytics batches
    them."""
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
    return student, x, batch


def test_as_the_criterion_it_adds_one_named_term_to_the_tasks_loss(original):
    student, x, batch = _student_and_batch(original)
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


def _cut(model, *ratios):
    """model's C3k2 blocks made prunable, its BatchNorm scales made distinct, then cut at each ratio in turn (any
    channel count, the head's hidden layers pruned)."""
    from prunelib.core import parameters
    from prunelib.core.settings import Settings
    from prunelib.surgery import pruner
    from prunelib.surgery.replacement import replace_c3k2

    replace_c3k2(model)
    settings = Settings.of(parameters.load([], {"round_to": 0})).pruning
    pruned = copy.deepcopy(model)
    for ratio in ratios:
        pruner.prune(pruned, settings, ratio, _images(1))
    return model, pruned


def test_lineage_names_the_original_channel_of_each_kept_head_input_over_several_cuts(original, tmp_path):
    from prunelib.surgery import checkpoints, lineage

    model = copy.deepcopy(original)
    torch.manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand_like(m.weight) + 0.5  # every channel its own scale, to be found again
    model, pruned = _cut(model, 0.3, 0.2)
    kept = lineage.kept(pruned)
    blocks, before = lineage.head_input_blocks(pruned), lineage.head_input_blocks(model)
    assert len(kept) == 3 and all(k is not None for k in kept)
    for block, whole, channels in zip(blocks, before, kept):
        assert len(channels) == block.conv.out_channels < whole.conv.out_channels
        assert torch.equal(block.bn.weight, whole.bn.weight[channels])  # each kept channel is that original one
    path = checkpoints.save_model(pruned, tmp_path / "pruned.pt")
    assert [k.tolist() for k in lineage.kept(checkpoints.load_model(path))] == [k.tolist() for k in kept]


def test_the_feature_term_is_zero_at_the_kept_channels_and_grows_with_the_wrong_ones():
    g = torch.Generator().manual_seed(0)
    theirs = {"feats": [torch.randn(2, c, s, s, generator=g) * (1 + torch.arange(c)).view(1, c, 1, 1) for c, s in
                        ((16, 8), (32, 4), (64, 2))]}  # fmt: skip
    channels = [torch.arange(0, f.shape[1], 2) for f in theirs["feats"]]
    own = {**theirs, "feats": [f[:, c] for f, c in zip(theirs["feats"], channels)]}
    assert float(matching.features(own, theirs, channels)) == pytest.approx(0.0, abs=1e-7)
    shifted = [c + 1 for c in channels]  # the neighbours: other channels of the original
    assert float(matching.features(own, theirs, shifted)) > 0.1
    assert float(matching.features(theirs, theirs, [])) == pytest.approx(0.0, abs=1e-7)  # never cut: the same
    assert float(matching.features(own, theirs, [])) == 0.0  # cut, unrecorded: nothing to match


def test_match_features_adds_its_weighted_term_to_the_match(original):
    student, x, batch = _student_and_batch(original)
    plain = matching.MatchesOriginal(student.init_criterion(), original, match_original=2.0)
    both = matching.MatchesOriginal(student.init_criterion(), original, match_original=2.0, match_features=3.0)
    preds = student(x)
    with torch.no_grad():
        theirs = matching.raw(original(x))
    extra = matching.features(matching.raw(preds), theirs, [])
    assert float(extra) > 0
    gap = float(both(preds, batch)[0][-1] - plain(preds, batch)[0][-1])
    assert gap == pytest.approx(float(extra) * 3.0 * len(x), rel=1e-4)
