"""The ledger (``ledger.jsonl`` of a run): one ``Step`` per prune step, per sparsity training before the first and
per final fine-tune after the last, appended as each finishes. A ``Step`` knows how the per-step table shows it
(``cells``); ``final_step`` is the rule for what ``final.pt`` is: the last row within the mAP budget; ``outcome``
is the rule for what a run achieved."""

from __future__ import annotations

from dataclasses import dataclass, fields

from prunelib.core.records import Record, shown

SPARSE, FINAL = "sparse", "final"  # ledger 'kind' and folder of sparsity training and of the final fine-tune
PRUNE = "prune"  # the kind of a prune step's row


def _giga(v: float) -> float:
    return round(v / 1e9, 3)


def _mega(v: float) -> float:
    return round(v / 1e6, 3)


def _yes_no(v: bool) -> str:
    return "yes" if v else "no"


@dataclass(frozen=True)
class Step(Record):
    """A row of the ledger: what a step cut (channels, MACs, parameters), how fast it ran where timed, its mAP after
    the cut and after fine-tuning, whether it is within the mAP budget, why the loop stopped there, and where the
    time went (seconds_*)."""

    step: int = shown("step")  # shown as its label: the step number, 'sparse' or 'final'
    kind: str  # PRUNE, SPARSE or FINAL
    step_ratio: float  # the share of the remaining prunable channels this step removed
    channels: int  # prunable channels left
    channel_ratio: float = shown("pruned channels", "{:.1%}")  # of the unpruned model's prunable channels
    macs: int = shown("GMACs", _giga)
    params: int = shown("params (M)", _mega)
    speedup: float = shown("MACs speed-up", "{:.2f}x")
    epochs: int = shown("epochs")
    pruned_map50_95: float = shown("mAP50-95 pruned", "{:.4f}")  # after the cut, before fine-tuning
    map50_95: float = shown("mAP50-95 recovered", "{:.4f}")
    map50: float = shown("mAP50 recovered", "{:.4f}")
    within_budget: bool = shown("within budget", _yes_no)
    pruned_map50: float
    map_drop: float  # unpruned - recovered mAP50-95
    stop: str | None  # why the loop stopped after this row (policy.stop_reason), None while it goes on
    checkpoint: str  # the step's fine-tuned weights, relative to the runs folder
    # a latency goal's timing of the step against the unpruned model (export.Timer); None when not timed
    latency_ms: float | None = None
    unpruned_latency_ms: float | None = None
    latency_speedup: float | None = None
    latency_low: float | None = None  # the slowest and fastest of its timed blocks
    latency_high: float | None = None
    latency_runtime: str | None = None
    latency_precision: str | None = None
    # the step that must reach a latency goal: where its timed trials landed against the band above the goal
    # ('2.04x in the band 2.00-2.10x (3 trials)'; 'above the band' when no cut lay in it), None otherwise
    landing: str | None = None
    # the repair of the cut kept (fold, recalibrate, none: loop.repaired) and each measured one's mAP50-95 as cut
    compensation: str | None = None
    pruned_fold_map50_95: float | None = None
    pruned_recalibrate_map50_95: float | None = None
    pruned_none_map50_95: float | None = None
    # sparsity training: the weaker half of each group's share of the stronger half's importance, before and after
    weak_share_before: float | None = None
    weak_share: float | None = None
    seconds_total: float = 0.0
    seconds_prune: float = 0.0
    seconds_recalibrate: float = 0.0
    seconds_measure: float = 0.0
    seconds_validate: float = 0.0
    seconds_finetune: float = 0.0

    @property
    def label(self) -> str:
        """'3' for a prune step; 'sparse' and 'final' for sparsity training and the final fine-tune."""
        return str(self.step) if self.kind == PRUNE else self.kind

    @property
    def timed(self) -> bool:
        return self.latency_speedup is not None

    @property
    def seconds(self) -> dict[str, float]:
        """Where the step's time went: {'total': s, 'prune': s, ...}."""
        return {
            f.name.removeprefix("seconds_"): getattr(self, f.name)
            for f in fields(self)
            if f.name.startswith("seconds_")
        }

    def cells(self) -> dict:
        """The row of the per-step table: {title: cell} of each shown field, in order."""
        out = {}
        for name, title, fmt in self.columns():
            v = self.label if name == "step" else getattr(self, name)
            out[title] = fmt(v) if callable(fmt) else fmt.format(v)
        return out

    def record(self) -> dict:
        """As ledger.jsonl holds it: what was not measured (None) is left out."""
        return {k: v for k, v in super().record().items() if v is not None or k == "stop"}


def prune_steps(ledger: list[Step]) -> list[Step]:
    """The ledger's prune steps (without sparsity training and the final fine-tune)."""
    return [r for r in ledger if r.kind == PRUNE]


def final_step(ledger: list[Step]) -> Step | None:
    """The record final.pt comes from: the last row (step or final fine-tune) within the mAP budget (None: the
    unpruned model)."""
    ok = [r for r in ledger if r.within_budget]
    return ok[-1] if ok else None


def outcome(unpruned: dict, final: Step | None) -> dict:
    """What a run achieved, the one rule for every table: final (a ledger row; None: no step within budget, so the
    unpruned model) against the unpruned model: MACs speed-up, parameters kept, the metric's change, and retention
    (final / unpruned mAP50-95; None when the unpruned model scores 0); and the final model's own figures."""
    keys = ("macs", "params", "map50_95", "map50")
    macs, n, score, score50 = (getattr(final, k) for k in keys) if final else (unpruned[k] for k in keys)
    return {
        "macs": macs,
        "params": n,
        "map50_95": score,
        "map50": score50,
        "macs_speedup": unpruned["macs"] / macs,
        "params_share": n / unpruned["params"],
        "map_change": score - unpruned["map50_95"],
        "retention": score / unpruned["map50_95"] if unpruned["map50_95"] else None,
    }
