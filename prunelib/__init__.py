"""prunelib: structured pruning of Ultralytics YOLO11 detectors with Torch-Pruning.

Importing prunelib first makes Ultralytics offline-safe (see prunelib.offline); import it before ultralytics.
"""

from prunelib import offline as _offline

_offline.setup()

__version__ = "0.1.0"
