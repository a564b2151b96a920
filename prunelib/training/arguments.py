"""The run's parameters as Ultralytics arguments: one mapping for every call the kit makes (train, fine-tune,
validate, load data), and the check of a user's training-settings YAML against Ultralytics' own argument table.
"""

from __future__ import annotations

import difflib

from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg, get_cfg

from prunelib.core.settings import Training
from prunelib.core.parameters import read_yaml
from prunelib.errors import UserError
from prunelib.offline import scratch_output
from prunelib.paths import resolve

scratch_output()  # every call into Ultralytics that the kit makes takes its arguments from here

# keys of a cfg YAML that the kit sets itself: what to train, on what, and where
_KIT_OWNED = ("model", "data", "project", "name", "mode", "task")


def ultralytics_args(settings: Training, purpose: str, data, **extras) -> dict:
    """Arguments for Ultralytics from the run's training settings; extras (e.g. project, name, model) go on top.

    purpose: 'train' (the embedded baseline from scratch), 'finetune' (a pruned model; the cfg YAML is the base;
    extras give its epochs),
    'val' (validation) or 'loader' (reading training images, e.g. for gradients).
    """
    common = {"data": str(data), "imgsz": settings.imgsz, "batch": settings.batch}
    if purpose == "loader":
        return {**common, **extras}
    common |= {"device": settings.device, "workers": settings.workers, "verbose": False, "plots": False}
    if purpose == "val":
        return {**common, "rect": False, **extras}
    training = {"seed": settings.seed, "deterministic": True, "exist_ok": True, "amp": False}
    if purpose == "train":
        return {
            **common,
            **training,
            "epochs": settings.baseline_epochs,
            "optimizer": "AdamW",
            "lr0": settings.baseline_lr0,
            "nbs": settings.baseline_nbs or settings.batch,
            **extras,
        }
    if purpose == "finetune":
        base = read_cfg(settings.cfg)
        gpu = settings.device != "cpu"
        return {
            **base,
            **common,
            **training,
            "seed": settings.training_seed or settings.seed,
            "optimizer": settings.optimizer,
            "lr0": settings.lr0,
            "warmup_epochs": settings.warmup_epochs,
            "nbs": settings.nbs or settings.batch,
            "val": True,
            "plots": base.get("plots", False),
            "amp": base.get("amp", False) if gpu else False,
            **extras,
        }
    raise ValueError(f"purpose {purpose!r}: expected train, finetune, val or loader")


def ultralytics_cfg(settings: Training, purpose: str, data, **extras):
    """ultralytics_args as the namespace Ultralytics' builders take (defaults filled in, checked)."""
    return get_cfg(overrides=ultralytics_args(settings, purpose, data, **extras))


def read_cfg(path) -> dict:
    """A training-settings YAML as a dict, without the keys the kit sets itself ({} when path is empty)."""
    if not path:
        return {}
    return {k: v for k, v in read_yaml(path).items() if k not in _KIT_OWNED}


# the kit's parameter that decides each Ultralytics argument it sets in fine-tuning ("" where the kit fixes it)
DECIDED_BY = {
    "imgsz": "imgsz",
    "batch": "batch",
    "device": "device",
    "workers": "workers",
    "seed": "seed",
    "optimizer": "optimizer",
    "lr0": "lr0",
    "warmup_epochs": "warmup_epochs",
    "nbs": "nbs",
    "epochs": "finetune_epochs",
    "dis": "distill_weight",
    "verbose": "",
    "deterministic": "",
    "exist_ok": "",
    "val": "",
    "amp": "",
}


def overridden(settings: Training) -> list[str]:
    """The keys of the cfg YAML that fine-tuning does not take from it, each with the value used instead and the
    parameter that sets it: one line's worth, said before a run starts ([] when the file's values all hold)."""
    base = read_cfg(settings.cfg)
    used = ultralytics_args(settings, "finetune", "", dis=settings.distill_weight)
    used.pop("epochs", None)  # the file's, until the run gives each fine-tuning its own
    out = []
    for key, value in base.items():
        if key not in DECIDED_BY or (key in used and used[key] == value):  # epochs: the step plan's, never the file's
            continue
        how = f"set {DECIDED_BY[key]}" if DECIDED_BY[key] else "the kit's own"
        out.append(f"{key} {value!r} -> {used[key]!r} ({how})" if key in used else f"{key} {value!r} ({how})")
    return out


def check_cfg_file(path) -> None:
    """Refuse a cfg YAML Ultralytics would refuse mid-run: unknown keys (with the closest one) and bad values."""
    cfg = read_cfg(resolve(path))
    for key in cfg:
        if key not in DEFAULT_CFG_DICT:
            close = difflib.get_close_matches(str(key), DEFAULT_CFG_DICT, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see Ultralytics' default.yaml for the keys"
            raise UserError(f"cfg: {key!r} in {path!s} is not an Ultralytics training argument{hint}")
    try:
        check_cfg(dict(cfg), hard=True)
    except (TypeError, ValueError) as e:
        raise UserError(f"cfg: {path!s}: {str(e).strip().splitlines()[0]}") from None
