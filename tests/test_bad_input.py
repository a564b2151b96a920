"""Bad input: one clear line naming the value and what is allowed, a non-zero exit, no traceback, nothing written
or overwritten. Through the CLI (in process, and once in a real subprocess) and the Python API."""

import errno
import os

import pytest
import torch
import yaml
from ultralytics.nn.tasks import ClassificationModel, DetectionModel, RTDETRDetectionModel

from prunelib import cli, files, runs
from prunelib.errors import UserError

from conftest import SMOKE, cli as run_cli, tree_snapshot


@pytest.fixture
def bad_files(tmp_path, smoke_start):
    d = {}
    (d_text := tmp_path / "notes.pt").write_text("not a checkpoint\n")
    d["text"] = d_text
    good = open(smoke_start["model"], "rb").read()
    (d_trunc := tmp_path / "truncated.pt").write_bytes(good[: len(good) // 3])
    d["truncated"] = d_trunc
    refused = {"classify": (ClassificationModel, "yolo11n-cls.yaml"), "v3": (DetectionModel, "yolov3-tiny.yaml"),
               "rtdetr": (RTDETRDetectionModel, "yolov8-rtdetr.yaml"), "v12": (DetectionModel, "yolo12n.yaml")}
    for key, (kind, cfg) in refused.items():  # checkpoints of models the kit does not prune
        d[key] = tmp_path / f"{key}.pt"
        torch.save({"model": kind(cfg, nc=8, verbose=False), "train_args": {}}, d[key])
    (d_yaml := tmp_path / "broken.yaml").write_text("train: [images\n")
    d["unparsable"] = d_yaml
    (d_nodir := tmp_path / "nodir.yaml").write_text(yaml.safe_dump({"path": str(tmp_path), "train": "imgs/train",
                                                                     "val": "imgs/val", "names": {0: "a"}}))
    d["nodir"] = d_nodir
    (tmp_path / "ds" / "images" / "train").mkdir(parents=True)
    (tmp_path / "ds" / "images" / "val").mkdir(parents=True)
    for split in ("train", "val"):
        (tmp_path / "ds" / "images" / split / "a.png").write_bytes(b"")
    (d_nolab := tmp_path / "nolabels.yaml").write_text(yaml.safe_dump({"path": str(tmp_path / "ds"),
                                                                        "train": "images/train", "val": "images/val",
                                                                        "names": {0: "a"}}))  # fmt: skip
    d["nolabels"] = d_nolab
    (d_cfg := tmp_path / "train.yaml").write_text("epochz: 3\n")
    d["cfg_key"] = d_cfg
    (d_cfg2 := tmp_path / "train2.yaml").write_text("fliplr: 3.0\n")
    d["cfg_value"] = d_cfg2
    d["data"] = smoke_start["data"]
    d["model"] = smoke_start["model"]
    d["sizeless"] = tmp_path / "sizeless.pt"  # a checkpoint whose training arguments name no image size
    torch.save({"model": DetectionModel("yolo11n.yaml", nc=2, verbose=False), "train_args": {}}, d["sizeless"])
    return d


CASES = [
    (["--model", "{tmp}/missing.pt", "--data", "{data}"], r"model: file '.*missing.pt' does not exist"),
    (["--model", "{text}", "--data", "{data}"], r"model: '.*notes.pt' is not a loadable Ultralytics checkpoint"),
    (["--model", "{truncated}", "--data", "{data}"], r"model: '.*truncated.pt' is not a loadable Ultralytics"),
    (["--model", "{classify}", "--data", "{data}"], r"is a 'classify' model \(ClassificationModel\); supported: YOLO11"),
    (["--model", "{v3}", "--data", "{data}"], r"has no C3k2 or C2f blocks; supported: YOLO11, YOLO26 or YOLOv8 "),
    (["--model", "{rtdetr}", "--data", "{data}"], r"model \(RTDETRDetectionModel\); supported: YOLO11, YOLO26"),
    (["--model", "{v12}", "--data", "{data}"], r"holds YOLO12's area-attention blocks \(A2C2f\), which the pruner cannot trace"),
    (["--model", "{model}", "--data", "{tmp}/none.yaml"], r"data: file '.*none.yaml' does not exist"),
    (["--model", "{model}", "--data", "{unparsable}"], r"data: '.*broken.yaml' is not valid YAML"),
    (["--model", "{model}", "--data", "{nodir}"], r"data: '.*nodir.yaml' is refused by Ultralytics' dataset check: "
                                                  r"Dataset .* images not found, missing path '.*imgs/val'"),
    (["--model", "{model}", "--data", "{nolabels}"], r"data: train images in '.*' have no label files"),
    (["--target-prune-rate", "0"], r"target_prune_rate: 0.0 is not allowed; expected a number in \(0, 1\)"),
    (["--target-prune-rate", "1.5"], r"target_prune_rate: 1.5 is not allowed"),
    (["--set", "target_speedup=1"], r"target_speedup: 1.0 is not allowed; expected 0 \(off"),
    (["--iterative-steps", "0"], r"iterative_steps: 0 is not allowed"),
    (["--iterative-steps", "five"], r"iterative_steps: expected an integer, got 'five'"),
    (["--set", "iterative_steps=five"], r"iterative_steps: expected an integer, got 'five'"),
    (["--set", "imgsz=100"], r"imgsz: 100 is not allowed; expected 0 \(the model's own\) or a multiple of 32"),
    (["--set", "target_prune=0.3"], r"unknown parameter 'target_prune' .*did you mean 'target_prune_rate'"),
    (["--set", "importance=magnitude"], r"importance: 'magnitude' is not allowed; expected one of l2, l1"),
    (["--set", "ignore_layers=[Detect, C2PSAA]"], r"ignore_layers: 'C2PSAA' is not .*did you mean 'C2PSA'"),
    (["--params", "{tmp}/nope.yaml"], r"parameter file .*nope.yaml does not exist"),
    (["--cfg", "{cfg_key}"], r"cfg: 'epochz' in .*train.yaml is not an Ultralytics training argument; did you mean "
                             r"'epochs'\?"),
    (["--cfg", "{cfg_value}"], r"cfg: .*train2.yaml: 'fliplr=3.0' is an invalid value"),
    (["--set", "lr0=0.002"], r"lr0: 0.002 does nothing under optimizer: auto \(Ultralytics then chooses"),
    (["--set", "isomorphic=true"], r"isomorphic: true does nothing without global_pruning: true"),
    (["--set", "target_speedup=2", "--set", "max_steps=4", "--set", "iterative_steps=5"],
     r"max_steps: 4 is less than iterative_steps 5"),
    (["--set", "target_speedup=2", "--set", "target_prune_rate=0.5"],
     r"target_speedup and target_prune_rate are all set in overrides; a run has one goal"),
    (["--set", "device=7"], r"device: '7' is not available here \(torch sees"),
    (["--set", "target_latency_speedup=2", "--set", "latency_precision=BF16"],
     r"latency_precision: BF16 is timed through OpenVINO's precision hint; latency_runtime 'onnxruntime' runs FP32"),
    (["--set", "latency_precision=INT4"], r"latency_precision: 'INT4' is not allowed; expected one of FP32, BF16, FP16"),
    (["--model", "{sizeless}", "--data", "{data}", "--set", "imgsz=0"],
     r"imgsz: 0 takes the size model '.*sizeless.pt' was trained at, but it records no training size; set imgsz"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[c[1][:40] for c in CASES])
def test_cli_refuses_bad_input_and_writes_nothing(args, message, bad_files, tmp_path, runs_root, capsys):
    args = [a.format(tmp=tmp_path, **{k: v for k, v in bad_files.items()}) for a in args]
    before = tree_snapshot(runs_root)
    code = cli.main(["prune", "--params", str(SMOKE), "--run-name", "bad-input", *args])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert __import__("re").search(message, lines[0]), lines[0]
    assert tree_snapshot(runs_root) == before


def test_a_gpu_that_is_not_there_is_refused_before_anything_is_written(runs_root):
    index = torch.cuda.device_count()  # one past the last GPU: none on a CPU-only machine
    with pytest.raises(UserError, match=rf"device: '{index}' is not available here \(torch sees"):
        runs.open_run([SMOKE], {"run_name": "no-gpu", "device": index})
    assert not (runs_root / "no-gpu").exists()


def test_same_errors_from_the_python_api(bad_files):
    with pytest.raises(UserError, match="is not a loadable Ultralytics checkpoint"):
        runs.open_run([SMOKE], {"run_name": "api-bad", "model": str(bad_files["text"]), "data": str(bad_files["data"])})
    with pytest.raises(UserError, match="target_prune_rate: -0.1 is not allowed"):
        runs.open_run([SMOKE], {"run_name": "api-bad", "target_prune_rate": -0.1})


@pytest.mark.slow  # trains or runs the pipeline: make test, not make check
def test_existing_run_with_other_parameters_is_left_untouched(runs_root, capsys, smoke_start):
    from prunelib.runs import stages

    run = runs.open_run([SMOKE], {"run_name": "kept", "finetune_epochs": 0, "iterative_steps": 1})
    stages.replace(run, log=lambda *_: None)
    before = tree_snapshot(runs_root / "kept")
    assert len(before) > 3
    code = cli.main(["prune", "--params", str(SMOKE), "--run-name", "kept", "--iterative-steps", "4"])
    err = capsys.readouterr().err
    assert code == 2 and "run 'kept' exists with other parameters (iterative_steps: 1 -> 4" in err
    assert "--new-run" in err
    assert tree_snapshot(runs_root / "kept") == before


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EACCES])
def test_full_or_read_only_output_folder(monkeypatch, runs_root, capsys, err):
    def refuse(*args, **kwargs):
        raise OSError(err, os.strerror(err), "runs/unwritable/params.yaml")

    monkeypatch.setattr(files, "write_text", refuse)
    code = cli.main(["prune", "--params", str(SMOKE), "--run-name", "unwritable"])
    out = capsys.readouterr().err.strip()
    assert code == 2
    assert out.startswith("error: runs_dir: cannot write the run folder") and os.strerror(err) in out
    assert "Traceback" not in out


@pytest.mark.slow  # starts fresh Python processes: make test, not make check
def test_a_real_process_prints_one_line_and_no_traceback_unless_debug():
    r = run_cli("prune", "--params", SMOKE, "--run-name", "proc", "--set", "imgsz=100")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("error: imgsz: 100 is not allowed; expected 0 (the model's own) or a multiple of 32, "
                                "at least 32 (the model's largest stride)")
    r = run_cli("prune", "--params", SMOKE, "--run-name", "proc", "--set", "imgsz=100", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_unknown_stage_is_refused():
    from prunelib.runs.pipeline import select_stages

    with pytest.raises(UserError, match=r"--stages: '35' is not a stage; allowed: 00-baseline"):
        select_stages("30,35")
    assert select_stages("40,30") == ["30-prune-loop", "40-analysis"]


FINETUNE_CASES = [
    (["--model", "{tmp}/missing.pt", "--data", "{data}"], r"model: file '.*missing.pt' does not exist"),
    (["--model", "{text}", "--data", "{data}"], r"model: '.*notes.pt' is not a loadable Ultralytics checkpoint"),
    (["--model", "{model}"], r"data: a data YAML, or a folder of images, is required with your own model"),
    (["--model", "{model}", "--data", "{data}", "--epochs", "0"], r"--epochs: 0 is not allowed; expected 1 or more"),
    (["--model", "{model}", "--data", "{data}", "--teacher", "{text}"], r"--teacher: '.*notes.pt' is not a loadable"),
    (["--model", "{model}", "--data", "{data}", "--teacher", "{model}", "--set", "distill_weight=0"],
     r"--teacher: distill_weight is 0 \(given by --set or a --params file\), so the teacher would teach nothing"),
]


def test_a_teacher_keeps_the_distill_weight_given(bad_files, tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("distill_weight: 0.25\n")
    base = ["finetune", "--params", str(SMOKE), "--model", str(bad_files["model"]), "--data", str(bad_files["data"]),
            "--teacher", str(bad_files["model"])]  # fmt: skip

    def weight(*extra):
        return cli.finetune_parameters(cli.build_parser().parse_args([*base, *extra]))["distill_weight"]

    assert weight() == 1.0 and weight("--set", "distill_weight=0.5") == 0.5 and weight("--params", str(f)) == 0.25


@pytest.mark.parametrize("args,message", FINETUNE_CASES, ids=[c[1][:40] for c in FINETUNE_CASES])
def test_finetune_refuses_bad_input_and_writes_nothing(args, message, bad_files, tmp_path, runs_root, capsys):
    args = [a.format(tmp=tmp_path, **{k: v for k, v in bad_files.items()}) for a in args]
    before = tree_snapshot(runs_root)
    assert cli.main(["finetune", "--params", str(SMOKE), *args]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and __import__("re").search(message, lines[0]), lines
    assert tree_snapshot(runs_root) == before
