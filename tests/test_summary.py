"""The report's summary when no cut held: what was tried, what it kept, what to ship instead; fed a fixed ledger and
export, so the words are checked where the right answer is known (prunelib.presentation.report)."""

from conftest import deployed as _row
from conftest import precision_drop
from prunelib.core.ledger import PRUNE, SPARSE, Step
from prunelib.deployment.alternatives import LOWER_PRECISION, Verdict
from prunelib.presentation import report
from prunelib.runs.stages import recommend

UNPRUNED = {"map50_95": 0.942, "map50": 0.99, "macs": 8.0e9, "params": 3.0e6, "task": "detect", "names": {}}


def _step(within: bool, kind: str = PRUNE, step: int = 1) -> Step:
    return Step(
        step=step,
        kind=kind,
        step_ratio=0.4,
        channels=600,
        channel_ratio=0.4,
        macs=2.857e9,
        params=1.2e6,
        speedup=2.8,
        epochs=5,
        pruned_map50_95=0.0,
        map50_95=0.05 if not within else 0.9,
        map50=0.1,
        within_budget=within,
        pruned_map50=0.0,
        map_drop=0.892,
        stop="map_drop" if not within else "target_reached",
        checkpoint="x",
        latency_ms=5.0,
        unpruned_latency_ms=10.25,
        latency_speedup=2.05,
        latency_low=2.0,
        latency_high=2.1,
        latency_runtime="onnxruntime",
        latency_precision="FP32",
    )


# final.pt is the unpruned model: the "pruned" rows are its files
ROWS = [
    _row("unpruned", "onnxruntime", "FP32", 84.0, 0.959, 1.0),
    _row("unpruned", "openvino", "BF16", 30.0, 0.958, 2.8),
    _row("unpruned", "openvino", "INT8", 20.0, 0.30, 4.2),
    _row("pruned", "onnxruntime", "FP32", 84.0, 0.959, 1.0),
    _row("pruned", "openvino", "BF16", 30.0, 0.958, 2.8),
    _row("pruned", "openvino", "INT8", 20.0, 0.30, 4.2),  # collapsed: never the file to ship
]
TOLERANCE = precision_drop()
TIMED = [{k: getattr(r, k) for k in ("model", "runtime", "precision", "latency_ms")} for r in ROWS]


def _export(rows=ROWS) -> dict:
    best = recommend(rows, TIMED, UNPRUNED["map50_95"], 0.2, TOLERANCE)
    lower = Verdict("unpruned BF16", LOWER_PRECISION, "f", "openvino", "BF16", 0.958, 30.0, "f", 0.958, 30.0)
    mine = Verdict("yolo11s", "yours", "g", "openvino", "BF16", 0.97, 60.0, "f", 0.958, 30.0)
    return {
        "deployment": [r.record() for r in rows],
        "recommended": best.record() if best else None,
        "alternatives": [lower.record(), mine.record()],
    }


def _summary(ledger, export) -> str:
    (text,) = report._summary(UNPRUNED, ledger, None, None, export, None, max_map_drop=0.2)
    return text


def test_when_no_cut_held_the_summary_says_what_was_tried_what_it_kept_and_what_to_ship():
    text = _summary([_step(within=False)], _export())
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert lines[0].startswith("- **No cut held: final.pt is the unpruned model.**")
    assert "2.80x fewer MACs, 2.05x faster measured (onnxruntime FP32, batch 1)" in lines[0]
    assert "0.942 -> 0.000 as cut (0.0%), 0.050 after 5 epochs of fine-tuning (5.3%)" in lines[1]
    assert "max_map_drop" in lines[1] and "0.2" in lines[1]
    assert lines[2].startswith("- **Ship instead** `pruned.openvino.BF16` (openvino BF16)")  # not the INT8 file
    assert "2.80x faster" in lines[2] and "0.958" in lines[2]
    # no 'final.pt 1.00x fewer MACs, 100% kept', no 'lost most', no verdict of the unpruned file against itself
    assert "100.0% kept" not in text and "Lost most" not in text and "unpruned BF16" not in text
    assert "yolo11s" in lines[3]  # the user's alternatives keep their verdicts
    assert len(lines) == 4


def test_when_no_lower_precision_holds_ship_the_unpruned_model_as_it_is():
    floats = [r for r in ROWS if r.precision != "BF16"]
    text = _summary([_step(within=False)], _export(floats))
    assert "- **Ship instead** the unpruned model as it is" in text


def test_a_sparsity_trained_model_within_budget_is_no_cut_and_a_held_cut_reads_as_before():
    sparse = _step(within=True, kind=SPARSE, step=0)
    assert report.failed_cut([sparse, _step(within=False)]) is not None
    held = _summary([_step(within=True)], _export())
    assert held.startswith("## Summary\n\n- **final.pt** (step 1): 2.80x fewer MACs") and "No cut held" not in held
    assert report.failed_cut([]) is None
