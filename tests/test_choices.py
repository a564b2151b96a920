"""The choices the kit makes from measured times, fed fixed times with known answers: the INT8 ONNX form, the
speed-ups of the latency table, the file it recommends. The pipeline tests check that times were measured and
recorded; whether the choice made from them is right is checked here, where the right answer is known."""

import pytest

from prunelib.deployment import export
from prunelib.deployment.records import Recommended
from conftest import deployed as _deployed
from conftest import precision_drop
from prunelib.runs.stages import recommend

TOLERANCE = precision_drop()  # a lower precision's, against its FP32 file


def test_the_fastest_int8_form_is_the_one_with_the_lowest_median_and_each_is_compared_block_by_block():
    blocks = {
        "u8s8": [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]],
        "s8s8": [[1.0, 1.0, 1.0], [1.2, 1.2, 1.2]],
        "qoperator-u8s8": [[3.0, 3.0, 3.0], [1.5, 1.5, 1.5]],
    }
    errors = [{"form": "s8s8-per-channel", "label": "x", "error": "NotImplemented: no kernel"}]
    got = export.compare_forms(blocks, "u8s8", errors)
    rows = {r["form"]: r for r in got["forms"]}
    assert got["form"] == "s8s8" and got["default"] == "u8s8"
    assert rows["s8s8"]["ms"] == pytest.approx(1.1)  # the median of all six runs
    assert rows["s8s8"]["vs_default"] == pytest.approx(1.833, abs=1e-3)  # median of 2/1 and 2/1.2
    assert (rows["s8s8"]["low"], rows["s8s8"]["high"]) == (pytest.approx(1.667, abs=1e-3), 2.0)
    assert rows["qoperator-u8s8"]["vs_default"] == pytest.approx((2 / 3 + 2 / 1.5) / 2, abs=1e-3)
    assert rows["s8s8-per-channel"] == errors[0] and "ms" not in rows["s8s8-per-channel"]
    # a block that drifts slow for every form alike does not change the winner
    drift = {k: [b, [t * 3 for t in b]] for k, (b, _) in blocks.items()}
    assert export.compare_forms(drift, "u8s8")["form"] == "s8s8"


def test_without_the_cpu_flags_form_no_form_is_compared_to_it():
    got = export.compare_forms({"s8s8": [[1.0]], "u8s8-reduce-range": [[0.5]]}, "u8s8")
    assert got["form"] == "u8s8-reduce-range" and all("vs_default" not in r for r in got["forms"])


def _latency(model, runtime, precision, ms, macs):
    return {"model": model, "runtime": runtime, "precision": precision, "latency_ms": ms, "macs": macs}


def test_speed_ups_are_against_the_unpruned_model_in_the_same_runtime_and_precision():
    rows = [
        _latency("unpruned", "onnxruntime", "FP32", 10.0, 800),
        _latency("unpruned", "openvino", "INT8", 4.0, 800),
        _latency("pruned", "onnxruntime", "FP32", 5.0, 200),
        _latency("pruned", "openvino", "INT8", 2.5, 200),
        _latency("pruned", "openvino", "BF16", 3.0, 200),  # the unpruned model has no openvino row at BF16 or FP32
        _latency("small", "onnxruntime", "FP32", 4.0, 100),
    ]
    got = {(r["model"], r["runtime"], r["precision"]): r for r in export.with_speedups(rows, "unpruned")}
    assert got[("pruned", "onnxruntime", "FP32")]["latency_speedup"] == 2.0
    assert got[("pruned", "onnxruntime", "FP32")]["macs_speedup"] == 4.0
    assert got[("pruned", "openvino", "INT8")]["latency_speedup"] == 1.6  # 4.0 / 2.5: pruning's share at INT8
    assert got[("pruned", "openvino", "INT8")]["vs_onnxruntime_fp32"] == 4.0  # 10 / 2.5: all of it
    assert got[("small", "onnxruntime", "FP32")]["latency_speedup"] == 2.5
    assert ("pruned", "openvino", "BF16") not in got  # nothing to compare it with in its runtime


DEPLOYED = [
    _deployed("unpruned", "onnxruntime", "FP32", 12.0, 0.70, 1.0),
    _deployed("unpruned", "openvino", "FP32", 8.0, 0.70, 1.5),
    _deployed("pruned", "onnxruntime", "FP32", 6.0, 0.60, 2.0),
    _deployed("pruned", "openvino", "FP32", 4.0, 0.60, 3.0),
    _deployed("pruned", "openvino", "INT8", 2.0, 0.30, 6.0),  # fastest, but 0.4 below the unpruned model
    _deployed("small", "onnxruntime", "FP32", 1.0, 0.65, 12.0),  # an alternative: never recommended
]
TIMED = [{k: getattr(r, k) for k in ("model", "runtime", "precision", "latency_ms")} for r in DEPLOYED]


def test_the_recommended_file_is_the_pruned_models_fastest_within_the_budget_its_speed_up_split():
    best = recommend(DEPLOYED, TIMED, unpruned_map=0.70, max_drop=0.2, max_precision_drop=TOLERANCE)
    assert isinstance(best, Recommended) and best.file == "pruned.openvino.FP32"
    assert Recommended.of(best.record()) == best  # as export.json holds it
    assert best.from_pruning == 2.0  # the unpruned model in openvino FP32 (8 ms) over the pruned one (4 ms)
    assert best.pruning_precision == "FP32"
    assert best.from_runtime_and_precision == 1.5  # the rest of 3.0x
    assert recommend(DEPLOYED, TIMED, 0.95, 0.2, TOLERANCE) is None  # nothing within the budget


def test_a_lower_precision_is_judged_against_its_own_float_file_not_the_pruning_budget():
    # the INT8 file lost 0.30 against final.pt's float file: a wide budget (0.5 below the unpruned model) must not
    # let it in, as it did when a user-style run with --max-map-drop 0.9 got an INT8 file of 0.044 recommended
    assert recommend(DEPLOYED, TIMED, 0.70, 0.5, TOLERANCE).file == "pruned.openvino.FP32"
    assert recommend(DEPLOYED, TIMED, 0.70, 0.5, max_precision_drop=0.3).file == "pruned.openvino.INT8"
    near = [*DEPLOYED[:4], _deployed("pruned", "openvino", "INT8", 2.0, 0.595, 6.0)]  # 0.005 below its FP32 file
    assert recommend(near, TIMED, 0.70, 0.2, TOLERANCE).file == "pruned.openvino.INT8"
    assert recommend(near, TIMED, 0.70, 0.2, max_precision_drop=0.001).file == "pruned.openvino.FP32"
    # a float file over the budget is not rescued by a lower precision of it
    assert recommend(near, TIMED, 0.90, 0.2, TOLERANCE) is None


def test_a_precision_the_unpruned_model_was_not_timed_in_splits_against_its_fp32_file():
    best = recommend(DEPLOYED, TIMED, unpruned_map=0.70, max_drop=0.5, max_precision_drop=0.3)
    assert best.file == "pruned.openvino.INT8" and best.pruning_precision == "FP32"
    assert best.from_pruning == 2.0  # the two models' FP32 files in openvino: 8 ms over 4 ms
    assert best.from_runtime_and_precision == 3.0  # the rest of 6.0x: openvino at INT8
