"""The one way daad starts worker processes: `process_pool()`.

Two choices, stated once here so every pool (hashing, CAI output, ...) makes the same:

- **spawn, not fork.** A forked child copies the parent's threads' locks in whatever
  state they were (tqdm's monitor thread, which `hash_files` starts before its pool,
  arrow's and OpenMP's pools), which can deadlock it (Python 3.12 warns about exactly
  this); spawn starts a clean interpreter. It is also what macOS and Windows do, so a pool
  behaves the same everywhere. The price is each worker importing its module once per
  pool, not per task: measured on our 2-core machine at load 21, a 2-worker hashing pool
  took 0.15 s to its first result with fork and 6.3-7.5 s with spawn, when a bare
  `import daad.curate.hashing` (numpy, Pillow, scipy) took 3.7 s there; on an idle machine
  it is that import time, once, in parallel across workers.
- **Workers die with their parent.** A `kill -9` of the parent skips every clean-up, and
  a worker blocked on its task queue would then live for ever, holding the caller's
  stdout/stderr pipes open (a `subprocess.run(..., capture_output=True)` of `daad
  dedupe` never returns). Each worker watches its parent: on Linux the kernel sends it
  SIGKILL (`PR_SET_PDEATHSIG`); everywhere a daemon thread also checks `os.getppid()`
  every half second and exits when the parent is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Callable

START_METHOD = "spawn"
_PARENT_POLL_S = 0.5
_PR_SET_PDEATHSIG = 1


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(_PARENT_POLL_S)


def _die_with_parent(parent: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass  # the watcher thread below still covers it
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="daad-parent-watch").start()
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A ProcessPoolExecutor of `workers` spawned processes that exit when this process dies.

    `initializer(*initargs)` runs in each worker, as with ProcessPoolExecutor. A script
    that calls this needs the usual `if __name__ == "__main__":` guard (spawn re-imports
    the main module).
    """
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context(START_METHOD),
        initializer=_die_with_parent, initargs=(os.getpid(), initializer, initargs),
    )
