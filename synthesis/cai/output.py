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
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import numpy as np
from tqdm import tqdm

from daad.core.errors import BadItemError, LayoutError
from daad.core.images import IMAGE_SUFFIXES, load_image
from daad.synthesis.folder import DEFAULT_PNG_LEVEL, FolderWriter, Output, preview_grid, stem_for
from daad.core.processes import process_pool

from .cai import CAI, resize_target



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

    def summary(self) -> str:
        rate = self.images / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"{self.images} pseudo anomalies from {self.targets - len(self.failed)} of {self.targets} targets "
            f"in {self.seconds:.1f} s ({rate:.1f} images/s) -> {self.out_dir}",
            "  scales: " + ", ".join(f"{k} {self.by_scale[k]}" for k in ("large", "medium", "small") if self.by_scale[k]),
            "  classes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_class.items())),
            "  foreground: " + ", ".join(f"{k} {v} targets" for k, v in sorted(self.by_foreground.items())),
        ]
        if self.failed:
            lines.append(f"  skipped {len(self.failed)} targets:")
            lines += [f"    {f}" for f in self.failed]
        return "\n".join(lines)


_WORKER: dict[str, Any] = {}


def _init_worker(cai: CAI, writer: FolderWriter) -> None:
    _WORKER["cai"], _WORKER["writer"] = cai, writer


def _one_target(target: Target) -> tuple[list[dict[str, Any]], str]:
    """Inject into one target and hand its files to the writer; returns its manifest rows, or an error line."""
    cai: CAI = _WORKER["cai"]
    writer: FolderWriter = _WORKER["writer"]
    try:
        image = np.asarray(load_image(target.path))
        injections = cai(image, key=target.key)
    except BadItemError as exc:
        return [], f"{target.path}: {exc.reason}"
    except (ValueError, OSError) as exc:
        return [], f"{target.path}: {exc}"
    outputs = [Output(f"{k:02d}", inj.image, inj.mask, inj.provenance) for k, inj in enumerate(injections)]
    rows, bad = writer.write(target.key, target.path, resize_target(image, cai.size), outputs)
    return rows, "; ".join(bad)


def _in_worker(target: Target) -> tuple[list[dict[str, Any]], str]:
    """`_one_target` in a worker process: its files are on disk before the rows go back."""
    result = _one_target(target)
    _WORKER["writer"].wait()
    return result


def _results(cai: CAI, targets: list[Target], writer: FolderWriter, workers: int) -> Iterator[tuple[list[dict[str, Any]], str]]:
    if workers <= 1:
        _init_worker(cai, writer)
        yield from map(_one_target, targets)
        return
    with process_pool(workers, initializer=_init_worker, initargs=(cai, writer)) as ex:
        for rows, error in ex.map(_in_worker, targets, chunksize=1):
            writer.add(rows)
            yield rows, error


def settings_of(cai: CAI) -> dict[str, Any]:
    """What decides CAI's output besides the targets and patterns: kept in the folder's daad_run.json."""
    return {"mode": cai.mode, "quota": [cai.quota[k] for k in sorted(cai.quota)], "size": cai.size, "seed": cai.seed,
            "threshold": cai.threshold, "mixed_rule": cai.mixed_rule,
            "foreground": getattr(cai.masker, "name", "") or getattr(cai.masker, "__name__", "custom")}


def run(cai: CAI, targets: list[Target], out_dir: str | Path, workers: int = 1, progress: bool = True,
        settings: dict[str, Any] | None = None, overwrite: bool = False, png_level: int = DEFAULT_PNG_LEVEL) -> Report:
    """Inject into every target, write the Folder layout, manifest and preview; return a Report.

    A bad target (unreadable, empty foreground, no pattern fits) is reported and
    skipped; the rest of the batch goes on. With `workers > 1` the workers are spawned
    processes, so a script calling this needs the usual `if __name__ == "__main__":` guard.
    `settings` (e.g. the dataset and config the patterns came from) are stored with CAI's
    own; raises FolderInUseError when `out_dir` holds a CAI run made with other
    settings, unless `overwrite` (then what this run does not write is removed).
    `png_level` 6 (the default) writes the bytes every earlier version wrote; another
    zlib level (cv2's encoder) is faster (1: measured in benchmarks/cai.py --cli), still
    the same bytes for the same seed, and recorded with the settings.
    """
    out = Path(out_dir).expanduser()
    recorded = {**settings_of(cai), **(settings or {})}
    if png_level != DEFAULT_PNG_LEVEL:
        recorded["png_level"] = png_level
    writer = FolderWriter(out, run="cai", settings=recorded, overwrite=overwrite, png_level=png_level)
    report = Report(out, targets=len(targets))
    start = time.perf_counter()
    with tqdm(total=len(targets), desc=f"CAI-{cai.mode[0].upper()}", unit="target", disable=not progress) as bar:
        for rows, error in _results(cai, targets, writer, workers):
            if error:
                report.failed.append(error)
                if progress:
                    tqdm.write(f"skipped: {error}")
            if rows:
                report.by_foreground[rows[0]["foreground"]] += 1
                for row in rows:
                    report.by_class[row["anomaly_class"] or "?"] += 1
                    report.by_scale[row["scale"]] += 1
                    report.images += 1
            bar.update(1)
    writer.finish()
    report.seconds = time.perf_counter() - start
    return report


__all__ = ["Report", "Target", "find_targets", "preview_grid", "run", "settings_of"]
