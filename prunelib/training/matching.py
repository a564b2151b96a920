"""Fine-tuning toward the original: a loss term that asks the pruned model to predict what the unpruned model predicts
on the same augmented batch, beside (or instead of) the detection loss on the data's labels.

A model trained by others is often far from what its labels would make of it: fine-tuned on them, even the unpruned
copy drifts (bench/results/real-case-finetuning.md). Matching the original's own outputs keeps the pruned model where
the original was, the way knowledge distillation does for detectors (Hinton et al., 2015; for dense detectors, the
class scores as soft targets and the box distributions by KL, as in LD, Zheng et al., CVPR 2022) and few-sample
pruning recovers a network from its original's behaviour (FSKD, Li et al., CVPR 2020).

``MatchesOriginal`` is the model's criterion while the kit fine-tunes (set by training.finetuning's trainer when
``match_original`` is on): Ultralytics' own loss of the task on the labels, weighted by ``label_weight``, and the match
term, weighted by ``match_original``:

- class scores: binary cross-entropy of the pruned model's logits against the original's sigmoid outputs, less the
  targets' own entropy (so a perfect match scores 0: the KL divergence of each score), summed over every anchor and
  class (a score the original does not give is matched too);
- boxes: the KL divergence of the pruned model's box distributions (DFL bins) from the original's (an L1 distance
  where a head has no bins, YOLO26's), per side, each anchor weighted by the original's highest class score there;

both normalised by the sum of those scores, as Ultralytics normalises its classification loss by the assigned
targets. End-to-end heads match both branches.

With ``match_features``, a third term matches the head's inputs (the neck's outputs) channel by channel, each of the
pruned model's channels against the original channel it still computes (prunelib.surgery.lineage): the squared
error standardised by each original channel's variance over the batch, averaged over the head's inputs (feature
mimicking, as FitNets, Romero et al., ICLR 2015, without a projector: the kept channels are the original's own).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class MatchesOriginal:
    """The task's loss (``labels``: Ultralytics' criterion of the model) times label_weight, plus match_original
    times the match with the original (``teacher``, kept in eval mode, never trained). Returns what Ultralytics'
    criteria return: (loss terms x batch size, {name: detached term}), with 'match_loss' last."""

    def __init__(
        self,
        labels,
        teacher: nn.Module,
        match_original: float,
        label_weight: float = 1.0,
        match_features: float = 0.0,
        kept: list[torch.Tensor | None] | None = None,
    ):
        self.labels, self.teacher = labels, teacher.eval()
        self.match_original, self.label_weight = match_original, label_weight
        self.match_features, self.kept = match_features, kept or []
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict]:
        loss, items = self.labels(preds, batch)
        with torch.no_grad():
            original = raw(self.teacher.eval()(batch["img"]))
        own = raw(preds)
        term = match(own, original)
        if self.match_features:
            term = term + self.match_features / self.match_original * features(own, original, self.kept)
        items = {**items, "match_loss": term.detach()}
        scaled = term * self.match_original * batch["img"].shape[0]
        return torch.cat([loss * self.label_weight, scaled.view(1)]), items


def raw(preds) -> dict:
    """The head's raw outputs ({'boxes', 'scores', 'feats', ...}; end-to-end heads {'one2many', 'one2one'}) from what
    a model returns in training (the dict) or in eval mode (a tuple ending with it)."""
    return preds[-1] if isinstance(preds, (tuple, list)) else preds


def match(own: dict, original: dict) -> torch.Tensor:
    """How far own's class scores and box distributions are from the original's (MatchesOriginal); end-to-end heads:
    the sum over both branches."""
    if "one2many" in own:
        return sum(match(own[k], original[k]) for k in ("one2many", "one2one"))
    scores, boxes = own["scores"], own["boxes"]  # (batch, classes, anchors), (batch, 4 x bins, anchors)
    target = original["scores"].sigmoid()
    weight = target.amax(dim=1)  # (batch, anchors): where the original sees an object, and how surely
    norm = weight.sum().clamp(min=1.0)
    floor = F.binary_cross_entropy_with_logits(original["scores"], target, reduction="none")  # the targets' entropy
    classes = (F.binary_cross_entropy_with_logits(scores, target, reduction="none") - floor).sum(dim=1)  # KL
    b, n, a = boxes.shape
    bins = n // 4
    own_boxes, their_boxes = boxes.view(b, 4, bins, a), original["boxes"].view(b, 4, bins, a)
    if bins > 1:
        theirs = their_boxes.log_softmax(dim=2)
        sides = (theirs.exp() * (theirs - own_boxes.log_softmax(dim=2))).sum(dim=2)  # KL per side
    else:
        sides = (own_boxes - their_boxes).abs().squeeze(2)
    return classes.sum() / norm + (sides.sum(dim=1) * weight).sum() / norm


def features(own: dict, original: dict, kept: list[torch.Tensor | None]) -> torch.Tensor:
    """The head's inputs of own against the original's at the channels own still computes (kept: for each input,
    the original channel of each of own's channels; None: the same channels when the counts agree, else skipped):
    the squared error over each original channel's variance on the batch, averaged over every position and then
    over the inputs matched (MatchesOriginal); 0 where a head gives no features."""
    feats, theirs = (own.get("one2many") or own).get("feats"), (original.get("one2many") or original).get("feats")
    if not feats or not theirs:
        return own["scores"].new_zeros(()) if "scores" in own else torch.zeros(())
    terms = []
    for mine, target, channels in zip(feats, theirs, kept or [None] * len(feats)):
        if channels is None and mine.shape[1] != target.shape[1]:
            continue  # a cut the kit did not record: which channels it kept is unknown
        channels = torch.arange(mine.shape[1]) if channels is None else channels  # never cut: the same channels
        target = target[:, channels.to(target.device)]
        scale = target.var(dim=(0, 2, 3), keepdim=True, unbiased=False).clamp(min=1e-6)
        terms.append(((mine - target) ** 2 / scale).mean())
    return torch.stack(terms).mean() if terms else feats[0].new_zeros(())
