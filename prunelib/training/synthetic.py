"""The embedded default data set: synthetic images in YOLO format for every task, deterministic from a seed.

Eight classes in pairs that differ only in detail (filled vs outlined, square vs rounded square), sizes from ~8 px to
half the image, overlap and occlusion, unlabeled clutter, textured noisy backgrounds, colour independent of class.
Capacity matters on it, so what pruning costs shows.

Tasks (``task``): detect draws the shapes upright with boxes (the embedded default, unchanged); segment, pose and obb
draw them turned by up to 45 degrees, labelled with the shape's outline polygon (segment), its top, right, bottom and
left points in its own frame (pose: ``kpt_shape [4, 3]``, a horizontal flip swaps right and left) or the turned
square it fills (obb).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFilter

from prunelib import files, tasks
from prunelib.core import parameters

CLASSES = parameters.SYNTH_CLASSES  # the parameter synth_classes chooses among them
GENERATOR_VERSION = 3  # bump when the drawing changes: it is part of every cache key
KPT_SHAPE, FLIP_IDX = [4, 3], [0, 3, 2, 1]  # pose: top, right, bottom, left (x, y, visibility)


def generate(
    out_dir, n_train: int, n_val: int, imgsz: int, seed: int = 0, classes=None, n_test: int = 0, task: str = "detect"
) -> Path:
    """Write images/{train,val[,test]}, labels/… and data.yaml under out_dir; return data.yaml's path.

    Every split is drawn from a seed of its own. classes: names from CLASSES to draw (default all of them, in
    order); n_test > 0 adds a held-out ``test`` split; task: one of prunelib.tasks.TASKS. Written to a temporary
    folder and renamed, so a folder that exists is complete.
    """
    if task not in tasks.TASKS:
        raise ValueError(f"task {task!r}: the generator draws {', '.join(tasks.TASKS)}")
    names = class_names(classes)
    unknown = [c for c in names if c not in CLASSES]
    if unknown:
        raise ValueError(f"classes: {unknown} are not drawn by the generator; it draws {', '.join(CLASSES)}")
    keypoints = {"kpt_shape": KPT_SHAPE, "flip_idx": FLIP_IDX} if tasks.TASKS[task].synthetic == "keypoints" else {}
    out_dir = Path(out_dir)
    if (out_dir / "data.yaml").is_file():
        return out_dir / "data.yaml"
    files.remove_stale(out_dir.parent)
    try:
        with files.atomic(out_dir) as tmp:
            _write_split_images(tmp, {"train": n_train, "val": n_val, "test": n_test}, imgsz, seed, names, task)
            data = {
                "path": str(out_dir.resolve()),
                "train": "images/train",
                "val": "images/val",
                **({"test": "images/test"} if n_test else {}),
                "nc": len(names),
                "names": dict(enumerate(names)),
                **keypoints,
            }
            (tmp / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
            settings = dict(
                n_train=n_train,
                n_val=n_val,
                n_test=n_test,
                imgsz=imgsz,
                seed=seed,
                classes=names,
                version=GENERATOR_VERSION,
                task=task,
            )
            (tmp / "settings.json").write_text(json.dumps(settings))
    except OSError:  # another process finished the same set first
        if not (out_dir / "data.yaml").is_file():
            raise
    return out_dir / "data.yaml"


def _write_split_images(folder: Path, counts: dict, imgsz: int, seed: int, names, task: str) -> None:
    split_seeds = {"train": seed * 2, "val": seed * 2 + 1, "test": [seed, 2]}  # test: never the seed of another split
    for split, n in counts.items():
        if not n:
            continue
        (folder / "images" / split).mkdir(parents=True)
        (folder / "labels" / split).mkdir(parents=True)
        rng = np.random.default_rng([GENERATOR_VERSION, *np.atleast_1d(split_seeds[split])])
        for i in range(n):
            img, labels = draw_image(rng, imgsz, names, task)
            img.save(folder / "images" / split / f"{i:05d}.png")
            lines = [" ".join([str(c), *(f"{v:.6f}" for v in values)]) for c, *values in labels]
            (folder / "labels" / split / f"{i:05d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def class_names(classes=()) -> tuple:
    """The shapes the set draws: those chosen (the synth_classes parameter), or every one of CLASSES."""
    return tuple(classes or CLASSES)


def cache_key(n_train: int, n_val: int, imgsz: int, seed: int, classes=(), task: str = "detect") -> str:
    settings = dict(n_train=n_train, n_val=n_val, imgsz=imgsz, seed=seed, v=GENERATOR_VERSION)
    extra = {**({"classes": list(classes)} if classes else {}), **({"task": task} if task != "detect" else {})}
    blob = json.dumps({**settings, **extra})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def draw_image(rng: np.random.Generator, size: int, names=CLASSES, task: str = "detect"):
    """One image and its labels [(class index into names, *values normalised)]: detect (xc, yc, w, h), segment
    (polygon x1, y1, ...), pose (xc, yc, w, h, then x, y, visibility per keypoint), obb (x1, y1, ... x4, y4)."""
    img = _background(rng, size)
    draw = ImageDraw.Draw(img)
    _clutter(rng, draw, size, int(rng.integers(1, 5)))
    labels, boxes = [], []
    for _ in range(int(rng.integers(3, 11))):
        cls = int(rng.integers(len(names)))
        s = _object_size(rng, size)
        for _try in range(10):
            x0, y0 = rng.uniform(0, size - s, 2)
            box = (x0, y0, x0 + s, y0 + s)
            if all(_iou(box, b) < 0.35 for b in boxes):  # overlap allowed, never a fully hidden object
                break
        else:
            continue
        if tasks.TASKS[task].synthetic == "boxes":
            _draw_shape(rng, draw, names[cls], box, _contrasting_colour(rng, img, box))
            labels.append((cls, (box[0] + box[2]) / 2 / size, (box[1] + box[3]) / 2 / size, s / size, s / size))
        else:
            labels.append(
                (cls, *_draw_turned_shape(rng, draw, names[cls], box, _contrasting_colour(rng, img, box), task, size))
            )
        boxes.append(box)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.0))))
    arr = np.asarray(img, dtype=np.int16) + rng.normal(0, rng.uniform(3, 12), (size, size, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), labels


def _object_size(rng, size):
    """Log-uniform between ~12 px and half the image: many small objects, some large."""
    lo, hi = np.log(max(12.0, size / 24)), np.log(size / 2)
    return float(np.exp(rng.uniform(lo, hi)))


def _background(rng, size):
    """Low-frequency colour gradient plus a stripe or blotch texture."""
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, size)[None, :, None]
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / size
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    base = c0 * (1 - ramp) + c1 * ramp + 0 * t
    kind = rng.integers(3)
    if kind == 0:  # stripes
        freq = rng.uniform(4, 20)
        base += 18 * np.sin(2 * np.pi * freq * (xx * np.cos(angle + 1) + yy * np.sin(angle + 1)))[..., None]
    elif kind == 1:  # blotches: upsampled noise
        small = rng.normal(0, 25, (size // 16 + 1, size // 16 + 1, 3))
        base += np.kron(small, np.ones((16, 16, 1)))[:size, :size]
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def _clutter(rng, draw, size, n):
    """Unlabeled distractors: lines, arcs, dots and irregular blobs."""
    for _ in range(n):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(4)
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, size, 4))
        if kind == 0:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 4)))
        elif kind == 1:
            box = (min(x0, x1), min(y0, y1), max(x0, x1) + 1, max(y0, y1) + 1)
            draw.arc(box, float(rng.uniform(0, 360)), float(rng.uniform(0, 360)), fill=colour, width=2)
        elif kind == 2:
            for _ in range(int(rng.integers(3, 12))):
                cx, cy = rng.uniform(0, size, 2)
                r = float(rng.uniform(1, 3))
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        else:  # irregular blob: a jagged polygon with 5-9 random radii
            cx, cy = rng.uniform(0, size, 2)
            k = int(rng.integers(5, 10))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = rng.uniform(3, size / 8, k)
            pts = [(float(cx + r * np.cos(a)), float(cy + r * np.sin(a))) for a, r in zip(ang, rad)]
            draw.polygon(pts, fill=colour)


def _draw_shape(rng, draw, name, box, colour):
    x0, y0, x1, y1 = box
    s = x1 - x0
    outline = name.endswith("_outline")
    width = max(1, int(round(s * rng.uniform(0.08, 0.16))))
    fill, line = (None, colour) if outline else (colour, None)
    if name.startswith("square"):
        draw.rectangle(box, fill=fill, outline=line, width=width)
    elif name == "rounded_square":
        draw.rounded_rectangle(box, radius=s * rng.uniform(0.22, 0.35), fill=colour)
    elif name.startswith("circle"):
        draw.ellipse(box, fill=fill, outline=line, width=width)
    elif name.startswith("triangle"):
        pts = [(x0 + s / 2, y0), (x1, y1), (x0, y1)]
        if outline:
            draw.line(pts + [pts[0], pts[1]], fill=colour, width=width, joint="curve")
        else:
            draw.polygon(pts, fill=colour)
    else:  # cross
        t = s * rng.uniform(0.2, 0.32)
        c = (x0 + x1) / 2
        draw.rectangle((c - t / 2, y0, c + t / 2, y1), fill=colour)
        draw.rectangle((x0, (y0 + y1) / 2 - t / 2, x1, (y0 + y1) / 2 + t / 2), fill=colour)


def _draw_turned_shape(rng, draw, name, box, colour, task: str, size: int) -> list[float]:
    """Draw the shape turned by up to 45 degrees inside box; return its label values (see draw_image)."""
    x0, y0, x1, _ = box
    angle = float(rng.uniform(-np.pi / 4, np.pi / 4))
    c, s_ = np.cos(angle), np.sin(angle)
    r = (x1 - x0) / 2 / (abs(c) + abs(s_))  # half-side of the turned square that fits in box
    centre = np.array([x0 + (x1 - x0) / 2, y0 + (x1 - x0) / 2])

    def turned(local):
        return np.asarray(local, dtype=float) @ np.array([[c, s_], [-s_, c]]) + centre

    pts = turned(_outline(rng, name, r))
    if name.endswith("_outline"):
        width = max(1, int(round(2 * r * rng.uniform(0.08, 0.16))))
        draw.line([tuple(p) for p in np.vstack([pts, pts[:2]])], fill=colour, width=width, joint="curve")
    else:
        draw.polygon([tuple(p) for p in pts], fill=colour)
    labels = tasks.TASKS[task].synthetic
    if labels == "polygons":
        return list(pts.ravel() / size)
    if labels == "corners":
        return list(turned([(-r, -r), (r, -r), (r, r), (-r, r)]).ravel() / size)
    sides = [(r, r), (-r, r)] if name.startswith("triangle") else [(r, 0), (-r, 0)]
    kpts = turned([(0, -r), sides[0], (0, r), sides[1]]) / size
    lo, hi = pts.min(0) / size, pts.max(0) / size
    return [*((lo + hi) / 2), *(hi - lo), *np.hstack([kpts, np.full((4, 1), 2.0)]).ravel()]  # visible: 2


def _outline(rng, name, r: float) -> np.ndarray:
    """The shape's outline polygon around (0, 0), half-side r, y down."""
    if name.startswith("square"):
        return np.array([(-r, -r), (r, -r), (r, r), (-r, r)])
    if name == "rounded_square":
        q = 2 * r * rng.uniform(0.22, 0.35)
        arcs = [(r - q, -r + q, -np.pi / 2), (r - q, r - q, 0), (-r + q, r - q, np.pi / 2), (-r + q, -r + q, np.pi)]
        return np.array(
            [
                (x + q * np.cos(a0 + t), y + q * np.sin(a0 + t))
                for x, y, a0 in arcs
                for t in np.linspace(0, np.pi / 2, 5)
            ]
        )
    if name.startswith("circle"):
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if name.startswith("triangle"):
        return np.array([(0, -r), (r, r), (-r, r)])
    h = r * rng.uniform(0.2, 0.32)  # cross: half the bar's thickness
    return np.array(
        [(-h, -r), (h, -r), (h, -h), (r, -h), (r, h), (h, h), (h, r), (-h, r), (-h, h), (-r, h), (-r, -h), (-h, -h)]
    )


def _contrasting_colour(rng, img, box):
    """A random colour, redrawn until it stands out from the mean colour under the box."""
    x0, y0, x1, y1 = (int(v) for v in box)
    patch = np.asarray(img.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))), dtype=float)
    mean = patch.reshape(-1, 3).mean(0)
    for _ in range(20):
        c = rng.integers(0, 256, 3)
        if np.abs(c - mean).sum() > 150:
            break
    return tuple(int(v) for v in c)


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
