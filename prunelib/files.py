"""Writing files and folders so that a reader never sees half of one: write to a temporary name, then rename.

The temporary name of ``dir/name`` is ``dir/.name.tmp<pid>``: hidden, next to its target (so the rename is atomic on
one file system), and owned by one process. A process killed mid-write leaves it behind; ``remove_stale`` deletes
those whose process is gone, and nothing ever reads them as complete.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

_TEMP = re.compile(r"^\..+\.tmp(\d+)$")


def temp_path(path) -> Path:
    """This process's temporary name for path."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextmanager
def atomic(path):
    """``with atomic(p) as tmp:`` write the file or folder tmp; on success it becomes p (replacing a file, or taking
    the place of a missing folder), on error it is removed and p is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    _remove(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        _remove(tmp)


@contextmanager
def exclusive(path):
    """``with exclusive(p):`` one process at a time (others wait): for work that several runs may start at once, such
    as training the same cached baseline. The lock is released by the OS when its holder dies."""
    import fcntl  # optional: POSIX only

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def write_text(path, text: str) -> Path:
    """Write text to path atomically; return path."""
    with atomic(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def copy(src, dst) -> Path:
    """Copy a file atomically (dst is the old file or the new one, never a mix)."""
    with atomic(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def remove_stale(folder, recursive: bool = False) -> list[Path]:
    """Delete temporary files and folders under folder whose writing process no longer exists; return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*")
    stale = [p for p in found if (m := _TEMP.match(p.name)) and not _alive(int(m.group(1)))]
    for p in stale:
        _remove(p)
    return stale


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)
