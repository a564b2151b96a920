"""House rules of the package that a reviewer would otherwise have to check by eye: short functions, and every
name in the run folder spelled in one module."""

import ast
import re

from conftest import ROOT

PACKAGE = ROOT / "prunelib"
RUN_FILES = ("params.yaml", "manifest.json", "ledger.jsonl", "unpruned.pt", "unpruned.json", "final.pt",
             "export.json", "sensitivity.json", "timings.json", "report.md", "data-preview.jpg", "perf.png",
             "channels.png", "pareto.png", "sensitivity.png", "pruned.pt", "val_pruned", ".lock", "classes.json",
             "classes.png", "detections.png", "detections.json", "deployment.png")  # fmt: skip


def test_no_function_is_over_60_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long


def test_run_folder_names_are_spelled_only_by_the_run_folder_module():
    owner = PACKAGE / "core" / "folder.py"
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

    expected = {"00-baseline": ["run_name", "params_files", "overrides", "announce"], "compare": ["sweep_dir"]}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        declared = list(pm.inspect_notebook(str(path)))
        assert declared == expected.get(path.stem, ["run_name", "runs_dir"]), path.name


def test_committed_notebooks_keep_small_clean_outputs():
    """Source notebooks hold what a reader and nbval need, small: no figure over the refresh's limit, no logs of
    unchecked cells, no timing metadata (pipeline.clean_outputs, applied by refresh-notebooks)."""
    import nbformat

    from prunelib.runs.pipeline import CHECK_MARK, MAX_KEPT_PNG

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert path.stat().st_size < 400_000, path.name
        for cell in nbformat.read(path, as_version=4).cells:
            assert "execution" not in cell.get("metadata", {}), path.name
            for o in cell.get("outputs", []):
                assert len(o.get("data", {}).get("image/png", "")) <= MAX_KEPT_PNG, path.name
                assert o["output_type"] != "stream" or CHECK_MARK in cell.source, (path.name, cell.source[:60])


def test_a_large_figure_leaves_a_note_in_the_source_notebook():
    from prunelib.runs.pipeline import MAX_KEPT_PNG, clean_outputs

    big, small = "A" * (MAX_KEPT_PNG + 4), "A" * 1000
    cell = {"cell_type": "code", "source": "display(x)", "metadata": {"execution": {}}, "outputs": [
        {"output_type": "display_data", "data": {"image/png": big}, "metadata": {"image/png": {"width": 9}}},
        {"output_type": "display_data", "data": {"image/png": small}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": "12.3 s"}]}  # fmt: skip
    clean_outputs(cell)
    assert [o["data"].get("image/png") for o in cell["outputs"]] == [None, small] and "execution" not in cell["metadata"]
    assert "not kept in the source notebook" in cell["outputs"][0]["data"]["text/plain"]


# The package's floors, bottom first (README, "Layout"): a module imports only from its own floor or those below.
LAYERS = [
    ["prunelib.errors", "prunelib.paths", "prunelib.files", "prunelib.machine", "prunelib.console"],  # basics
    ["prunelib.offline", "prunelib.tasks"],  # Ultralytics made offline; the task table
    ["prunelib.core"],  # the parameter table, the run folder
    ["prunelib.surgery"],  # model surgery
    ["prunelib.training", "prunelib.deployment"],  # training with Ultralytics; export and timing
    ["prunelib.presentation"],  # report, figures, comparison
    ["prunelib.runs"],  # what drives a run: policy, loop, stages, pipeline, sweep
    ["prunelib.cli", "prunelib.__main__"],  # the command line
]


def _floor(module: str) -> int:
    for i, floor in enumerate(LAYERS):
        if any(module == m or module.startswith(m + ".") for m in floor):
            return i
    raise AssertionError(f"{module} is on no floor of LAYERS: add it")


def _imports() -> dict[str, set[str]]:
    """{module: the kit's modules it imports, anywhere in it (function-local imports included)}."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        known = {m for m in found if m.startswith("prunelib.")}
        out[name] = {m for m in known if (PACKAGE.parent / (m.replace(".", "/") + ".py")).is_file()
                     or (PACKAGE.parent / m.replace(".", "/") / "__init__.py").is_file()}  # fmt: skip
    return out


def test_no_import_climbs_to_a_higher_floor():
    imports = _imports()
    upward = [f"{m} -> {t}" for m, targets in imports.items() if m != "prunelib"
              for t in targets if _floor(t) > _floor(m)]  # fmt: skip
    assert not upward


def test_no_import_circle():
    imports = {m: {t for t in ts if t != m} for m, ts in _imports().items()}
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(m, path):
        state[m] = 1
        for t in sorted(imports.get(m, ())):
            if state.get(t) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                walk(t, path + [t])
        state[m] = 2

    for m in sorted(imports):
        if m not in state:
            walk(m, [m])


def test_function_local_imports_say_why():
    """An import inside a function is optional or slow to load; the line says which (a comment on it or the line
    before), so that none hides an import that climbs or closes a circle."""
    silent = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        i = inner.lineno - 1  # the comment may stand on any line of the block of imports
                        while i > 0 and lines[i - 1].strip().startswith(("from ", "import ")):
                            i -= 1
                        block = lines[i - 1 : inner.lineno]
                        if not any("#" in line for line in block):
                            silent.append(f"{path.relative_to(ROOT)}:{inner.lineno}: {lines[inner.lineno - 1].strip()}")
    assert not silent
