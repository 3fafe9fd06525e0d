"""Running CAI over a folder of targets and writing what a detector trains on.

The files are written by the one Folder writer of every synthesiser
(`daad.synthesis.folder`: anomalib `Folder` layout, collision-free names, deterministic
PNG bytes, one manifest rule, preview):

    out/abnormal/<stem>_<kk>.png   pseudo anomalies (`<stem>`: the target's path, `bottle/000.png` -> `bottle__000`)
    out/mask/<stem>_<kk>.png       their masks (0/255), same names
    out/normal/<stem>.png          the targets at the working size (the normal class)
    out/manifest.jsonl             one row per pseudo anomaly: files, the original target
                                   path, and full provenance (DAAD id, class, R, R', scale,
                                   location, box, mode, seed, foreground, T)
    out/preview.png                a grid: target, then its pseudo anomalies with the mask outlined

A re-run with the same seed rewrites identical files. Targets are independent:
`workers > 1` runs them in separate processes and gives byte-identical files and the
same manifest. Into a folder made with other CAI settings a run is refused unless
`overwrite=True`, which removes what the new run does not write.
Targets are independent: the engine (`daad.engine`: local processes or a Ray cluster)
decides where each one runs; its files are written there, its manifest rows come back to
the driver, which alone writes manifest.jsonl, the preview and `out/.daad-run.jsonl`, the
journal that lets a re-run skip targets whose files are complete. Any engine and worker
count gives the same bytes.

Where the targets run in this process (one worker), `_one_target` does not wait for its
files: the writer's threads encode them while the next target is computed, and the driver
journals a target only when `FolderWriter.settled` says all its files are whole, so a
killed run re-does it. A worker process or Ray actor still waits before its rows go
back. Why: profiled on the 100 targets of `benchmarks/cai.py --cli 100`, the driver spent
2.0 s of its 6.2 s in that per-target wait and 1.0 s more blocked on the writer's short
queue; with both gone (and the fixed PNG filters), `run` went from 2.29x to 1.71x the bare
CAI calls, the old and new code interleaved at load 6-8 (see the README). There, too,
the work a fresh process does that a warm library does not is moved off the computing
thread: the patterns the run will draw are decoded in the background from the start
(`PublishedPool.prefetch`), and each target is decoded while the one before it is
computed (`ReadAhead`); neither changes a pixel or which pattern is drawn.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from daad.core.atomic import remove_stale_temps
from daad.core.errors import BadItemError, LayoutError
from daad.core.images import IMAGE_SUFFIXES, load_image
from daad.engine import Engine, Given, LocalEngine
from daad.engine.journal import Journal
from daad.synthesis.folder import DEFAULT_PNG_LEVEL, FolderWriter, Output, preview_grid, stem_for

from .cai import CAI, resize_target
from .foreground import method_used

JOURNAL = ".daad-run.jsonl"



@dataclass(frozen=True)
class Target:
    """A normal image to inject into: its key (relative path, seeds its generator) and file."""

    key: str
    path: Path

    @property
    def stem(self) -> str:
        return stem_for(self.key)


def find_targets(path: str | Path) -> list[Target]:
    """The target images under `path` (a folder, searched recursively, or one image file), sorted."""
    p = Path(path).expanduser()
    if p.is_file():
        return [Target(p.name, p)]
    if not p.is_dir():
        raise LayoutError(f"{p}: no such file or folder of normal target images")
    found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise LayoutError(f"{p}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    return [Target(f.relative_to(p).as_posix(), f) for f in found]


@dataclass
class Report:
    """What a run did: rows written, per class/scale/foreground counts, failed targets."""

    out_dir: Path
    targets: int = 0
    images: int = 0
    seconds: float = 0.0
    by_class: Counter = field(default_factory=Counter)
    by_scale: Counter = field(default_factory=Counter)
    by_foreground: Counter = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    reused: int = 0  # targets complete from an earlier run, not computed again

    def summary(self) -> str:
        rate = self.images / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{self.images} pseudo anomalies from {self.targets - len(self.failed)} of {self.targets} targets "
            + (f"({self.reused} already complete, kept) " if self.reused else "")
            + f"in {self.seconds:.1f} s ({rate:.1f} images/s) -> {self.out_dir}",
            "  scales: " + ", ".join(f"{k} {self.by_scale[k]}" for k in ("large", "medium", "small") if self.by_scale[k]),
            "  classes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_class.items())),
            "  foreground: " + ", ".join(f"{k} {v} targets" for k, v in sorted(self.by_foreground.items())),
        ]
        if self.failed:
            lines.append(f"  skipped {len(self.failed)} targets:")
            lines += [f"    {f}" for f in self.failed]
        return "\n".join(lines)


READ_AHEAD_BYTES = 32 << 20  # targets decoded ahead, at the working size (see ReadAhead)


def _read_target(path: Path, size: int | None) -> np.ndarray:
    """A target decoded (`load_image`: checked, EXIF-oriented, RGB or L) and resized to the working size."""
    # Resized once: the synthesiser's own resize of an image already at its size is free (0.4 ms per
    # image at 256 px from a 900 px MVTec target was spent resizing it a second time for normal/).
    return resize_target(np.asarray(load_image(path)), size)


class ReadAhead:
    """The targets of an in-process run decoded ahead, in one background thread.

    Why: decoding a 900-1000 px PNG target is 25-30 ms with PIL (0.5 s of CPU for the 100
    targets of `benchmarks/cai.py --cli 100`, 17 of them such PNGs, the other 83 JPEGs at
    0.6 ms), on the thread that computes CAI, while PIL and cv2 release the GIL; in a
    thread it overlaps the CAI of the targets before it. How far ahead: as many targets as
    READ_AHEAD_BYTES holds at the working size (170 at 256 px, 10 at 1024; 2 without a
    working size, when a target's size is not known before it is decoded). Two ahead, as
    before, left `daad synthesize` waiting 0.33-0.37 s on this thread in that benchmark:
    the targets come sorted, so the 17 PNGs came in a row and each cost 20 ms more to
    decode than a CAI call; read far enough ahead, the reader reaches them while the JPEGs
    are computed. The same function decodes the same file, so the arrays (and errors:
    `read` raises what `_read_target` raised) are the same. `close` cancels the rest and
    waits for the one decode under way (Ctrl-C, a failed write).
    """

    def __init__(self, paths: list[Path], size: int | None, depth: int | None = None):
        self._paths, self._size, self._next = paths, size, 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="target-reader")
        self._ahead: deque[tuple[Path, Future]] = deque()
        if depth is None:
            depth = max(2, READ_AHEAD_BYTES // (3 * size * size)) if size else 2
        for _ in range(depth):
            self._submit()

    def _submit(self) -> None:
        if self._next < len(self._paths):
            path = self._paths[self._next]
            self._next += 1
            self._ahead.append((path, self._pool.submit(_read_target, path, self._size)))

    def read(self, path: Path) -> np.ndarray:
        """Target `path` at the working size: the one decoded ahead when it is next in line, else decoded now."""
        if self._ahead and self._ahead[0][0] == path:
            _, job = self._ahead.popleft()
            self._submit()
            return job.result()
        return _read_target(path, self._size)

    def close(self) -> None:
        self._ahead.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _one_target(state: tuple[Any, FolderWriter, ReadAhead | None], target: Target) -> tuple[list[dict[str, Any]], str]:
    """Inject into one target and write its files (on disk before the rows go back); its manifest rows, or an error line."""
    cai, writer, ahead = state
    try:
        image = ahead.read(target.path) if ahead is not None else _read_target(target.path, cai.size)
        injections = cai(image, key=target.key)
    except BadItemError as exc:
        return [], f"{target.path}: {exc.reason}"
    except (ValueError, OSError) as exc:
        return [], f"{target.path}: {exc}"
    outputs = [Output(f"{k:02d}", inj.image, inj.mask, inj.provenance) for k, inj in enumerate(injections)]
    rows, bad = writer.write(target.key, target.path, image, outputs)
    if not writer.in_driver:
        writer.wait()  # a worker's files are on disk before its rows go back (and the driver journals them)
    # In the driver's own writer the files may still be encoding: `run` journals the target once `settled` names it.
    return rows, "; ".join(bad)


def settings_of(cai: Any) -> dict[str, Any]:
    """What decides a synthesiser's output besides the targets and patterns: kept in the folder's daad_run.json.

    CAI names its settings; another synthesiser of the same shape (the baselines) is
    described by its class and its plain attributes (mode, size, seed, per_image, options).
    """
    if isinstance(cai, CAI):
        return {"mode": cai.mode, "quota": [cai.quota[k] for k in sorted(cai.quota)], "size": cai.size, "seed": cai.seed,
                "threshold": cai.threshold, "mixed_rule": cai.mixed_rule,
                "foreground": getattr(cai.masker, "name", "") or getattr(cai.masker, "__name__", "custom")}
    plain = {k: v for k, v in sorted(vars(cai).items()) if isinstance(v, (bool, int, float, str, type(None))) and not k.startswith("_")}
    return {"method": type(cai).__name__, **plain}


def fingerprint(cai: Any) -> str:
    """What a target's output depends on besides the target itself: settings, seed and the pattern pool."""
    if not isinstance(cai, CAI):
        return hashlib.sha256(json.dumps(settings_of(cai), sort_keys=True).encode()).hexdigest()
    pool = cai.pool
    ids = getattr(pool, "ids", None) or [pool.get(i).id for i in range(len(pool))]
    masker = cai.masker
    spec = {"mode": cai.mode, "quota": {str(k): v for k, v in cai.quota.items()}, "size": cai.size, "threshold": cai.threshold,
            "seed": cai.seed, "mixed_rule": cai.mixed_rule, "foreground": [method_used(masker), str(getattr(masker, "model", ""))],
            "sides": [int(x) for x in pool.sides], "ids": list(ids)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _complete(out: Path, rows: list[dict[str, Any]]) -> bool:
    return bool(rows) and all((out / r[k]).is_file() for r in rows for k in ("file", "mask", "normal"))


def _input_paths(cai: CAI, targets: list[Target]) -> list[Path]:
    """What every worker must be able to read: the targets' folders and the pool's memory-mapped dataset files."""
    folders = sorted({t.path.parent for t in targets})
    dataset = getattr(getattr(cai, "pool", None), "dataset", None)
    files = [Path(f["filename"]) for f in getattr(dataset, "cache_files", None) or []]
    return folders + files


def run(cai: Any, targets: list[Target], out_dir: str | Path, workers: int = 1, progress: bool = True,
        settings: dict[str, Any] | None = None, overwrite: bool = False, png_level: int = DEFAULT_PNG_LEVEL,
        engine: Engine | None = None) -> Report:
    """Inject into every target, write the Folder layout, manifest and preview; return a Report.

    A bad target (unreadable, empty foreground, no pattern fits) is reported and
    skipped; the rest of the batch goes on. `engine` decides where targets run (default:
    `LocalEngine(workers)`; with `workers > 1` those are spawned processes, so a script
    calling this needs the usual `if __name__ == "__main__":` guard). Targets whose
    files a previous run with the same settings completed are not computed again.
    `settings` (e.g. the dataset and config the patterns came from) are stored with CAI's
    own; raises FolderInUseError when `out_dir` holds a CAI run made with other
    settings, unless `overwrite` (then what this run does not write is removed).
    `png_level` 1 (the default, ISA-L's deflate with fixed row filters) is about 35x faster
    to encode than 6 (PIL's, the bytes of versions before 1 became the default) with files
    about 15% larger (see `daad.synthesis.folder`); the pixels never depend on it, so it is
    not one of the recorded settings. In this process, the next target is computed while
    the last one's files are encoded (and decoded while the last one is computed, with the
    patterns the run will draw); a target is journalled once its files are whole.
    """
    out = Path(out_dir).expanduser()
    recorded = {**settings_of(cai), **(settings or {})}
    engine = engine or LocalEngine(workers)
    engine.check_paths(readable=_input_paths(cai, targets), writable=[out])
    writer = FolderWriter(out, run=getattr(cai, "name", "") or "cai", settings=recorded, overwrite=overwrite, png_level=png_level)
    report = Report(out, targets=len(targets))
    start = time.perf_counter()
    journal = Journal(out / JOURNAL, fingerprint(cai))
    earlier = journal.load()
    results: list[tuple[list[dict[str, Any]], str] | None] = [None] * len(targets)
    todo = []
    for i, t in enumerate(targets):
        rows = earlier.get(t.key)
        if rows is not None and _complete(out, rows):
            results[i] = (rows, "")
            writer.add(rows)
        else:
            todo.append(i)
    journal.start({targets[i].key: r[0] for i, r in enumerate(results) if r is not None})
    pool: Any = getattr(cai, "pool", None)
    here = isinstance(engine, LocalEngine) and (engine.workers <= 1 or len(todo) <= 1)  # the targets run in this process
    if here and todo and hasattr(pool, "prefetch"):
        pool.prefetch(len(todo) * getattr(cai, "per_image", 1))  # decode the patterns they will draw on the idle core
    ahead = ReadAhead([targets[i].path for i in todo], cai.size) if here and todo else None
    finished: dict[str, list[dict[str, Any]]] = {}  # computed, not yet journalled: the journal never claims a file still being written

    def journal_whole(keys: list[str]) -> None:  # the targets whose files the writer says are whole
        for key in keys:
            if key in finished:
                journal.record(key, finished.pop(key))

    with tqdm(total=len(targets), initial=len(targets) - len(todo), desc=f"CAI-{cai.mode[0].upper()}", unit="target",
              disable=not progress) as bar:
        try:
            for j, (rows, error) in engine.imap(_one_target, [targets[i] for i in todo], setup=Given((cai, writer, ahead))):
                results[todo[j]] = (rows, error)
                writer.add(rows)  # the rows of a worker's writer (in this process: already there, replaced by file)
                if error:
                    if progress:
                        tqdm.write(f"skipped: {error}")
                elif writer.writing(targets[todo[j]].key):  # written by this process: its files may still be encoding
                    finished[targets[todo[j]].key] = rows
                else:  # a worker's: on disk before its rows came back
                    journal.record(targets[todo[j]].key, rows)
                journal_whole(writer.settled())
                bar.update(1)
            journal_whole(writer.wait())
        finally:
            journal.close()
            if hasattr(pool, "stop_prefetch"):
                pool.stop_prefetch()
            if ahead is not None:
                ahead.close()
    remove_stale_temps([out / "normal", out / "abnormal", out / "mask"])  # left by a worker killed mid-write
    for r in results:
        if r is None:
            continue
        rows, error = r
        if error:
            report.failed.append(error)
        if rows:
            report.by_foreground[rows[0]["foreground"]] += 1
            for row in rows:
                report.by_class[row["anomaly_class"] or "?"] += 1
                report.by_scale[row["scale"]] += 1
                report.images += 1
    journal.finish((t.key, r[0]) for t, r in zip(targets, results) if r is not None and not r[1])
    writer.finish()
    report.seconds = time.perf_counter() - start
    report.reused = len(targets) - len(todo)
    return report


__all__ = ["Report", "Target", "find_targets", "preview_grid", "run", "settings_of"]
