"""Killed mid-step, a run resumes: finished steps are unchanged and each step is in the ledger exactly once."""

import pytest

import hashlib
import json
import signal
import subprocess
import sys
import time

from conftest import ROOT, SMOKE

pytestmark = pytest.mark.slow  # trains or runs the pipeline: make test, not make check

ARGS = ["--params", str(SMOKE), "--set", "iterative_steps=2", "--set", "finetune_epochs=1", "--set", "sensitivity=false",
        "--set", "export_formats=[onnx]", "--set", "int8=false", "--set", "throughput_batch=0",
        "--set", "detection_images=0"]  # resuming is about the loop: the export stage at its cheapest  # fmt: skip


FINAL = ["--set", "finetune_epochs=2", "--set", "final_share=0.5"]  # 1 epoch a step, 2 for the final fine-tune


def start(run_name, *extra, log=None):
    """The run in a new process; its output piped (read with communicate), or into the file log."""
    out = open(log, "w") if log else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-m", "prunelib", "prune", *ARGS, *extra, "--run-name", run_name],
                            cwd=ROOT, stdout=out, stderr=out, text=True)  # fmt: skip


def wait_for(path, proc, timeout=600):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def hashes(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def kill_when(path, proc):
    wait_for(path, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_during_finetuning_then_resume(runs_root, tmp_path):
    run = runs_root / "killed"
    kill_when(run / "steps" / "step_02" / "args.yaml", start("killed", *FINAL, log=tmp_path / "1.log"))  # step 2
    ledger = (run / "ledger.jsonl").read_text().splitlines()
    assert len(ledger) == 1
    step1 = hashes(run / "steps" / "step_01")
    kill_when(run / "steps" / "final" / "args.yaml", start("killed", *FINAL, log=tmp_path / "2.log"))  # final
    assert "Resuming run 'killed' after step 1" in (tmp_path / "2.log").read_text()
    steps = (run / "ledger.jsonl").read_text().splitlines()
    assert steps[0] == ledger[0] and len(steps) == 2
    step2 = hashes(run / "steps" / "step_02")
    r = subprocess.run([sys.executable, "-m", "prunelib", "prune", *ARGS, *FINAL, "--run-name", "killed"], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    after = (run / "ledger.jsonl").read_text().splitlines()
    assert after[:2] == steps
    assert [(json.loads(line)["step"], json.loads(line)["kind"]) for line in after] == [(1, "prune"), (2, "prune"),
                                                                                           (3, "final")]
    assert hashes(run / "steps" / "step_01") == step1 and hashes(run / "steps" / "step_02") == step2
    assert not [p for p in run.rglob("*.tmp*")]


def test_a_second_process_on_a_run_in_progress_is_refused(runs_root):
    run = runs_root / "locked"
    proc = start("locked")
    wait_for(run / "steps" / "step_01" / "args.yaml", proc)
    second = subprocess.run([sys.executable, "-m", "prunelib", "prune", *ARGS, "--run-name", "locked"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert second.stderr.strip().startswith(f"error: run 'locked' is in use by process {proc.pid} (")
    assert len(second.stderr.strip().splitlines()) == 1
    assert [json.loads(line)["step"] for line in (run / "ledger.jsonl").read_text().splitlines()] == [1, 2]


def test_ctrl_c_stops_cleanly_saying_how_to_resume(runs_root):
    run = runs_root / "interrupted"
    proc = start("interrupted", "--set", "finetune_epochs=50")  # long enough that no press comes after its end
    wait_for(run / "steps" / "step_01" / "args.yaml", proc)
    for _ in range(60):  # as a user would press Ctrl-C again: Ultralytics' TryExcept blocks swallow one that lands there
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=4)
            break
        except subprocess.TimeoutExpired:
            continue
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: finished steps are kept; run the same command again to resume" in err
    assert "Traceback" not in err
