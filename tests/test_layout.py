"""House rules of the package that a reviewer would otherwise have to check by eye: short functions, and every
name in the run folder spelled in one module."""

import ast
import re

from conftest import ROOT

PACKAGE = ROOT / "prunelib"
RUN_FILES = ("params.yaml", "manifest.json", "ledger.jsonl", "replaced.pt", "unpruned.json", "final.pt",
             "export.json", "sensitivity.json", "timings.json", "report.md", "data-preview.jpg", "perf.png",
             "channels.png", "pareto.png", "sensitivity.png", "pruned.pt", "val_pruned", ".lock")  # fmt: skip


def test_no_function_is_over_60_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long


def test_run_folder_names_are_spelled_only_by_the_run_folder_module():
    owner = PACKAGE / "runs" / "folder.py"
    assert all(f'"{name}"' in owner.read_text() for name in RUN_FILES)
    pattern = re.compile("|".join(re.escape(f'"{n}"') for n in RUN_FILES))
    elsewhere = [f"{p.relative_to(ROOT)}: {m.group()}" for p in PACKAGE.rglob("*.py") if p != owner
                 for m in pattern.finditer(p.read_text())]  # fmt: skip
    assert not elsewhere


def test_atomic_writes_leave_the_old_file_or_the_new_one_and_stale_temporaries_are_removed(tmp_path):
    import os
    import subprocess
    import sys

    import pytest

    from prunelib import files

    target = files.write_text(tmp_path / "a.json", "old")
    with pytest.raises(RuntimeError):
        with files.atomic(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and not list(tmp_path.glob(".*"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale_file = tmp_path / f".b.pt.tmp{int(dead.stdout)}"
    stale_dir = tmp_path / f".baseline-x.tmp{int(dead.stdout)}"
    live = tmp_path / f".c.pt.tmp{os.getpid()}"
    stale_file.write_text("x"), stale_dir.mkdir(), live.write_text("x")
    assert sorted(files.remove_stale(tmp_path)) == sorted([stale_file, stale_dir])
    assert live.exists() and not stale_file.exists() and not stale_dir.exists()


def test_every_notebook_declares_parameters_papermill_can_read():
    import papermill as pm

    expected = {"00-baseline": ["run_name", "params_files", "overrides"], "compare": ["sweep_dir"]}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        declared = list(pm.inspect_notebook(str(path)))
        assert declared == expected.get(path.stem, ["run_name", "runs_dir"]), path.name
