"""Runs: the parameters, the run folder, the loop's policy and the loop, the stages, and the papermill pipeline.

``from prunelib import runs`` gives what notebooks and scripts need to open a run: ``runs.open_run`` (create or
reopen from parameter files) and ``runs.load_run`` (an existing run by name).
"""

from prunelib.runs.folder import Run, load_run, load_runs, open_run, runs_root

__all__ = ["Run", "load_run", "load_runs", "open_run", "runs_root"]
