"""Write files so that no reader, crash or `kill -9` ever sees one half-written.

Synthesis outputs, CDM checkpoints and manifests are read by other tools (anomalib,
a resumed run) that cannot tell a truncated PNG or JSON from a good one; writing to a
temporary file beside the target and renaming it over the target makes each file
appear whole or not at all. (The media store keeps its own variant, which also fsyncs:
it is the one copy of a user's data.)
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Union


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` when the block succeeds and is removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Union[str, Path], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


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
