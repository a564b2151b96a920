"""What the console shows: the kit's own lines and Ultralytics' progress of training and validation. The chatter of
the libraries the kit calls for its own purposes (Ultralytics' exporter, onnxslim, NNCF, onnxruntime's quantizer:
every latency candidate is exported to be timed) and warnings known to be harmless go to the run's log file instead
(``log_to``), where a reader who wants them finds them; ``PRUNELIB_VERBOSE=1`` (the CLI's ``--verbose``) shows
everything on the console.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from pathlib import Path

VERBOSE_ENV = "PRUNELIB_VERBOSE"
LOGGER_NAME = "ultralytics"  # Ultralytics' logger (ultralytics.utils.LOGGING_NAME)

# Warnings that say nothing wrong about a run of the kit, each with why
HARMLESS = (
    # the trainer re-enables gradients on a layer loaded without them; the kit trains every layer but the DFL
    re.compile(r"setting 'requires_grad=True' for frozen layer"),
    # a class named '' in a user's model (the model ships so): shown blank in plots, nothing else changes
    re.compile(r"Empty class name string"),
)

_log_file: Path | None = None


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def log_to(path: Path | None) -> None:
    """Where captured chatter and harmless warnings go from now on in this process (None: nowhere)."""
    global _log_file
    _log_file = Path(path) if path else None
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, _Harmless) for f in logger.filters):
        logger.addFilter(_Harmless())


def write(text: str) -> None:
    """Append text to the log file, if there is one."""
    if _log_file is None or not text:
        return
    try:
        with _log_file.open("a", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    except OSError:  # the run folder gone or read-only: the chatter is lost, nothing else
        pass


@contextlib.contextmanager
def captured():
    """Within: Ultralytics' log lines and whatever is printed go to the log file, not the console (unless verbose)."""
    if verbose():
        yield
        return
    loggers = [logging.getLogger(LOGGER_NAME), logging.getLogger()]  # Ultralytics'; the root one (onnxruntime's)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handlers = [logger.handlers for logger in loggers]
    for logger in loggers:
        logger.handlers = [handler]
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield
    finally:
        for logger, kept in zip(loggers, handlers):
            logger.handlers = kept
        write(buffer.getvalue())


class _Harmless(logging.Filter):
    """Keeps HARMLESS warnings off the console (into the log file) unless verbose."""

    def filter(self, record: logging.LogRecord) -> bool:
        if verbose() or not any(p.search(str(record.getMessage())) for p in HARMLESS):
            return True
        write(record.getMessage())
        return False
