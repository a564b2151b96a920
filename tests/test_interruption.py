"""Killed mid-step, a run resumes: finished steps are unchanged and each step is in the ledger exactly once."""

import hashlib
import json
import signal
import subprocess
import sys
import time

from conftest import ROOT, SMOKE

ARGS = ["--params", str(SMOKE), "--set", "iterative_steps=2", "--set", "finetune_epochs=1", "--set", "sensitivity=false"]


def start(run_name):
    return subprocess.Popen([sys.executable, "-m", "prunelib", "prune", *ARGS, "--run-name", run_name], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for(path, proc, timeout=600):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def hashes(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_sigkill_during_finetuning_then_resume(runs_root):
    run = runs_root / "killed"
    proc = start("killed")
    wait_for(run / "steps" / "step_02" / "args.yaml", proc)  # the trainer of step 2 has started
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ledger = (run / "ledger.jsonl").read_text().splitlines()
    assert len(ledger) == 1
    step1 = hashes(run / "steps" / "step_01")
    r = subprocess.run([sys.executable, "-m", "prunelib", "prune", *ARGS, "--run-name", "killed"], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Resuming run 'killed' after step 1" in r.stdout
    after = (run / "ledger.jsonl").read_text().splitlines()
    assert after[0] == ledger[0]
    assert [json.loads(line)["step"] for line in after] == [1, 2]
    assert hashes(run / "steps" / "step_01") == step1
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
    proc = start("interrupted")
    wait_for(run / "steps" / "step_01" / "args.yaml", proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: finished steps are kept; run the same command again to resume" in err
    assert "Traceback" not in err
