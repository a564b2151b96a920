"""Exported models are compared with torch by one rule, and OpenVINO runs at the precision the kit asks for and says
what it ran: a CPU with BF16 (OpenVINO's default there) must neither fail the suite nor get BF16 rows labelled FP32."""

from pathlib import Path

import numpy as np
import pytest
import torch

from prunelib import machine
from prunelib.deployment import export



@pytest.fixture(scope="module")
def openvino_ir(tmp_path_factory):
    """A small convolutional model as an OpenVINO IR, with an image-like input and torch's output for it."""
    import openvino as ov

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(16, 8, 1)).eval()
    x = torch.rand(1, 3, 32, 32)
    folder = tmp_path_factory.mktemp("ir") / "m_openvino_model"
    ov.save_model(ov.convert_model(model, example_input=x), str(folder / "m.xml"))
    with torch.inference_mode():
        return folder, x, model(x).numpy()


def test_parity_is_relative_to_each_values_scale():
    ref = np.array([300.0, 0.5, 0.0])
    assert export.parity_error(ref, ref + [0.2, 0, 0]) == pytest.approx(0.2 / 300)  # 0.2 px of 300: within
    assert export.parity_error(ref, ref + [0, 2e-3, 0]) == pytest.approx(2e-3)  # a score off by 0.002: beyond
    assert export.parity_error(ref, ref + [0, 0, 5e-4]) <= export.PARITY_TOL < export.parity_error(ref, ref + [1, 0, 0])


def test_openvino_at_fp32_matches_torch_and_says_fp32(openvino_ir):
    folder, x, ref = openvino_ir
    run = export.runner(folder, "openvino", n_threads=1)
    assert run.precision == "FP32"
    assert export.openvino_precision(export.openvino_model(folder, "FP32", 1)) == "FP32"
    assert export.parity_error(ref, run(x)) <= export.PARITY_TOL


def test_the_runtime_settings_shown_are_those_the_runtimes_got(openvino_ir, tmp_path):
    """The deployment table's settings: what OpenVINO's compiled model and onnxruntime's session report back."""
    folder, x, _ = openvino_ir
    shown = export.runtime_settings("openvino", "FP32", 1)
    compiled = export.openvino_model(folder, "FP32", 1)
    assert shown == {"device": "CPU", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1 and export.openvino_precision(compiled) == "FP32"
    assert export.runtime_settings("openvino", "INT8", 2)["INFERENCE_PRECISION_HINT"] == "f32"  # NNCF's IR
    onnx_file = tmp_path / "m.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3).eval(), torch.rand(1, 3, 8, 8), str(onnx_file), dynamo=False)
    sess, shown = export.session(onnx_file, 2), export.runtime_settings("onnx", n_threads=2)
    assert sess.get_providers() == shown["providers"] and shown["intra_op_num_threads"] == 2
    assert sess.get_session_options().intra_op_num_threads == 2
    with pytest.raises(ValueError, match="OpenVINO precision 'INT4'"):
        export.runtime_settings("openvino", "INT4")


def label_agrees(run, fp32, x) -> bool:
    """The oracle of a precision label, by another route than the label's: a run labelled BF16 gives other numbers
    than the same IR at FP32 (BF16 keeps 8 bits of mantissa), one labelled FP32 the same numbers."""
    return (run.precision == "BF16") == bool(np.abs(run(x) - fp32(x)).max() > 0)


def test_a_bf16_request_is_labelled_by_what_ran(openvino_ir):
    """On every CPU: the label says what ran, BF16 only where it ran (the numbers tell)."""
    folder, x, _ = openvino_ir
    run = export.runner(folder, "openvino", n_threads=1, precision="BF16")
    fp32 = export.runner(folder, "openvino", n_threads=1)
    assert fp32.precision == "FP32" and label_agrees(run, fp32, x)
    lying = export.runner(folder, "openvino", n_threads=1, precision=run.precision)
    lying.precision = "FP32" if run.precision == "BF16" else "BF16"  # a wrong label is caught
    assert not label_agrees(lying, fp32, x)


NO_BF16 = f"this CPU has no BF16 in OpenVINO: {machine.describe()}"


@pytest.mark.skipif(not export.openvino_offers("BF16"), reason=NO_BF16)
def test_bf16_where_the_cpu_has_it_is_bf16_and_differs_from_fp32(openvino_ir):
    folder, x, ref = openvino_ir
    run = export.runner(folder, "openvino", n_threads=1, precision="BF16")
    fp32 = export.runner(folder, "openvino", n_threads=1)
    assert run.precision == "BF16" != fp32.precision
    assert np.abs(run(x) - fp32(x)).max() > 0  # it really ran another precision: BF16's 8-bit mantissa rounds


def test_an_unknown_precision_is_refused(openvino_ir):
    with pytest.raises(ValueError, match="'INT4'.*FP32, BF16, FP16"):
        export.openvino_model(openvino_ir[0], "INT4")


def test_every_openvino_compile_names_its_precision(openvino_ir, monkeypatch):
    """Every compile the kit makes to run a model passes INFERENCE_PRECISION_HINT (seen by a spy on OpenVINO's own
    compile_model); the one that asks for none, on purpose, reads back the precision OpenVINO picks by itself."""
    import openvino as ov

    folder, x, _ = openvino_ir
    configs = []
    compile_model = ov.Core.compile_model

    def spy(self, model, device_name=None, config=None, *args, **kwargs):
        configs.append(dict(config or {}))
        return compile_model(self, model, device_name, config or {}, *args, **kwargs)

    monkeypatch.setattr(ov.Core, "compile_model", spy)
    for precision in ("FP32", "BF16", "INT8"):
        export.runner(folder, "openvino", n_threads=1, precision=precision)
    export.openvino_model(folder, "FP32", 1)
    asked = [c["INFERENCE_PRECISION_HINT"] for c in configs if "INFERENCE_PRECISION_HINT" in c]
    assert len(configs) == 4 and asked == ["f32", "bf16", "f32", "f32"], configs
    configs.clear()
    label = export.openvino_default(folder)  # OpenVINO's own choice, as Ultralytics' backend runs a validated IR
    assert configs and all("INFERENCE_PRECISION_HINT" not in c for c in configs)
    assert label == ("BF16" if export.openvino_offers("BF16") else "FP32")


def test_the_cpu_is_named():
    cpu = machine.cpu()
    assert cpu["model"] and set(cpu["flags"]) <= set(machine.KERNEL_FLAGS)
    if Path("/proc/cpuinfo").is_file() and "avx2" in Path("/proc/cpuinfo").read_text():
        assert "avx2" in cpu["flags"]


def test_a_latency_goal_times_in_the_precision_asked_and_refuses_what_the_cpu_lacks(smoke_start):
    """latency_precision: a reduced precision is timed through OpenVINO only where the CPU runs it natively, and the
    measurement says what ran; elsewhere one line says what this CPU offers."""
    from prunelib.errors import UserError

    if export.openvino_offers("BF16"):
        measured = export.Timer(smoke_start["model"], 64, "openvino", 1, "BF16").against(smoke_start["model"], 10, 1)
        assert measured["precision"] == "BF16" and measured["ms"] > 0 and measured["speedup"] > 0  # ran, labelled
    missing = [p for p in ("BF16", "FP16") if not export.openvino_offers(p)]
    for precision in missing:
        with pytest.raises(UserError, match=f"latency_precision: {precision} is not run natively by this CPU"):
            export.Timer(None, 64, "openvino", 1, precision)
    with pytest.raises(UserError, match="latency_precision: BF16 is not run natively by this CPU in onnxruntime"):
        export.Timer(None, 64, "onnxruntime", 1, "BF16")


def test_the_int8_onnx_form_follows_the_cpus_8bit_dot_products(monkeypatch):
    """U8S8 (unsigned activations, signed weights: the operands of x86's 8-bit dot products), per tensor; 7-bit
    weights (reduce_range, onnxruntime's guidance against saturation) on a CPU without VNNI."""
    from onnxruntime.quantization import QuantType

    from prunelib import machine
    from prunelib.deployment import quantize

    for flags, form in ((["avx2", "fma"], "u8s8-reduce-range"), (["avx2", "avx512f", "avx512_vnni"], "u8s8"),
                        (["avx2", "avx_vnni"], "u8s8"), (["avx512f", "amx_int8"], "u8s8")):  # fmt: skip
        monkeypatch.setattr(machine, "cpu", lambda flags=flags: {"model": "a CPU", "flags": flags})
        assert quantize.form_for_this_cpu() == form
        assert quantize.FORMS[form].options["activation_type"] == QuantType.QUInt8
    assert quantize.FORMS["u8s8-reduce-range"].options["reduce_range"] and "reduce_range" not in quantize.FORMS[
        "u8s8"].options


def test_a_table_shows_every_rows_columns():
    """A column only later rows have (a held-out score, an INT8 note) is shown, blank where a row has none."""
    from prunelib.presentation.report import markdown_table

    text = markdown_table([{"model": "unpruned", "ms": 1.0}, {"model": "pruned", "ms": 0.5, "held-out": 0.6}])
    assert text.splitlines()[0] == "| model | ms | held-out |"
    assert text.splitlines()[2] == "| unpruned | 1.0 |  |" and text.splitlines()[3] == "| pruned | 0.5 | 0.6 |"
