"""The dependency list is declared once (pyproject); environment.yml installs the package; pins fit the ranges."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import ROOT


def test_environment_yml_installs_the_package_and_declares_nothing_twice():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert any(line.startswith("-e .") for line in pip)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = {Requirement(r).name.lower() for r in pyproject["project"]["dependencies"]}
    conda_names = {str(d).split("=")[0].split(">")[0].strip().lower() for d in deps if isinstance(d, str)}
    assert not declared & conda_names, f"declared in both: {declared & conda_names}"
    assert "python=3.11" in deps


def test_constraints_pin_versions_inside_pyproject_ranges():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    ranges = {Requirement(r).name.lower(): Requirement(r).specifier for r in pyproject["project"]["dependencies"]}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = Version(version)
    for name in ("torch", "torchvision", "ultralytics", "torch-pruning", "papermill", "nbval"):
        assert name in pins, f"{name} is not pinned"
    for name, spec in ranges.items():
        if name in pins:
            assert spec.contains(pins[name]), f"{name}=={pins[name]} is outside {spec}"


def test_installed_versions_are_the_pinned_ones():
    from importlib.metadata import version

    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))  # fmt: skip
    for name in ("torch", "ultralytics", "torch-pruning"):
        assert Version(version(name)).base_version == Version(pins[name]).base_version


def test_ultralytics_own_output_never_lands_in_the_runs_folder(tmp_path, runs_root):
    """A validator given no folder writes into Ultralytics' runs_dir: the kit points it into its cache."""
    import prunelib.training.arguments  # noqa: F401  (what every Ultralytics call of the kit goes through)
    from ultralytics.utils import SETTINGS

    from prunelib.offline import SCRATCH
    from prunelib.paths import PROJECT_ROOT

    assert Path(SETTINGS["runs_dir"]) == SCRATCH / "runs" and Path(SETTINGS["weights_dir"]) == SCRATCH / "weights"
    for kit_runs in (PROJECT_ROOT / "runs", runs_root):
        assert not Path(SETTINGS["runs_dir"]).is_relative_to(kit_runs)
