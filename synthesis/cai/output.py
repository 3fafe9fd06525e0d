"""Running CAI over a folder of targets and writing what a detector trains on.

Layout (anomalib `Folder`: normal_dir="normal", abnormal_dir="abnormal", mask_dir="mask"):

    out/abnormal/<target>_<kk>.png   pseudo anomalies
    out/mask/<target>_<kk>.png       their masks (0/255), same names
    out/normal/<target>.png          the targets at the working size (the normal class)
    out/manifest.jsonl               one row per pseudo anomaly: files, the original target
                                     path, and full provenance (DAAD id, class, R, R', scale,
                                     location, box, mode, seed, foreground, T)
    out/preview.png                  a grid: target, then its pseudo anomalies with the mask outlined

`<target>` is the target's path relative to the targets folder with `/` turned into
`__`, so `bottle/000.png` and `capsule/000.png` do not collide. Every file is written
atomically (temp + rename) with deterministic PNG bytes, so a re-run with the same seed
rewrites identical files. Targets are independent: the engine (`daad.engine`: local
processes or a Ray cluster) decides where each one runs; its files are written there,
its manifest rows come back to the driver, which alone writes manifest.jsonl (in target
order), the preview and `out/.daad-run.jsonl`, the journal that lets a re-run skip
targets whose files are complete. Any engine and worker count gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from daad.core.atomic import remove_stale_temps, write_bytes_atomic
from daad.core.errors import BadItemError, LayoutError
from daad.core.images import IMAGE_SUFFIXES, encode_png, load_image
from daad.engine import Engine, Given, LocalEngine
from daad.engine.journal import Journal

from .cai import CAI, resize_target
from .foreground import method_used

JOURNAL = ".daad-run.jsonl"

PREVIEW_TARGETS = 4
PREVIEW_TILE = 128


@dataclass(frozen=True)
class Target:
    """A normal image to inject into: its key (relative path, seeds its generator) and file."""

    key: str
    path: Path

    @property
    def stem(self) -> str:
        base = self.key.rsplit(".", 1)[0] if "." in Path(self.key).name else self.key
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", base.replace("/", "__"))


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


def _png(a: np.ndarray) -> bytes:
    return encode_png(Image.fromarray(a))


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


def _one_target(state: tuple[CAI, Path], target: Target) -> tuple[list[dict[str, Any]], str]:
    """Inject into one target and write its files; returns its manifest rows, or an error line."""
    cai, out = state
    try:
        image = np.asarray(load_image(target.path))
        injections = cai(image, key=target.key)
    except BadItemError as exc:
        return [], f"{target.path}: {exc.reason}"
    except (ValueError, OSError) as exc:
        return [], f"{target.path}: {exc}"
    normal_name = f"{target.stem}.png"
    write_bytes_atomic(out / "normal" / normal_name, _png(resize_target(image, cai.size)))
    rows = []
    for k, inj in enumerate(injections):
        name = f"{target.stem}_{k:02d}.png"
        write_bytes_atomic(out / "abnormal" / name, _png(inj.image))
        write_bytes_atomic(out / "mask" / name, _png(inj.mask))
        rows.append({"file": f"abnormal/{name}", "mask": f"mask/{name}", "normal": f"normal/{normal_name}",
                     "target_path": str(target.path.resolve()), **inj.provenance})
    return rows, ""


def fingerprint(cai: CAI) -> str:
    """What a target's output depends on besides the target itself: settings, seed and the pattern pool."""
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
    dataset = getattr(cai.pool, "dataset", None)
    files = [Path(f["filename"]) for f in getattr(dataset, "cache_files", None) or []]
    return folders + files


def run(cai: CAI, targets: list[Target], out_dir: str | Path, workers: int = 1, progress: bool = True,
        engine: Engine | None = None) -> Report:
    """Inject into every target, write the Folder layout, manifest and preview; return a Report.

    A bad target (unreadable, empty foreground, no pattern fits) is reported and
    skipped; the rest of the batch goes on. `engine` decides where targets run (default:
    `LocalEngine(workers)`; with `workers > 1` those are spawned processes, so a script
    calling this needs the usual `if __name__ == "__main__":` guard). Targets whose
    files a previous run with the same settings completed are not computed again.
    """
    out = Path(out_dir).expanduser()
    engine = engine or LocalEngine(workers)
    engine.check_paths(readable=_input_paths(cai, targets), writable=[out])
    for sub in ("abnormal", "mask", "normal"):
        (out / sub).mkdir(parents=True, exist_ok=True)
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
        else:
            todo.append(i)
    journal.start({targets[i].key: results[i][0] for i in range(len(targets)) if results[i] is not None})  # type: ignore[index]
    with tqdm(total=len(targets), initial=len(targets) - len(todo), desc=f"CAI-{cai.mode[0].upper()}", unit="target",
              disable=not progress) as bar:
        try:
            for j, (rows, error) in engine.imap(_one_target, [targets[i] for i in todo], setup=Given((cai, out))):
                results[todo[j]] = (rows, error)
                if error:
                    if progress:
                        tqdm.write(f"skipped: {error}")
                else:
                    journal.record(targets[todo[j]].key, rows)
                bar.update(1)
        finally:
            journal.close()
    remove_stale_temps([out / "normal", out / "abnormal", out / "mask"])  # left by a worker killed mid-write
    manifest: list[dict[str, Any]] = []
    for rows, error in results:  # type: ignore[misc]
        if error:
            report.failed.append(error)
            continue
        manifest.extend(rows)
        report.by_foreground[rows[0]["foreground"]] += 1
        for row in rows:
            report.by_class[row["anomaly_class"] or "?"] += 1
            report.by_scale[row["scale"]] += 1
    journal.finish((t.key, r[0]) for t, r in zip(targets, results) if r is not None and not r[1])
    report.seconds = time.perf_counter() - start
    report.images = len(manifest)
    report.reused = len(targets) - len(todo)
    write_bytes_atomic(out / "manifest.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in manifest).encode("utf-8"))
    if manifest:
        write_bytes_atomic(out / "preview.png", _png(preview_grid(out, manifest)))
    return report


def _outline(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image in RGB with the mask's edge drawn in red."""
    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image.copy()
    m = mask > 0
    inner = np.zeros_like(m)
    inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    rgb[m & ~inner] = (255, 0, 0)
    return rgb


def preview_grid(out: Path, manifest: list[dict[str, Any]], max_targets: int = PREVIEW_TARGETS, tile: int = PREVIEW_TILE) -> np.ndarray:
    """One row per target (the first `max_targets`): the normal image, then each pseudo anomaly with its mask outlined."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in manifest:
        if r["normal"] in rows or len(rows) < max_targets:
            rows.setdefault(r["normal"], []).append(r)
    width = 1 + max(len(v) for v in rows.values())
    grid = np.full((tile * len(rows), tile * width, 3), 255, dtype=np.uint8)

    def put(i: int, j: int, a: np.ndarray) -> None:
        im = Image.fromarray(a).convert("RGB").resize((tile, tile), Image.BILINEAR)
        grid[i * tile : (i + 1) * tile, j * tile : (j + 1) * tile] = np.asarray(im)

    for i, (normal, items) in enumerate(rows.items()):
        put(i, 0, np.asarray(Image.open(out / normal)))
        for j, r in enumerate(items, 1):
            put(i, j, _outline(np.asarray(Image.open(out / r["file"])), np.asarray(Image.open(out / r["mask"]))))
    return grid
