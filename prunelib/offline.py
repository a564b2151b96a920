"""Make Ultralytics work with no network: set before ultralytics is imported, harmless after.

Traps handled (ultralytics 8.4.x):
- DNS probe at import (``is_online``)            -> YOLO_OFFLINE=1
- pip-installing modules a checkpoint names       -> YOLO_AUTOINSTALL=0
- settings written to ~/.config                   -> YOLO_CONFIG_DIR under KIT_HOME
- Arial.ttf fetched by check_font (every dataset check, even offline: it probes the URL) -> matplotlib's
  DejaVuSans copied into the config dir under that name
- OMP_NUM_THREADS=1 and cores-1 torch threads     -> OMP_NUM_THREADS=cores; use_all_cores() callback
- validators and trainers given no folder write runs/<task>/val* into its runs_dir (the kit's runs folder, as
  Ultralytics derives it from the project root) -> scratch_output(): runs_dir and weights_dir under KIT_HOME
Weights/data sets named by bare asset name (yolo11n.pt, coco8.yaml) are never passed to Ultralytics: models are
built from YAML or loaded from existing files, data sets are local YAMLs (validated in prunelib.parameters).
"""

from __future__ import annotations

import os
from pathlib import Path

from prunelib import files
from prunelib.paths import KIT_HOME

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def setup() -> None:
    """Environment for offline Ultralytics; idempotent. PRUNELIB_ONLINE=1 leaves the network checks on."""
    if os.environ.get("PRUNELIB_ONLINE") != "1":
        os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(KIT_HOME / "ultralytics"))
    os.environ.setdefault("OMP_NUM_THREADS", str(cores()))
    # Ultralytics' USER_CONFIG_DIR is YOLO_CONFIG_DIR/Ultralytics; check_font() looks there before fetching
    _provide_fonts(Path(os.environ["YOLO_CONFIG_DIR"]).expanduser() / "Ultralytics")


def _provide_fonts(config_dir) -> None:
    try:
        config_dir.mkdir(parents=True, exist_ok=True)
        missing = [n for n in FONT_NAMES if not (config_dir / n).is_file()]
        if not missing:
            return
        import matplotlib  # slow, and needed only the first time

        src = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
        for name in missing:
            files.copy(src, config_dir / name)
    except OSError:  # read-only home: Ultralytics falls back to its own dir; plotting may then need the font
        pass


SCRATCH = KIT_HOME / "ultralytics" / "scratch"  # Ultralytics' runs_dir and weights_dir: never the kit's runs folder


def scratch_output() -> None:
    """Point Ultralytics' own output folders (its settings' runs_dir, weights_dir) into the kit's cache, through its
    settings API; the kit passes every folder it means explicitly, so only what it did not mean lands there. The
    settings file is the kit's own (YOLO_CONFIG_DIR). Call after ultralytics is importable; cheap when already so."""
    from ultralytics.utils import SETTINGS  # slow: only modules that run Ultralytics call this

    wanted = {"runs_dir": str(SCRATCH / "runs"), "weights_dir": str(SCRATCH / "weights")}
    if any(SETTINGS.get(k) != v for k, v in wanted.items()):
        SETTINGS.update(wanted)


def cores() -> int:
    """The cores this process may run on (its CPU affinity: taskset, a container's cpuset), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on macOS and Windows
        return os.cpu_count() or 1


def threads(n: int = 0) -> int:
    """The torch CPU thread count to use: n, or all the cores this process may use when n is 0."""
    return n if n > 0 else cores()


def use_all_cores(n: int = 0):
    """An Ultralytics callback (trainer or validator) that undoes its cores-1 thread setting."""
    import torch  # slow: importing prunelib stays light (the CLI's --help)

    count = threads(n)

    def callback(_obj=None):
        torch.set_num_threads(count)

    return callback
