"""A driver-side journal of finished items, so a re-run (after a crash, a lost cluster, Ctrl-C) skips them.

One JSON line per finished item, appended and flushed by the driver as each result
arrives (workers never write it: one writer, no locks on a shared file system); the
first line holds a fingerprint of everything the results depend on, so a re-run with
other settings starts over instead of reusing stale results. A line cut short by a
crash is ignored. `finish` rewrites the journal in input order, so a finished run's
journal has the same bytes whatever engine or worker count produced it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from daad.core.atomic import write_bytes_atomic


class Journal:
    def __init__(self, path: str | Path, fingerprint: str):
        self.path, self.fingerprint = Path(path), fingerprint
        self._file: Any = None

    def load(self) -> dict[str, Any]:
        """Results recorded by an earlier run with the same fingerprint, by key ({} when none)."""
        if not self.path.is_file():
            return {}
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            if not lines or json.loads(lines[0]).get("fingerprint") != self.fingerprint:
                return {}
        except json.JSONDecodeError:
            return {}
        done = {}
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a run killed mid-write
            done[entry["key"]] = entry["result"]
        return done

    def start(self, kept: dict[str, Any]) -> None:
        """Begin this run's journal with the results it keeps from the last one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_all(kept.items())
        self._file = open(self.path, "a", encoding="utf-8")

    def record(self, key: str, result: Any) -> None:
        self._file.write(json.dumps({"key": key, "result": result}, sort_keys=True) + "\n")
        self._file.flush()

    def finish(self, entries: Iterable[tuple[str, Any]]) -> None:
        """Close, and rewrite with `entries` (every finished item, in input order)."""
        self.close()
        self._write_all(entries)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write_all(self, entries: Iterable[tuple[str, Any]]) -> None:
        text = json.dumps({"fingerprint": self.fingerprint}) + "\n"
        text += "".join(json.dumps({"key": k, "result": r}, sort_keys=True) + "\n" for k, r in entries)
        write_bytes_atomic(self.path, text.encode("utf-8"))
