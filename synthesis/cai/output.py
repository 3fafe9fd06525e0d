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
rewrites identical files. Targets are independent: `workers > 1` runs them in separate
processes and gives byte-identical files and the same manifest order.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from daad.core.atomic import write_bytes_atomic
from daad.core.errors import BadItemError, LayoutError
from daad.core.images import IMAGE_SUFFIXES, encode_png, load_image
from daad.core.processes import process_pool

from .cai import CAI, resize_target

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


def _init_worker(cai: CAI, out_dir: Path) -> None:
    _WORKER["cai"], _WORKER["out"] = cai, out_dir


def _one_target(target: Target) -> tuple[list[dict[str, Any]], str]:
    """Inject into one target and write its files; returns its manifest rows, or an error line."""
    cai: CAI = _WORKER["cai"]
    out: Path = _WORKER["out"]
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


def _results(cai: CAI, targets: list[Target], out: Path, workers: int) -> Iterator[tuple[list[dict[str, Any]], str]]:
    if workers <= 1:
        _init_worker(cai, out)
        yield from map(_one_target, targets)
        return
    with process_pool(workers, initializer=_init_worker, initargs=(cai, out)) as ex:
        yield from ex.map(_one_target, targets, chunksize=1)


def run(cai: CAI, targets: list[Target], out_dir: str | Path, workers: int = 1, progress: bool = True) -> Report:
    """Inject into every target, write the Folder layout, manifest and preview; return a Report.

    A bad target (unreadable, empty foreground, no pattern fits) is reported and
    skipped; the rest of the batch goes on. With `workers > 1` the workers are spawned
    processes, so a script calling this needs the usual `if __name__ == "__main__":` guard.
    """
    out = Path(out_dir).expanduser()
    for sub in ("abnormal", "mask", "normal"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    report = Report(out, targets=len(targets))
    start = time.perf_counter()
    manifest: list[dict[str, Any]] = []
    with tqdm(total=len(targets), desc=f"CAI-{cai.mode[0].upper()}", unit="target", disable=not progress) as bar:
        for rows, error in _results(cai, targets, out, workers):
            if error:
                report.failed.append(error)
                if progress:
                    tqdm.write(f"skipped: {error}")
            else:
                manifest.extend(rows)
                report.by_foreground[rows[0]["foreground"]] += 1
                for row in rows:
                    report.by_class[row["anomaly_class"] or "?"] += 1
                    report.by_scale[row["scale"]] += 1
            bar.update(1)
    report.seconds = time.perf_counter() - start
    report.images = len(manifest)
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
        im = Image.fromarray(a).convert("RGB").resize((tile, tile), Image.Resampling.BILINEAR)
        grid[i * tile : (i + 1) * tile, j * tile : (j + 1) * tile] = np.asarray(im)

    for i, (normal, items) in enumerate(rows.items()):
        put(i, 0, np.asarray(Image.open(out / normal)))
        for j, r in enumerate(items, 1):
            put(i, j, _outline(np.asarray(Image.open(out / r["file"])), np.asarray(Image.open(out / r["mask"]))))
    return grid
