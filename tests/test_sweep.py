"""Sweeps: a grid over params/smoke.yaml runs as ordinary runs (two at a time), is compared in one executed
notebook, skips what is finished when run again, records a failing run while the others stay done, and refuses a
bad grid before anything runs."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from prunelib import cli as kit_cli
from prunelib.core import parameters
from prunelib.core.folder import load_run

from conftest import ROOT, SMOKE, cli, published_from, tree_snapshot

pytestmark = pytest.mark.slow  # trains or runs the pipeline: make test, not make check

NAME = "smoke-grid"
GRID = ["--grid", "importance=l2", "--grid", "target_prune_rate=0.2,0.3"]  # two keys, two runs
GRID_2X2 = ["--grid", "importance=l2,random", "--grid", "target_prune_rate=0.2,0.3"]
CHEAP = ["--set", "finetune_epochs=0", "--set", "sensitivity=false", "--set", "iterative_steps=1",
         "--set", "latency_runs=1", "--set", "latency_warmup=0", "--set", "bn_recalibration=0",
         "--set", "export_formats=[onnx]", "--set", "int8=false", "--set", "throughput_batch=0",
         "--set", "detection_images=0"]  # fmt: skip
RUNS = ["importance-l2__target_prune_rate-0.2", "importance-l2__target_prune_rate-0.3"]
RUNS_2X2 = ["importance-l2__target_prune_rate-0.2", "importance-l2__target_prune_rate-0.3",
        "importance-random__target_prune_rate-0.2", "importance-random__target_prune_rate-0.3"]  # fmt: skip


def sweep(*extra):
    return cli("sweep", "--params", SMOKE, *GRID, *CHEAP, "--name", NAME, *extra, timeout=1500)


@pytest.fixture(scope="module")
def swept(runs_root, smoke_start):
    r = sweep("--jobs", "2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return runs_root / NAME, r


def test_every_combination_is_a_run_compared_in_one_notebook(swept):
    root, r = swept
    assert "2 runs, 0 finished, 2 to run (2 at a time, 1 threads each)" in r.stdout
    assert sorted(line.split("]")[0] for line in r.stdout.splitlines() if line.startswith("[")) == \
        ["[1/2", "[2/2"]  # fmt: skip
    assert "done: 2 of 2 runs finished" in r.stdout
    for name in RUNS:
        assert (root / name / "report.md").is_file() and (root / name / "50-export.ipynb").is_file()
    rows = list(csv.DictReader((root / "summary.csv").open()))
    assert [row["run"] for row in rows] == RUNS
    assert [row["target_prune_rate"] for row in rows] == ["0.2", "0.3"] and "importance" not in rows[0]  # varied only
    assert all(row["status"] == "done" and float(row["MACs speed-up"]) > 1.1 for row in rows)
    assert float(rows[1]["MACs speed-up"]) > float(rows[0]["MACs speed-up"])  # 30% of channels cut more than 20%
    assert all(float(row["latency speed-up"]) > 0 and float(row["deployed speed-up"]) > 0 and row["deployed as"]
               for row in rows)  # measured time beside MACs: the front of the Pareto plot's other panels  # fmt: skip
    assert (root / "compare.ipynb").is_file() and (root / "compare-pareto.png").stat().st_size > 0
    assert (root / "compare-target_prune_rate.png").is_file() and not (root / "compare-importance.png").exists()


def test_shared_work_is_done_once(swept, runs_root):
    root, _ = swept
    notebooks = [(root / name / "20-replace-c3k2.ipynb").read_text() for name in RUNS]
    measured = sum("Unpruned: detect, params" in nb for nb in notebooks)  # at most once (earlier runs may have shared it)
    assert measured <= 1 and measured + sum("Reused the unpruned model" in nb for nb in notebooks) == 2
    assert len({(root / name / "unpruned.json").read_text() for name in RUNS}) == 1
    assert not (root / ".cache").exists()  # the sweep's runs use the kit's cache, shared with every other run


def test_running_it_again_redoes_no_run(swept):
    root, _ = swept
    before = {name: tree_snapshot(root / name) for name in RUNS}
    r = sweep()
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 runs, 2 finished, 0 to run" in r.stdout
    assert {name: tree_snapshot(root / name) for name in RUNS} == before


def test_a_run_made_with_other_settings_is_refused_and_nothing_is_touched(swept):
    root, _ = swept
    before = tree_snapshot(root)
    r = sweep("--set", "max_map_drop=0.3")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last, drop = r.stderr.strip().splitlines()[-1], parameters.load([SMOKE])["max_map_drop"]
    assert last.startswith(f"error: sweep run {RUNS[0]!r} exists with other settings (max_map_drop: {drop!r} -> 0.3); "
                           "remove ") and last.endswith(f"{NAME}/{RUNS[0]} to make it again, or give the sweep another "
                                                         "--name")  # fmt: skip
    assert tree_snapshot(root) == before


def test_a_run_counts_as_done_only_with_the_settings_asked_now(swept):
    from prunelib.runs import sweep as sweeps

    root, _ = swept
    plan = sweeps.load(None, [SMOKE], GRID[1::2], CHEAP[1::2], NAME)
    asked = plan.run_parameters(plan.combinations()[0])
    assert sweeps.finished(root / RUNS[0], asked)
    assert sweeps.finished(root / RUNS[0], {**asked, "threads": 7, "device": "cpu"})  # how it ran: not what it measured
    assert not sweeps.finished(root / RUNS[0], {**asked, "latency_runs": 3})  # a key a run may change: made again
    assert sweeps.changed(root / RUNS[0], {**asked, "latency_runs": 3}) == ["latency_runs: 1 -> 3"]


def test_the_summary_lists_only_the_runs_asked_for_now(swept):
    root, _ = swept
    r = cli("sweep", "--params", SMOKE, "--grid", "importance=l2", "--grid", "target_prune_rate=0.2", *CHEAP,
            "--name", NAME, timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "1 runs, 1 finished, 0 to run" in r.stdout
    assert [row["run"] for row in csv.DictReader((root / "summary.csv").open())] == [RUNS[0]]  # not the 0.3 run
    assert list(json.loads((root / "sweep.json").read_text())["runs"]) == [RUNS[0]]


def test_a_failing_run_is_recorded_and_the_others_stay_done(swept):
    root, _ = swept
    broken = root / RUNS[1]
    (broken / "final.pt").write_text("not a checkpoint\n")  # the analysis stage of its next run must fail
    (broken / "timings.json").unlink()
    r = sweep()
    assert r.returncode == 1
    assert f"failed: {RUNS[1]} (see sweep.json)" in r.stdout and "done: 1 of 2 runs finished" in r.stdout
    record = json.loads((root / "sweep.json").read_text())["runs"][RUNS[1]]
    assert record["status"] == "failed" and record["stage"] == "40-analysis"
    assert "is not a loadable Ultralytics checkpoint" in record["error"]
    rows = {row["run"]: row["status"] for row in csv.DictReader((root / "summary.csv").open())}
    assert rows == {RUNS[0]: "done", RUNS[1]: "failed"}


def test_a_failed_run_fixed_runs_again_to_done(swept):
    root, _ = swept
    fixed = root / RUNS[1]
    (fixed / "final.pt").unlink()  # the user's fix: the broken file removed; the run publishes it again
    r = sweep()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 runs, 1 finished, 1 to run" in r.stdout and "done: 2 of 2 runs finished" in r.stdout
    assert json.loads((root / "sweep.json").read_text())["runs"][RUNS[1]]["status"] == "done"
    assert {row["status"] for row in csv.DictReader((root / "summary.csv").open())} == {"done"}
    run = load_run(fixed)
    final = run.final_step()
    assert published_from(run.final, run.step_weights(final.step) if final else run.unpruned_pt)


def test_a_listed_command_runs_and_a_killed_run_resumes_in_the_sweep(swept, runs_root):
    """What a scheduler does with --list: run one line in a shell; killed mid-run (a node lost), the sweep
    resumes it where it stopped and finishes it."""
    name, grid = "smoke-killed", ["--grid", "importance=l2", "--grid", "target_prune_rate=0.25"]
    killed = runs_root / name / "importance-l2__target_prune_rate-0.25"
    line = cli("sweep", "--params", SMOKE, *grid, *CHEAP, "--name", name, "--list", check=True).stdout.strip()
    assert len(line.splitlines()) == 1
    job = subprocess.Popen(line, shell=True, executable="/bin/bash", start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 600
    while not (killed / "30-prune-loop.ipynb").is_file() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.poll() is None, "the listed command ended before it could be killed"
    os.killpg(job.pid, signal.SIGKILL)  # the process, its kernels, everything
    job.wait()
    assert not (killed / "report.md").is_file() or not (killed / "50-export.ipynb").is_file()  # stopped mid-run
    r = cli("sweep", "--params", SMOKE, *grid, *CHEAP, "--name", name, timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "1 runs, 0 finished, 1 to run" in r.stdout and "done: 1 of 1 runs finished" in r.stdout
    assert (killed / "report.md").is_file() and (killed / "50-export.ipynb").is_file()
    assert len((killed / "ledger.jsonl").read_text().splitlines()) == 1  # its one step, not two
    assert not list(killed.rglob(".*.tmp*"))  # nothing half-written left behind


def test_a_stopped_sweep_stops_its_runs(runs_root, smoke_start):
    """SIGTERM to the sweep alone (a scheduler's time limit, kill): the run it started stops too, instead of going on
    unattended; the sweep exits with 128 + 15 and records the run as interrupted (it resumes next time)."""
    name = "smoke-stopped"
    run = runs_root / name / "importance-l2__target_prune_rate-0.25"
    job = subprocess.Popen([sys.executable, "-m", "prunelib", "sweep", "--params", str(SMOKE), "--grid",
                            "importance=l2", "--grid", "target_prune_rate=0.25", *CHEAP, "--name", name], cwd=ROOT,
                           start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not (run / "10-inspect.ipynb").is_file() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert job.poll() is None, "the sweep ended before it could be stopped"
        job.send_signal(signal.SIGTERM)  # the sweep's own process, not its group
        assert job.wait(timeout=120) == 128 + signal.SIGTERM
        time.sleep(1)
        left = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert f"runs_dir={name}" not in left and f"/{name}" not in left, left  # no run of it still going
        status = json.loads((runs_root / name / "sweep.json").read_text())["runs"]
        assert status["importance-l2__target_prune_rate-0.25"]["status"] == "interrupted"
        assert not (run / "report.md").is_file()
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)


def test_list_prints_one_self_contained_command_per_run(swept):
    r = sweep("--list")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 2
    assert all(" -m prunelib run --params params/smoke.yaml " in line and line.startswith("cd ") for line in lines)
    assert [line.split("--set run_name=")[1].split()[0] for line in lines] == RUNS


def test_a_sweep_file_gives_the_same_runs_as_the_command_line(tmp_path):
    from prunelib.errors import UserError
    from prunelib.runs import sweep as sweeps

    f = tmp_path / "grid.yaml"
    f.write_text("params: [params/smoke.yaml]\nset: {finetune_epochs: 0}\n"
                 "grid:\n  importance: [l2, random]\n  target_prune_rate: [0.2, 0.3]\n")
    from_file = sweeps.load(f)
    from_cli = sweeps.load(None, [SMOKE], GRID_2X2[1::2], ["finetune_epochs=0"], "grid")
    assert from_file.name == "grid" and [sweeps.run_name(c) for c in from_file.combinations()] == RUNS_2X2
    assert from_file.combinations() == from_cli.combinations() and from_file.fixed == from_cli.fixed
    assert len(sweeps.load("params/sweeps/quality-importance.yaml").combinations()) == 6
    f.write_text("grid: {importance: [l2]}\nsweep_jobs: 2\n")
    with pytest.raises(UserError, match="unknown key 'sweep_jobs'; allowed: params, set, grid"):
        sweeps.load(f)


@pytest.mark.parametrize("grid,message", [
    (["--grid", "importanc=l2,random"], r"sweep run 'importanc-l2': unknown parameter 'importanc' .*'importance'"),
    (["--grid", "importance=l2,l7"], r"sweep run 'importance-l7': importance: 'l7' is not allowed; expected one of"),
    (["--grid", "importance"], r"--grid 'importance': expected key=v1,v2"),
    (["--grid", "target_prune_rate=0.2,0.2"], r"give the same run name"),
])  # fmt: skip
def test_a_bad_grid_is_refused_before_anything_runs(grid, message, runs_root, capsys):
    before = tree_snapshot(runs_root)
    code = kit_cli.main(["sweep", "--params", str(SMOKE), *grid, "--name", "bad-sweep"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert __import__("re").search(message, err), err
    assert tree_snapshot(runs_root) == before


def test_the_pareto_front_keeps_the_runs_nothing_beats_on_both():
    from prunelib.presentation.comparison import front

    points = [(1.5, 0.60), (2.0, 0.55), (1.8, 0.50), (3.0, 0.20), (1.2, 0.58), (2.0, 0.40)]
    assert front(points) == [(1.5, 0.60), (2.0, 0.55), (3.0, 0.20)]  # (1.8, .50), (1.2, .58), (2.0, .40) beaten
    assert front([(2.0, 0.5)]) == [(2.0, 0.5)] and front([]) == []
