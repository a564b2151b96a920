"""The export stage's records: one row per deployed file and the recommendation, each a frozen dataclass that knows
its display titles and formats (prunelib.core.records), written to export.json as plain fields and read back by ``of``.

A field shown in tables carries its title and format in its metadata; ``{threads}`` and ``{batch}`` in a title are
filled by whoever renders it (the run's timing threads, the throughput batch). Fields without a title (which file was
validated, the runtime settings) are kept in export.json for people who run the file, not shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prunelib.core.records import Record, shown


@dataclass(frozen=True)
class Deployed(Record):
    """An exported file of a model (the unpruned one, the pruned one, an alternative) as deployed: its accuracy in
    the precision its runtime ran it in, its latency and throughput, its speed-ups, its size."""

    model: str = shown("model")
    runtime: str = shown("runtime")
    precision: str = shown("precision")
    file: str = shown("file", "`{}`")
    map50_95: float = shown("mAP50-95", "{:.3f}")
    latency_ms: float = shown("ms ({threads})", "{:.2f}")
    all_cores_ms: float = shown("ms (all cores)", "{:.2f}")
    throughput_img_s: float | None = shown("images/s (batch {batch})", "{:.0f}")
    speedup_same_runtime: float | None = shown("vs unpruned, same runtime", "{:.2f}x")
    speedup_vs_onnxruntime_fp32: float | None = shown("vs unpruned in onnxruntime FP32", "{:.2f}x")
    file_mb: float = shown("size (MB)", "{:.1f}")
    map_of: str = ""  # the file whose validation gave map50_95 (an IR at FP32 takes its ONNX FP32 file's)
    settings: dict = field(default_factory=dict)  # what the runtime was given: run the file the same way

    @property
    def kind(self) -> tuple[str, str]:
        """(runtime, precision): how it runs."""
        return self.runtime, self.precision

    @property
    def lower_precision(self) -> bool:
        """Does it run below FP32 (INT8, BF16, FP16)?"""
        return self.precision != "FP32"


def float_score(rows: list[Deployed], model: str) -> float | None:
    """The mAP50-95 of model's float file (FP32; its best, should two runtimes differ in the last digit), or None
    when it has none."""
    scores = [r.map50_95 for r in rows if r.model == model and not r.lower_precision]
    return max(scores) if scores else None


def holds_precision(row: Deployed, rows: list[Deployed], tolerance: float) -> bool:
    """Does row keep its model's accuracy? A float file does; a lower-precision one when its mAP50-95 is within
    tolerance (max_precision_drop) of its own model's float file: a precision is judged against the same model at
    FP32, never against the run's pruning budget, where an INT8 file that collapsed could still fit."""
    if not row.lower_precision:
        return True
    reference = float_score(rows, row.model)
    return reference is not None and reference - row.map50_95 <= tolerance + 1e-9


@dataclass(frozen=True)
class Recommended(Deployed):
    """The file to deploy: the pruned model's fastest within the mAP budget, its speed-up over the unpruned model in
    onnxruntime FP32 split into what pruning bought (the unpruned over the pruned model in the same runtime, at
    pruning_precision) and what the runtime and precision bought."""

    from_pruning: float | None = None
    pruning_precision: str = "FP32"
    from_runtime_and_precision: float | None = None

    @property
    def label(self) -> str:
        """Its column in detections.png: 'openvino INT8'."""
        return f"{self.runtime} {self.precision}"
