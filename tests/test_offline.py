"""With every socket blocked (DNS and connect raise), the whole path runs: data -> train 1 epoch -> prune one step
-> fine-tune -> validate -> export ONNX, and no network attempt is made at all (import time included)."""

import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # trains or runs the pipeline: make test, not make check

SCRIPT = textwrap.dedent(
    """
    import socket
    attempts = []

    def refuse(name):
        def blocked(*args, **kwargs):
            attempts.append((name, repr(args)[:80]))
            raise OSError(f"network blocked by test ({name})")
        return blocked

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        setattr(socket, name, refuse(name))
    socket.socket.connect = refuse("connect")
    socket.socket.connect_ex = refuse("connect_ex")

    import os
    import prunelib  # the kit's offline set-up, before ultralytics
    from prunelib.core import parameters
    from prunelib.core.settings import Pruning, Settings, Training
    from prunelib.deployment import export, quantize
    from prunelib.surgery import checkpoints, measuring, pruner
    from prunelib.surgery.replacement import replace_c3k2
    from prunelib.training import embedded
    from prunelib.training.finetuning import finetune
    from prunelib.training.validation import evaluate

    out = os.environ["OFFLINE_OUT"]
    p = parameters.load(["params/smoke.yaml"], {"runs_dir": out, "synth_train": 8, "synth_val": 4, "batch": 4,
                                                  "baseline_epochs": 1, "imgsz": 64, "synth_imgsz": 64})
    os.environ.pop("PRUNELIB_RUNS", None)
    data = embedded.data_yaml(Settings.of(p))
    model_path, _ = embedded.model_path(Settings.of(p))             # trains 1 epoch from yolo11n.yaml
    model = checkpoints.load_model(model_path)
    replace_c3k2(model)
    x = measuring.example_inputs(p["imgsz"])
    pruner.build_pruner(model, Pruning.of(p), 0.3, x).step()
    pruned = checkpoints.save_model(model, out + "/pruned.pt")
    model, _ = finetune(pruned, Training.of(p), data, out + "/ft", 1)
    metrics = evaluate(model, Training.of(p), data, out + "/val")
    final = checkpoints.save_model(model, out + "/final.pt")
    int8 = export.export(final, "onnx", p["imgsz"], int8=quantize.Calibration(data, Training.of(p)))  # training images
    formats = ("onnx", "torchscript", "openvino")
    diffs = export.parity(final, {fmt: export.export(final, fmt, p["imgsz"]) for fmt in formats}, p["imgsz"])
    assert sorted(diffs) == sorted(formats) and all(d["matches"] for d in diffs.values()), diffs
    evaluate(str(int8), Training.of(p), data, out + "/val-int8", "detect")  # a file: its task named
    # INT8 held to an accuracy bound on a model that has some (the shipped smoke baseline: copied, not trained)
    shipped = parameters.load(["params/smoke.yaml"], {"runs_dir": out})
    ship_data = embedded.data_yaml(Settings.of(shipped))
    ship_model, source = embedded.model_path(Settings.of(shipped), train=False)
    quantized = export.export(ship_model, "onnx", 64, int8=quantize.Calibration(ship_data, Training.of(shipped)))
    maps = [evaluate(str(f), Training.of(shipped), ship_data, out + f"/val-{i}", "detect")["map50_95"]
            for i, f in enumerate((export.export(ship_model, "onnx", 64), quantized))]
    print("MAPS", source, *maps)
    print("ATTEMPTS", len(attempts), attempts[:5])
    print("METRICS", sorted(metrics))
    """
)


def test_pipeline_runs_with_the_network_absent(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("YOLO_")}
    env["OFFLINE_OUT"] = str(tmp_path)
    env["PRUNELIB_HOME"] = str(tmp_path / "home")  # a fresh config dir: fonts and settings made offline
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, env=env,
                       timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "ATTEMPTS 0 []" in r.stdout, r.stdout[-2000:]
    assert "METRICS ['map50', 'map50_95']" in r.stdout
    source, fp32, int8 = r.stdout.split("MAPS ", 1)[1].split()[:3]
    fp32, int8 = float(fp32), float(int8)
    assert source == "shipped" and fp32 > 0.3, r.stdout[-2000:]  # a model worth quantizing, made without training
    assert 0.5 * fp32 <= int8 <= fp32 + 0.05, (fp32, int8)  # INT8 keeps most of it (measured: 0.429 -> 0.419)
    print(f"\nshipped smoke baseline, ONNX mAP50-95: FP32 {fp32:.4f}, INT8 {int8:.4f}")
    assert (tmp_path / "home" / "ultralytics" / "Ultralytics" / "Arial.ttf").is_file()
    for name in ("final.onnx", "final_int8.onnx", "final.torchscript", "final_openvino_model"):
        assert (tmp_path / name).exists(), name
