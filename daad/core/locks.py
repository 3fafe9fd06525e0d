"""An exclusive lock between processes on one piece of work (a search query's state).

Why a lock file and not a transaction: the work it guards (paging an API, downloading
images) takes minutes, and an SQLite write transaction held that long would stop every
other writer of the catalog. An OS file lock (`flock`) is held only by the process that
took it and is released by the kernel when that process dies, `kill -9` included, so a
crashed run never leaves the work locked. (POSIX `flock`: Linux and macOS.)
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextmanager
def exclusive(path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock `path` (created if needed); when another process holds it, wait for it.

    `on_wait` is told who holds it (the pid written in the file) before the wait starts,
    so a command can say why it pauses instead of hanging silently.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if not _try_lock(fd):
            if on_wait is not None:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "another process"
                on_wait(holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
