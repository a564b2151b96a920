"""What drives a run, the kit's top floor: the goal and schedule of the loop (policy), the loop, the stages, the
papermill pipeline and sweeps; opening a run (opening).

``from prunelib import runs`` gives what notebooks and scripts need to open a run: ``runs.open_run`` (create or
reopen from parameter files) and ``runs.load_run`` (an existing run by name).
"""

from prunelib.core.folder import Run, load_run, load_runs, runs_root
from prunelib.runs.opening import open_run

__all__ = ["Run", "load_run", "load_runs", "open_run", "runs_root"]
