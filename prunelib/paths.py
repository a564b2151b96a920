"""Where things live: every path of the kit derives from PROJECT_ROOT."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _find_root() -> Path:
    """The checkout holding this package (editable install), else PRUNELIB_ROOT, else the current directory."""
    if env := os.environ.get("PRUNELIB_ROOT"):
        return Path(env).resolve()
    if (_PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return _PACKAGE_DIR.parent
    return Path.cwd().resolve()


PROJECT_ROOT = _find_root()
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
BASELINES_DIR = PROJECT_ROOT / "baselines"  # embedded baselines the kit trained once and ships (make baseline)
# Kit-owned state (Ultralytics settings, fonts); never the user's ~/.config.
KIT_HOME = Path(os.environ.get("PRUNELIB_HOME", PROJECT_ROOT / ".cache")).resolve()


def resolve(path: str | os.PathLike, base: Path = PROJECT_ROOT) -> Path:
    """A user-given path: absolute as is, relative to the project root otherwise (~ expanded)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p)


def relative(path: str | os.PathLike, base: Path | None = None) -> str:
    """Path shown to people and stored in records: relative to base (default project root) when inside it."""
    p = Path(path).resolve()
    base = (base or PROJECT_ROOT).resolve()
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return p.as_posix()
