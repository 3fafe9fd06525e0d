"""Where daad keeps its state, and the few limits a user may want to change.

Everything is read from the environment at call time (not import time) so tests and
scripts can point `DAAD_HOME` elsewhere per process.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: larger than any camera photo, far below a bomb


def daad_home() -> Path:
    """The DAAD_HOME folder (default ~/.daad): catalog.sqlite and the media store live here."""
    return Path(os.environ.get("DAAD_HOME", Path.home() / ".daad")).expanduser()


def max_pixels() -> int:
    """Decompression-bomb limit in pixels (DAAD_MAX_PIXELS overrides)."""
    return int(os.environ.get("DAAD_MAX_PIXELS", DEFAULT_MAX_PIXELS))
