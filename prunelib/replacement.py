"""Old import path of the C3k2 replacement, kept so checkpoints saved by earlier versions of the kit still load
(they pickle ``prunelib.replacement.C3k2Prunable``). New code imports prunelib.surgery.replacement."""

import warnings

from prunelib.surgery.replacement import *  # noqa: F401,F403
from prunelib.surgery.replacement import C3k2_v2, C3k2Prunable  # noqa: F401

warnings.warn("prunelib.replacement moved to prunelib.surgery.replacement", DeprecationWarning, stacklevel=2)
