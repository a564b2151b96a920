"""What a user would deploy instead of the pruned model, and whether the pruned model beats it.

An alternative is a checkpoint of the same task and classes as the run's model: another scale or architecture the
user trained on the same data (the ``alternatives`` parameter), or the stock model the kit trains at matched latency
(``stock_alternative``, prunelib.runs.stock). The export stage exports, validates and times each like the pruned
model; the unpruned model at a lower precision is the third alternative every run has (its fastest INT8 or BF16
file: quantization or bfloat16 alone, no pruning). A ``Verdict`` says
whether the recommended pruned file dominates one of them: at least as accurate at equal or lower measured latency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from prunelib import tasks
from prunelib.deployment.records import Deployed, holds_precision
from prunelib.errors import UserError
from prunelib.paths import resolve
from prunelib.surgery import checkpoints
from prunelib.training import bootstrap

RESERVED = ("unpruned", "pruned")  # the run's own models' names in the deployment rows
LOWER_PRECISION = "lower precision alone"  # the kind of the unpruned model's fastest INT8 or BF16 file


@dataclass(frozen=True)
class Alternative:
    label: str  # its name in the deployment rows, the plot and the summary
    path: Path
    kind: str  # "yours" (the alternatives parameter) or "stock" (trained by the kit)


def place(runtime: str, precision: str) -> str:
    """Where a file runs, as a verdict's matched_in names it: 'onnxruntime FP32'."""
    return f"{runtime} {precision}"


def label_of(path) -> str:
    """A checkpoint's name in the tables: its file name, or its training folder's for one in a training's weights
    folder (Ultralytics' best.pt and last.pt, the stock model's best-of-last.pt: runs/detect/yolo11s/weights/best.pt
    -> yolo11s)."""
    p = Path(path)
    if p.parent.name == "weights" and p.parent.parent.name:
        return p.parent.parent.name
    return p.stem


def read(paths, task: str, nc: int, kind: str = "yours") -> list[Alternative]:
    """The alternatives, each checked to be a supported checkpoint of the run's task and class count, before
    anything is exported; UserError in one line naming the file and what is expected otherwise."""
    out: list[Alternative] = []
    for given in paths:
        path = resolve(given)
        model = checkpoints.load_model(path, "alternatives")
        found = tasks.of(model).name
        if found != task:
            raise UserError(
                f"alternatives: {given!r} is a {found} model; this run's model is a {task} model: give "
                f"checkpoints of the {task} task"
            )
        if tasks.classes(model) != nc:
            raise UserError(
                f"alternatives: {given!r} predicts {tasks.classes(model)} classes; this run's model predicts {nc}: "
                "give checkpoints trained on the run's data"
            )
        label, n = label_of(path), 2
        while label in RESERVED or label in {a.label for a in out}:
            label, n = f"{label_of(path)}-{n}", n + 1
        out.append(Alternative(label, path, kind))
    return out


@dataclass(frozen=True)
class Verdict:
    """A pruned file against one alternative's file: the recommended file against the alternative's in the same
    runtime and precision (the same conditions), else the alternative's fastest; a stock model, whose width was
    matched to final.pt's latency in one runtime and precision, is compared there (both files run there)."""

    alternative: str
    kind: str  # "yours", "stock" or LOWER_PRECISION
    file: str
    runtime: str
    precision: str
    map50_95: float
    latency_ms: float
    pruned_file: str
    pruned_map50_95: float
    pruned_latency_ms: float
    pruned_runtime: str = ""
    pruned_precision: str = ""
    within_budget: bool = True  # the pruned file is the recommended one (else final.pt's fastest, outside the budget)
    matched_in: str = ""  # where a stock model's latency was matched to final.pt's ('onnxruntime FP32'; '' = n/a)
    # the pruned file's mAP50-95 minus the alternative's: its 95 % interval over resampled val images (None: unknown)
    difference_low: float | None = None
    difference_high: float | None = None

    @property
    def within_noise(self) -> bool:
        """Could the two be equally accurate: does the interval of their mAP50-95 difference hold 0?"""
        if self.difference_low is None or self.difference_high is None:
            return False
        return self.difference_low <= 0 <= self.difference_high

    @property
    def matched(self) -> bool:
        """Compared where its latency was matched (or never matched: a user's checkpoint, a lower precision)."""
        return not self.matched_in or self.matched_in == place(self.pruned_runtime, self.pruned_precision)

    @property
    def faster(self) -> float:
        """How many times faster the pruned file runs than the alternative's (below 1: slower)."""
        return self.latency_ms / self.pruned_latency_ms

    @property
    def more_accurate(self) -> float:
        """The pruned file's mAP50-95 minus the alternative's (negative: less accurate)."""
        return round(self.pruned_map50_95 - self.map50_95, 4)

    @property
    def dominates(self) -> bool:
        """At least as accurate at equal or lower latency."""
        return self.more_accurate >= 0 and self.pruned_latency_ms <= self.latency_ms

    @property
    def dominated(self) -> bool:
        """The alternative is at least as accurate at equal or lower latency, and better in one of them."""
        return self.more_accurate <= 0 and self.latency_ms <= self.pruned_latency_ms and not self.dominates

    @property
    def outcome(self) -> str:
        """'beats', 'loses to' or 'trades with' (neither is both faster and as accurate); 'is not matched with' when a
        stock model's latency was matched in another runtime or precision than the one compared: no verdict; 'is as
        accurate, within noise, as' when the interval of the mAP50-95 difference holds 0 (the speed then decides)."""
        if not self.matched:
            return "is not matched with"
        if self.within_noise:
            return "is as accurate, within noise, as"
        return "beats" if self.dominates else "loses to" if self.dominated else "trades with"

    def figures(self, metric: str = "mAP50-95") -> str:
        """How the two differ: '1.10x faster, mAP50-95 0.620 against 0.600'."""
        speed = f"{self.faster:.2f}x faster" if self.faster >= 1 else f"{1 / self.faster:.2f}x slower"
        return f"{speed}, {metric} {self.pruned_map50_95:.3f} against {self.map50_95:.3f}"

    def sentence(self, metric: str = "mAP50-95") -> str:
        """One sentence for the summary."""
        kind = "" if self.kind == self.alternative else f"{self.kind}, "
        name = f"{self.alternative} ({kind}{self.runtime} {self.precision})"
        tail = "; neither is both faster and as accurate" if self.outcome == "trades with" else ""
        if not self.matched:
            return (
                f"**No verdict on {name}**: {self.figures(metric)}; its width was matched to final.pt's latency in "
                f"{self.matched_in}, not in {self.pruned_runtime} {self.pruned_precision} where they are compared "
                "(set latency_runtime and latency_precision to match it there)."
            )
        if self.within_noise:
            tail += (
                f" (the difference, {self.difference_low:+.3f} to {self.difference_high:+.3f} over resampled val "
                "images, holds 0)"
            )
        if self.matched_in:
            tail += f" (final.pt against it in {self.matched_in}, where its width was matched)"
        if not self.within_budget:
            tail += f" (final.pt's file `{self.pruned_file}`, outside the run's mAP budget)"
        return f"**{self.outcome.capitalize()} {name}**: {self.figures(metric)}{tail}."

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, record: dict) -> Verdict:
        return cls(**record)


def verdicts(
    rows: list[Deployed],
    best: Deployed | None,
    kinds: dict[str, str],
    max_precision_drop: float,
    matched_in: dict[str, str] | None = None,
) -> list[Verdict]:
    """The recommended pruned file (best) against each alternative (kinds: label -> kind) and against the unpruned
    model at a lower precision alone (its fastest INT8 or BF16 file that keeps its precision, within
    max_precision_drop of its float file: records.holds_precision; named 'unpruned INT8' or 'unpruned BF16'). With
    no recommendation (no pruned file within the run's budget), each is judged against final.pt's fastest file that
    keeps its precision, said to be outside the budget: a user who asked for alternatives hears of every one; []
    when final.pt has no such file. matched_in: {label: 'runtime precision'} where an alternative's latency was
    matched to final.pt's (the stock model): the verdict is drawn there, final.pt's file against the alternative's,
    both run in that runtime and precision; where either has no file there, it is compared against the recommended
    file and no verdict is drawn (Verdict.matched)."""
    within = best is not None
    if best is None:
        kept = [r for r in rows if r.model == "pruned" and holds_precision(r, rows, max_precision_drop)]
        if not kept:
            return []
        best = min(kept, key=lambda r: r.latency_ms)
    matched_in = matched_in or {}
    chosen: list[tuple[str, str, Deployed, Deployed]] = []
    for label, kind in kinds.items():
        own = [r for r in rows if r.model == label]
        there = _in(own, matched_in.get(label, ""))
        pruned = _in([r for r in rows if r.model == "pruned"], matched_in.get(label, ""))
        if there and pruned:  # compared where its latency was matched: both files in that runtime and precision
            chosen.append((label, kind, there, pruned))
            continue
        same = [r for r in own if r.kind == best.kind]
        if own:
            chosen.append((label, kind, min(same or own, key=lambda r: r.latency_ms), best))
    lower = [
        r for r in rows if r.model == "unpruned" and r.lower_precision and holds_precision(r, rows, max_precision_drop)
    ]
    if lower:
        fastest = min(lower, key=lambda r: r.latency_ms)
        chosen.append((f"unpruned {fastest.precision}", LOWER_PRECISION, fastest, best))
    return [
        Verdict(
            label,
            kind,
            r.file,
            r.runtime,
            r.precision,
            r.map50_95,
            r.latency_ms,
            p.file,
            p.map50_95,
            p.latency_ms,
            p.runtime,
            p.precision,
            within,
            matched_in.get(label, ""),
        )
        for label, kind, r, p in chosen
    ]


def _in(rows: list[Deployed], where: str) -> Deployed | None:
    """The fastest of rows run in where ('onnxruntime FP32'; None when where is '' or no row ran there)."""
    there = [r for r in rows if where and place(r.runtime, r.precision) == where]
    return min(there, key=lambda r: r.latency_ms) if there else None


# resamples of each verdict's interval: two of Ultralytics' mAP computations each (about 0.07 s for 60 images of 147
# classes, much less for a few classes), so a run with a few verdicts spends seconds to a minute on them
NOISE_RESAMPLES = 300


def with_noise(found: list[Verdict], rows: list[Deployed], hits: dict) -> list[Verdict]:
    """Each verdict with the 95 % interval of its mAP50-95 difference: a paired bootstrap over the val images both
    files were validated on (hits: {file validated (Deployed.map_of): what the validator recorded per image},
    prunelib.training.bootstrap); unchanged where either file's hits are missing."""
    validated = {(r.file, r.runtime, r.precision): r.map_of for r in rows}
    out = []
    for v in found:
        mine = hits.get(validated.get((v.pruned_file, v.pruned_runtime, v.pruned_precision)))
        theirs = hits.get(validated.get((v.file, v.runtime, v.precision)))
        if mine is None or theirs is None:
            out.append(v)
            continue
        interval = bootstrap.difference(mine, theirs, NOISE_RESAMPLES)
        out.append(replace(v, difference_low=interval.low, difference_high=interval.high))
    return out
