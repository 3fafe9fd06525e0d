"""Write files so that no reader, crash or `kill -9` ever sees one half-written.

Synthesis outputs, CDM checkpoints and manifests are read by other tools (anomalib,
a resumed run) that cannot tell a truncated PNG or JSON from a good one; writing to a
temporary file beside the target and renaming it over the target makes each file
appear whole or not at all. (The media store keeps its own variant, which also fsyncs:
it is the one copy of a user's data.)

Modes: `mkstemp` creates its file 0600 (private, whatever the umask), and a rename keeps
that mode, so every output would be unreadable to other users and to training
containers running as another uid. Each temp file is given the mode `open()` would have
given a new file (`umasked()`) before it is renamed into place.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Union


def current_umask() -> int:
    """This process's umask, read without changing it where Linux says it (/proc), else by setting it back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umasked(mode: int = 0o666) -> int:
    """`mode` less the umask: what `open()` (0o666) or `mkdir()` (0o777) gives a new file or folder."""
    return mode & ~current_umask()


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` when the block succeeds and is removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp")  # short: a 250-byte name stays legal
    try:
        os.fchmod(fd, umasked())
    finally:
        os.close(fd)
    tmp = Path(name)
    with _replacing(tmp, path):
        yield tmp


@contextmanager
def _replacing(tmp: Union[str, Path], path: Union[str, Path]) -> Iterator[None]:
    """Move `tmp` over `path` when the block succeeds; remove it when it fails (an OSError then names `path`)."""
    try:
        yield
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename in (None, os.fspath(tmp), tmp):  # name the file the user asked for
            raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc
        raise


_SERIAL = itertools.count()  # thread-safe in CPython: each call of write_bytes_atomic gets its own number


def write_bytes_atomic(path: Union[str, Path], data: bytes) -> None:
    """Write `data` to `path` through a temporary file beside it (same guarantees and modes as `atomic_path`).

    Why not `atomic_path`: `mkstemp` creates its file 0600, so that path must read the
    umask (from /proc) and `fchmod` the file; opening the temporary file with O_EXCL and
    mode 0666 lets the kernel apply the umask itself. Measured on 300 writes of an 80 KB
    PNG (a 2-core machine, load ~2): 0.30-0.49 ms per file through `atomic_path`,
    0.08-0.33 ms this way; the Folder writer writes 21 files per CAI target. The name
    (pid and a per-process serial) is unique on this host, and O_EXCL makes a clash with
    another host's writer on a shared file system a retry with the next serial, never an overwrite.
    Names are built as strings and the bytes go out by `os.write`, not through `pathlib`
    and a buffered file object: cProfile of the Folder writer's 2,103 files per 100 CAI
    targets put 0.4 s in pathlib's parsing and 0.2 s in `fdopen`/`close`/context managers,
    against 2.2 s of PNG encoding (the one context manager left, `_replacing`, costs ~2 us a file).
    """
    target = os.fspath(path)
    folder, name = os.path.split(target)
    prefix = os.path.join(folder, f".{name[:40]}.{os.getpid()}-")  # short: a 250-byte name stays legal
    for _ in range(1000):
        tmp = f"{prefix}{next(_SERIAL)}.tmp"
        try:
            fd = os.open(tmp, _TEMP_FLAGS, 0o666)
        except FileExistsError:
            continue
        except FileNotFoundError:
            Path(folder or ".").mkdir(parents=True, exist_ok=True)
            continue
        break
    else:
        raise FileExistsError(f"{target}: no free temporary name beside it")
    with _replacing(tmp, target):
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked (a signal, a pipe-like file system)
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def remove_stale_temps(folders: Iterable[Union[str, Path]]) -> int:
    """Delete the temporary files `atomic_path` leaves when its process is killed (kill -9 runs no cleanup).

    Only call it when no writer is running in these folders (after a batch has ended).
    Returns how many were removed.
    """
    removed = 0
    for folder in folders:
        for tmp in Path(folder).glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
