"""The real case: a YOLOv8n trained by others (``shared/cases/abd_yolov8n_molecules.pt``: the ABD-model package's
molecule-drawing detector, 147 classes, 640 px, trained with Ultralytics 8.3.91), on in-domain drawings made here.

RDKit draws real NCI molecules (its own sample, ``rdkit/Data/NCI/first_5K.smi``) at 640 x 640; the model's own
detections at conf 0.25 are the labels, so retention measures how much of the original's behaviour a pruned copy
keeps. Three disjoint sets of molecules: train (fine-tuning), val (the loop's stop decisions) and a held-out test split
nothing trains on or selects with (``holdout_yaml``). Made once under runs/bench-real-case/, then reused.

RDKit is a bench dependency, not the kit's: ``.venv/bin/pip install rdkit``.

    .venv/bin/python bench/real_case.py            # make the data set (or print where it is)
    .venv/bin/python bench/real_case.py --probe    # fine-tuning the unpruned model: what wrecks it, what keeps it
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import yaml

import prunelib  # noqa: F401  (offline set-up first)
from prunelib.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT / "runs" / "bench-real-case"
CASES = Path(os.environ.get("PRUNELIB_CASES", PROJECT_ROOT.parent / "shared" / "cases"))
MODEL = CASES / "abd_yolov8n_molecules.pt"
SPLITS = {"train": 200, "val": 60, "test": 60}  # drawings, each of another molecule
IMGSZ, CONF, SEED = 640, 0.25, 0


def model() -> Path:
    if not MODEL.is_file():
        sys.exit(f"the real case's model is not at {MODEL} (set PRUNELIB_CASES to the folder holding it)")
    return MODEL


def data_yaml() -> Path:
    """The data set (drawn and labelled once): train / val / test splits of distinct molecules."""
    out = ROOT / "data" / "data.yaml"
    if out.is_file():
        return out
    from rdkit import Chem, RDConfig
    from rdkit.Chem.Draw import rdMolDraw2D
    from ultralytics import YOLO

    smiles = (Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi").read_text().split("\n")
    mols = [m for s in smiles if s.strip() and (m := Chem.MolFromSmiles(s.split()[0])) is not None]
    mols = [m for m in mols if 6 <= m.GetNumHeavyAtoms() <= 40]  # a drawing the model reads at 640 px
    random.Random(SEED).shuffle(mols)
    detector = YOLO(str(model()))
    start = 0
    for split, count in SPLITS.items():
        images, labels = ROOT / "data" / "images" / split, ROOT / "data" / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for i, mol in enumerate(mols[start : start + count]):
            drawer = rdMolDraw2D.MolDraw2DCairo(IMGSZ, IMGSZ)
            drawer.DrawMolecule(mol)
            drawer.FinishDrawing()
            image = images / f"{split}_{i:04d}.png"
            image.write_bytes(drawer.GetDrawingText())
            boxes = detector.predict(str(image), imgsz=IMGSZ, conf=CONF, verbose=False)[0].boxes
            rows = [
                f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}"
                for c, (x, y, w, h) in zip(boxes.cls.tolist(), boxes.xywhn.tolist())
            ]
            (labels / f"{split}_{i:04d}.txt").write_text("\n".join(rows) + ("\n" if rows else ""))
        start += count
    names = {int(k): str(v) for k, v in detector.names.items()}
    data = {
        "path": str(ROOT / "data"),
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "names": names,
    }
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def holdout_yaml() -> Path:
    """The same data YAML with val = the held-out test drawings (what the validator reads)."""
    out = ROOT / "holdout.yaml"
    if not out.is_file():
        data = yaml.safe_load(data_yaml().read_text())
        out.write_text(yaml.safe_dump({**data, "val": data["test"]}, sort_keys=False))
    return out


# Fine-tuning the unpruned model for PROBE_EPOCHS epochs, each variant of the recipe alone: what wrecks it, what keeps
# it. name -> the kit's parameters it sets over the built-in defaults
PROBE_EPOCHS = 2
PROBES = {
    "AdamW 0.002 (the demo's recipe)": {"optimizer": "AdamW", "lr0": 0.002},
    "AdamW 0.002, warm-up 1 epoch": {"optimizer": "AdamW", "lr0": 0.002, "warmup_epochs": 1.0},
    "AdamW 0.0005": {"optimizer": "AdamW", "lr0": 0.0005},
    "auto (Ultralytics' rule)": {"optimizer": "auto"},
    "lr0 1e-9 (BatchNorm statistics alone move)": {"optimizer": "AdamW", "lr0": 1e-9},
    "auto, no augmentation": {"optimizer": "auto", "cfg": "NOAUG"},
    "auto, BatchNorm statistics frozen": {"optimizer": "auto", "freeze_bn_stats": True},
    "lr0 1e-9, BatchNorm statistics frozen": {"optimizer": "AdamW", "lr0": 1e-9, "freeze_bn_stats": True},
}
NOAUG = {
    "fliplr": 0.0,
    "hsv_h": 0.0,
    "hsv_s": 0.0,
    "hsv_v": 0.0,
    "scale": 0.0,
    "translate": 0.0,
    "erasing": 0.0,
    "mosaic": 0.0,
}


def _probe_dir(sets: dict) -> Path:
    return ROOT / "probe" / "-".join(f"{k}{v}" for k, v in sets.items())


def original() -> dict:
    """The unpruned model as it came, validated on val and on the held-out drawings (cached)."""
    done = ROOT / "original.json"
    if not done.is_file():
        from prunelib.core import parameters
        from prunelib.core.settings import Training
        from prunelib.surgery.checkpoints import load_model
        from prunelib.training.validation import evaluate

        params = parameters.load([], {"model": str(model()), "data": str(data_yaml()), "imgsz": IMGSZ})
        training = Training.of(params)
        scores = {
            "val": evaluate(load_model(model()), training, str(data_yaml()), ROOT / "original-val")["map50_95"],
            "held-out": evaluate(load_model(model()), training, str(holdout_yaml()), ROOT / "original-holdout")[
                "map50_95"
            ],
        }
        done.write_text(json.dumps({k: round(v, 4) for k, v in scores.items()}))
    return json.loads(done.read_text())


def probe(names=None) -> list[dict]:
    """Each PROBES variant: the unpruned model fine-tuned PROBE_EPOCHS epochs with the kit's finetune, then validated
    on val and the held-out drawings, also after re-estimating BatchNorm statistics on 256 training images."""
    import csv

    from prunelib.core import parameters
    from prunelib.core.settings import Training
    from prunelib.training.finetuning import finetune
    from prunelib.training.recalibration import recalibrate_batchnorm
    from prunelib.training.validation import evaluate

    rows = []
    for name, sets in PROBES.items():
        if names and not any(n in name for n in names):
            continue
        out = _probe_dir(sets)
        done = out / "probe.json"
        if not done.is_file():
            if sets.get("cfg") == "NOAUG":
                cfg = ROOT / "no-augmentation.yaml"
                cfg.write_text(yaml.safe_dump(NOAUG))
                sets = {**sets, "cfg": str(cfg)}
            params = parameters.load([], {"model": str(model()), "data": str(data_yaml()), "imgsz": IMGSZ, **sets})
            training = Training.of(params)
            tuned, _ = finetune(str(model()), training, str(data_yaml()), out, PROBE_EPOCHS)
            log = list(csv.DictReader((out / "results.csv").open()))
            losses = {k.strip(): round(float(v), 3) for k, v in log[-1].items() if k.strip().startswith("val/")}
            row = {
                "variant": name,
                "val loss (box/cls/dfl)": "/".join(f"{v:g}" for v in losses.values()),
                "val": evaluate(tuned, training, str(data_yaml()), out / "val")["map50_95"],
                "held-out": evaluate(tuned, training, str(holdout_yaml()), out / "holdout")["map50_95"],
            }
            recalibrate_batchnorm(tuned, training, str(data_yaml()), 256)
            row["held-out, BatchNorm re-estimated"] = evaluate(
                tuned, training, str(holdout_yaml()), out / "holdout-bn"
            )["map50_95"]
            done.write_text(json.dumps(row))
        rows.append(json.loads(done.read_text()))
        print(rows[-1], flush=True)
    return rows


def publish_probe() -> None:
    """The table of every probe measured so far: bench/results/real-case-finetuning.md."""
    from common import publish

    rows = []
    for name, sets in PROBES.items():
        done = _probe_dir(sets) / "probe.json"
        if done.is_file():
            row = json.loads(done.read_text())
            rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    start = json.loads((ROOT / "original.json").read_text()) if (ROOT / "original.json").is_file() else {}
    notes = (
        f"\nThe unpruned model as it came (no fine-tuning): val {start.get('val', '-')}, held-out "
        f"{start.get('held-out', '-')}. Each row: the kit's finetune of the unpruned model for {PROBE_EPOCHS} epochs "
        f"on {SPLITS['train']} drawings ({IMGSZ} px), best.pt validated; then its BatchNorm statistics re-estimated on "
        "the un-augmented training drawings (the kit's bn_recalibration) and validated again.\n"
    )
    publish(
        "real-case-finetuning",
        "What fine-tuning does to a model trained by others (the real case, unpruned)",
        rows,
        notes,
    )


if __name__ == "__main__":
    if "--probe" in sys.argv:
        original()
        probe([a for a in sys.argv[1:] if not a.startswith("--")])
        publish_probe()
    else:
        print(data_yaml())
