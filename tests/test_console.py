"""Quiet by default: the libraries' chatter and known harmless warnings go to the run's log file, not the console;
--verbose (PRUNELIB_VERBOSE) shows them; the kit's own lines and other warnings always reach the console."""

from __future__ import annotations

import logging

import pytest

import ultralytics  # noqa: F401  (its logger as it is set up in a run)

from prunelib import console


@pytest.fixture
def log_file(tmp_path, monkeypatch):
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    path = tmp_path / "log.txt"
    console.log_to(path)
    yield path
    console.log_to(None)


def test_chatter_goes_to_the_log_file_not_the_console(log_file, capfd):
    logger = logging.getLogger(console.LOGGER_NAME)
    with console.captured():
        logger.info("ONNX: starting export with onnx")
        print("onnxslim: a table of operators")
        logging.warning("Please consider pre-processing before quantization.")  # onnxruntime's, on the root logger
    print("Step 1/1: the kit's own line")
    out = capfd.readouterr()
    assert "ONNX: starting export" not in out.out + out.err and "onnxslim" not in out.out
    assert "Step 1/1" in out.out
    kept = log_file.read_text()
    assert "ONNX: starting export with onnx" in kept and "onnxslim: a table of operators" in kept
    assert "Please consider pre-processing" in kept and "pre-processing" not in out.out + out.err


def test_harmless_warnings_are_kept_off_the_console_and_others_are_not(log_file):
    logger, shown = logging.getLogger(console.LOGGER_NAME), []
    handler = logging.Handler()
    handler.emit = lambda record: shown.append(record.getMessage())  # what Ultralytics' console handler would print
    logger.addHandler(handler)
    try:
        logger.warning("setting 'requires_grad=True' for frozen layer 'model.0.conv.weight'.")
        logger.warning("a warning the kit does not know")
    finally:
        logger.removeHandler(handler)
    assert len(shown) == 1 and shown[0].endswith("a warning the kit does not know")
    assert "frozen layer 'model.0.conv.weight'" in log_file.read_text()


def test_verbose_shows_everything(log_file, capfd, monkeypatch):
    monkeypatch.setenv(console.VERBOSE_ENV, "1")
    with console.captured():
        print("OpenVINO: export success")
    assert "OpenVINO: export success" in capfd.readouterr().out
    assert not log_file.is_file() or "OpenVINO" not in log_file.read_text()
