"""Worker processes die with their parent (a `kill -9` of `daad dedupe` must not leave them behind)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The parent starts a pool, has a worker block on a task, prints the worker's pid, then waits.
PARENT = """
import os, sys, time
from daad.core.processes import process_pool

if __name__ == "__main__":
    pool = process_pool(2)
    fut = pool.submit(os.getpid)
    print(fut.result(), flush=True)
    pool.submit(time.sleep, 600)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_when_the_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    assert _alive(worker)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    # The pipes reach EOF only when every process holding them (the workers) has exited.
    out, _ = parent.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), f"worker {worker} outlived its killed parent"


def test_every_pool_is_the_one_helper():
    """One start method, stated once: no module builds its own process pool."""
    offenders = []
    for folder in ("daad", "collectors", "synthesis"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            if path.name != "processes.py" and ("ProcessPoolExecutor(" in text or "get_context(" in text or "multiprocessing.Pool(" in text):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
