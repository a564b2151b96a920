"""The benches' own bookkeeping (bench/common.py), where a silent mistake would put a wrong figure in a table: a
control (the unpruned model fine-tuned as the pruned one was) is reused only for the same settings."""

import dataclasses
import sys

import pytest

from conftest import ROOT
from prunelib.core import parameters
from prunelib.core.settings import Training

sys.path.insert(0, str(ROOT / "bench"))
import common  # noqa: E402  (bench/common.py)


@pytest.fixture
def files(tmp_path):
    (model := tmp_path / "unpruned.pt").write_bytes(b"weights")
    (data := tmp_path / "data.yaml").write_text("names: [a]\n")
    return model, data, tmp_path


def test_a_control_is_keyed_by_every_setting_that_changes_it(files):
    model, data, tmp = files
    training = Training.of(parameters.load())
    key = common.control_key(training, 10, model, data)
    assert key == common.control_key(training, 10, model, data)  # the same control is found again
    changed = {
        "freeze_bn_stats": True,
        "optimizer": "AdamW",
        "lr0": 0.002,
        "distill_weight": 1.0,
        "imgsz": 640,
        "seed": 1,
        "batch": 8,
    }
    for field, value in changed.items():
        assert common.control_key(dataclasses.replace(training, **{field: value}), 10, model, data) != key, field
    assert common.control_key(training, 5, model, data) != key
    (other := tmp / "other.pt").write_bytes(b"other weights")
    assert common.control_key(training, 10, other, data) != key  # another model
    (data2 := tmp / "data2.yaml").write_text("names: [a]\n")
    assert common.control_key(training, 10, model, data2) != key  # another data set
    assert common.control_key(training, 10, model, data, holdout=data2) != key  # held-out images scored too
