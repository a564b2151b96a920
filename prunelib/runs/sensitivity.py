"""How much each layer alone can lose: mAP50-95 after pruning one layer at a time, without fine-tuning.

The scan is the analysis stage's figure and, with ``layer_ratios: sensitivity``, what the loop shares the cut out
by (prunelib.runs.policy.layer_weights). Both read the same ``sensitivity.json``: a scan is redone only when the
stored one lacks a layer or ratio that is asked for.
"""

from __future__ import annotations

import copy
import dataclasses

from prunelib.core.folder import Run
from prunelib.core.settings import Pruning
from prunelib.surgery import checkpoints, measuring, pruner
from prunelib.training import gradients
from prunelib.training.recalibration import recalibrate_batchnorm
from prunelib.training.validation import evaluate


def alone(settings: Pruning, layers: int, i: int) -> Pruning:
    """The pruning settings that cut layer i of a model of that many layers and nothing else: every other layer
    named by index, so kept whole, the hidden layers prune_head, prune_proto and prune_attention would carve out of
    the head, the mask prototype and the attention blocks included (pruner.pinned_layers)."""
    others = tuple(j for j in range(layers) if j != i)
    return dataclasses.replace(settings, ignore_layers=settings.ignore_layers + others)


def scan(run: Run, data, log=print, every_layer: bool = False, ratios=None) -> dict[str, dict[float, float]]:
    """{'<i> <Type>': {ratio: mAP50-95}} after pruning layer i alone at each ratio (default sensitivity_ratios; then
    BatchNorm recalibration when the run uses it). Layers: every prunable one, or the first sensitivity_layers of them
    unless every_layer. Other layers are kept (their output channels are ignored); the scanned layer's consumers lose
    the matching input channels, as in real pruning. Saved to the run's sensitivity.json (merged with what is there)."""
    settings, training, shown = run.settings.pruning, run.settings.training, run.settings.shown
    model = checkpoints.load_model(run.unpruned_pt)
    x = measuring.example_inputs(training.imgsz)
    layers = pruner.prunable_layers(model, settings)
    if shown.sensitivity_layers and not every_layer:
        layers = layers[: shown.sensitivity_layers]
    stored = {k: {float(r): v for r, v in d.items()} for k, d in (run.read_json(run.sensitivity_json) or {}).items()}
    results = {}
    for i in layers:
        key = f"{i} {type(model.model[i]).__name__}"
        results[key] = {}
        for ratio in ratios or shown.sensitivity_ratios:
            if ratio in stored.get(key, {}):
                results[key][ratio] = stored[key][ratio]
                continue
            m = copy.deepcopy(model)
            pruner.prune(m, alone(settings, len(m.model), i), ratio, x, gradients.for_pruning(training, data))
            recalibrate_batchnorm(
                m, training, data, run.settings.schedule.bn_recalibration
            )  # as the loop does (0: off)
            results[key][ratio] = round(evaluate(m, training, data, run.val_dir("sensitivity"))["map50_95"], 6)
        log(f"layer {key}: " + ", ".join(f"{r}: {v:.4f}" for r, v in results[key].items()))
    merged = {**stored, **results}
    run.write_json(run.sensitivity_json, {k: {str(r): v for r, v in d.items()} for k, d in merged.items()})
    return results
