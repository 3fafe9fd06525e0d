"""The one writer of the anomalib `Folder` layout, for every synthesiser (CAI, CDM, the baselines).

    out/abnormal/<stem>_<tag>.png   pseudo anomalies
    out/mask/<stem>_<tag>.png       their masks (0/255), same names
    out/normal/<stem>.png           the target exactly as the synthesiser saw it (the working size;
                                    `<stem>___<W>x<H>.png` when another run left it there at another size)
    out/manifest.jsonl              one row per pseudo anomaly: file, mask, normal, target_path + provenance
    out/preview.png                 the first targets, then their pseudo anomalies with the mask outlined
    out/daad_run.json               the settings of each run that wrote here (see `overwrite`)

Use (configure once; write one target's results; finish):

    writer = FolderWriter(out, run="cai", settings={"seed": 0, "size": 256, ...})
    for key, path in targets:
        normal, outs = synthesise(path)                          # outs: [Output(tag, image, mask, provenance)]
        writer.write(key, path, normal, outs)
    writer.finish()                                              # manifest, preview, stale files

Naming (why it cannot collide). `<stem>` is the target's key (its path under the
targets folder) spelt reversibly: a *plain* key (letters, digits, `.`, `-`, single `_`
inside a folder or file name, a `.png` dropped, another image suffix kept) becomes the
key with `/` spelt `__` (`bottle/000.png` -> `bottle__000`, `a_b/x.png` -> `a_b__x`,
`a/b_x.png` -> `a__b_x`); any other key, or a stem longer than `MAX_STEM` bytes,
becomes its sanitised first 80 bytes + `___` + 12 hex of sha256(key). Plain stems never
hold `___`, so the two spellings never meet. `<tag>` is the synthesiser's: CAI `NN`,
CDM `<class>_NNN`; a new synthesiser starts its tag with its own name (`cutpaste-NN`).
A file already recorded in the manifest for another target is refused (one `bad:`
line), never overwritten, so even a badly chosen tag cannot lose a file.

Bytes: PNGs are written by `daad.synthesis.png`: one fixed row filter, Up for images and
None for masks, one IDAT deflated by ISA-L at level 1, no metadata, so the same pixels
give the same bytes on every run. Encoding was ~80% of the writer's time at PIL's level 6
(the default before level 1); with cv2's libpng at level 1, its adaptive filter choice
(it tries every filter on every row) was still half of it, and with the filter fixed, what
was left was zlib's deflate. `python benchmarks/png.py --targets 20 --rounds 3` on real
256 px CAI-N outputs (the `--cli` benchmark's mix of targets, quiet 2-core machine, CPU ms
and KB per file, medians; every row decodes to the same pixels):

    encoder               RGB image       grey image      mask           normal (RGB+grey)
    PIL level 6           15.9 ms 65.0 KB 6.03 ms 25.1 KB 0.38 ms 1.0 KB 8.51 ms 34.5 KB
    cv2 1 Z_RLE adaptive   2.47   63.4    0.92    24.4    0.39    0.9    1.31    33.4
    cv2 1 Z_RLE Up         1.23   67.8    0.47    25.5    0.11    1.1    0.67    35.4
    cv2 1 Z_RLE None       1.09  100.3    0.43    40.8    0.09    0.7    0.63    54.4
    ISA-L 1 Up (images)    0.44   74.8    0.18    28.1    0.03    1.5    0.25    39.3
    ISA-L 1 None (masks)   0.38  101.4    0.15    40.0    0.03    1.0    0.22    53.9

An earlier run of cv2's filters (load ~6) put Sub and Avg at Up's cost (Sub's files 3-20%
larger than Up's, Avg's within 4% either way), Paeth and "fast filters" slower; so images
take Up and masks None (a 0/255 mask has long runs). ISA-L is 2.8x faster than cv2 on
images and 3x on masks, with files about 10% larger (ISA-L's levels 2 and 3 were no
smaller on these images and up to 4x slower on masks). `png_level` 0..3 are ISA-L's
levels; 4..9 are zlib's through PIL (adaptive filters: smaller, far slower: 36x at 6),
and 6 gives the bytes of every version before level 1 became the default. The decoded
pixels never depend on the level or filter (tests/test_cai_e2e.py keeps digests of both).

Writing overlaps computing: `threads` encode and write files in the background (NumPy
and ISA-L release the GIL) while the caller computes the next target; `wait` blocks
until every file is on disk, and `settled` names, in write order, the targets whose
files are all whole, which is when a driver may journal them (`daad.synthesis.cai.output`).
Each file is written to a temporary name and renamed (`write_bytes_atomic`): a reader
or a killed run never sees half a PNG. No fsync, as in every earlier version: a killed
process or a full disk leaves each file whole or absent (what the journal relies on);
syncing 2,100 files per 100 targets would guard only against a power loss.

What the writer costs besides PNG encoding. Timed alone (one process, `write` then
`finish`, two threads) on the precomputed 1,000 pseudo anomalies of `benchmarks/cai.py
--cli 100` (2,103 files, a folder where creating a file costs 0.05-0.08 ms; load 2.7-3.8),
the code before and after interleaved, 3 rounds: encoding alone 1.19-1.36 CPU s; the
whole writer 1.98-2.06 CPU s with one background job per *file* and pathlib paths,
1.65-1.72 CPU s with one job per *target* (`_put`) and string paths in
`write_bytes_atomic` (cProfile had put 0.4 s of its 6.7 s in pathlib's parsing and 0.2 s in
buffered file objects and context managers). What is left besides encoding, ~0.35 s, is
the kernel's open/write/rename of 2,103 files, the manifest and the preview. Where the
folder sits matters more than all of it: creating a file cost 0.75-1.0 ms of system CPU
in folders beside recent mass deletes (this ext4 has no journal and scans for recently
deleted inodes), 1.3-1.8 CPU s per 2,000 files, against 0.05-0.08 ms elsewhere on the same disk.

Re-runs. A row is keyed by its file: a re-run of the same file replaces its row, other
rows stay (CDM writes one class after another into one folder; CAI and CDM may share
one). Rows are kept sorted by file. When `settings` are given, they are stored under
`run` in `daad_run.json`, and a folder that holds files made with other settings for
the same `run` (or files no run recorded) is refused with FolderInUseError unless
`overwrite=True`, which at `finish` removes every file and row this run did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from daad.core.atomic import write_bytes_atomic
from daad.core.errors import DaadError
from daad.core.images import IMAGE_SUFFIXES, encode_png
from daad.synthesis.png import FILTER_NONE, FILTER_UP, LEVELS, png_bytes

MANIFEST = "manifest.jsonl"
PREVIEW = "preview.png"
RUNS = "daad_run.json"
SUBFOLDERS = ("abnormal", "mask", "normal")
MAX_STEM = 120  # bytes; + "_<tag>.png" stays far below the 255-byte name limit
DEFAULT_PNG_LEVEL = 1  # ISA-L's level 1; see the module docstring for the measurement
MAX_PENDING_BYTES = 64 << 20  # arrays queued for encoding: 340 at 256 px RGB (34 CAI targets), 21 at 1024 px
PREVIEW_TARGETS = 4
PREVIEW_TILE = 128
_PLAIN_PART = re.compile(r"^[A-Za-z0-9.-]+(?:_[A-Za-z0-9.-]+)*$")  # no leading, trailing or double "_"


class FolderInUseError(DaadError):
    """The output folder holds files made with other settings; pass overwrite=True (`--overwrite`) to replace them."""


@dataclass
class Output:
    """One pseudo anomaly as a synthesiser hands it to the writer."""

    tag: str  # the name suffix, unique per target within one synthesiser (CAI "03", CDM "crack_003")
    image: np.ndarray  # uint8, same height and width as the normal image
    mask: np.ndarray  # uint8 0/255 (or bool)
    provenance: dict[str, Any] = field(default_factory=dict)


def stem_for(key: str) -> str:
    """The reversible (or, for odd or long keys, hash-suffixed) file-name stem of target `key`."""
    base = key.removesuffix(".png")
    parts = base.split("/")
    suffix = Path(base).suffix.lower()
    plain = (
        all(_PLAIN_PART.match(p) for p in parts)
        and (suffix in IMAGE_SUFFIXES) != key.endswith(".png")  # x.png -> x; x.jpg -> x.jpg; x.jpg.png and x hashed
    )
    stem = "__".join(parts)
    if plain and len(stem.encode("utf-8")) <= MAX_STEM:
        return stem
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", base).strip("_")[:80] or "target"
    return f"{readable}___{hashlib.sha256(key.encode('utf-8')).hexdigest()[:12]}"


def _png(a: np.ndarray, level: int = DEFAULT_PNG_LEVEL, mask: bool = False) -> bytes:
    """Deterministic PNG bytes: ISA-L at `level` 0..3 with one fixed row filter, or PIL's zlib at 4..9 (6: the bytes of earlier versions).

    The filter is Up for images and None for masks (0/255), not libpng's adaptive
    choice per row: see the module docstring for the measurement. The pixels never depend on it.
    """
    if level in LEVELS:
        return png_bytes(a, FILTER_NONE if mask else FILTER_UP, level)
    return encode_png(Image.fromarray(a), level)


def _encode_and_write(files: list[tuple[str, np.ndarray, bool]], level: int) -> None:
    """Encode and write one target's files (path, array, is it a mask), in order."""
    for path, array, mask in files:
        write_bytes_atomic(path, _png(array, level, mask))


def _read_rows(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DaadError(f"{path}:{n}: not JSON ({exc.msg})") from None
                rows[str(row.get("file", ""))] = row
    return rows


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write atomically unless the file already holds these bytes: a re-run that changes nothing touches nothing."""
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    write_bytes_atomic(path, data)


class FolderWriter:
    """Writes one run of a synthesiser into an anomalib Folder; see the module docstring.

    `run` names the run's settings record ("cai", "cdm:crack"); `settings` (JSON-able)
    are recorded in daad_run.json and, with `strict`, a folder made with other settings
    is refused; `threads` encode PNGs in
    the background (0: in the caller's thread). Picklable before the first `write`, so a
    worker process can hold one; rows it returns are what the parent's writer `add`s.
    """

    def __init__(self, out: str | Path, run: str, settings: dict[str, Any] | None = None,
                 overwrite: bool = False, strict: bool = True, threads: int = 2, png_level: int = DEFAULT_PNG_LEVEL):
        if not 0 <= png_level <= 9:
            raise ValueError(f"png_level {png_level}: must be 0..9")
        self.out = Path(out).expanduser()
        self.png_level = png_level
        self.run, self.settings, self.overwrite, self.threads = run, settings, overwrite, threads
        self.in_driver = True  # False in a worker's pickled copy; see `settled`
        self._pending: deque[tuple[Future, int]] = deque()  # (file job, bytes of its array), oldest first
        self._pending_bytes = 0
        self._targets: deque[tuple[str, list[Future]]] = deque()  # each unsettled `write`'s key and file jobs, in write order
        self._pool: ThreadPoolExecutor | None = None
        self._rows: dict[str, dict[str, Any]] = {}
        self._written: set[str] = set()  # paths relative to out, this run
        self._known = {} if overwrite else _read_rows(self.out / MANIFEST)
        if settings is not None and strict:
            self._check_settings()
        for sub in SUBFOLDERS:
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        if settings is not None and not overwrite:
            self._record_run()  # now, not only at `finish`: a run killed mid-way leaves a folder its re-run accepts

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"], state["_pending"], state["_pending_bytes"], state["_targets"] = None, deque(), 0, deque()
        state["in_driver"] = False
        return state

    # -- settings -------------------------------------------------------------------------
    def _runs(self) -> dict[str, Any]:
        path = self.out / RUNS
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def _record_run(self) -> None:
        runs = {} if self.overwrite else self._runs()
        runs[self.run] = self.settings
        _write_if_changed(self.out / RUNS, (json.dumps(runs, indent=1, sort_keys=True) + "\n").encode("utf-8"))

    def _check_settings(self) -> None:
        if self.overwrite or not self.out.is_dir():
            return
        runs = self._runs()
        held = any((self.out / s).is_dir() and any((self.out / s).iterdir()) for s in SUBFOLDERS) or bool(self._known)
        # The PNG level never changes pixels: runs before level 1 became the default recorded it, it is not compared.
        recorded = {k: v for k, v in runs.get(self.run, {}).items() if k != "png_level"}
        if self.run in runs and recorded != self.settings:
            old, new = recorded, self.settings or {}
            diff = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
            raise FolderInUseError(f"{self.out}: holds a {self.run} run made with other settings ({diff}); "
                                   "choose another --out or pass --overwrite (it removes what this run does not write)")
        if held and not runs:
            raise FolderInUseError(f"{self.out}: not empty and no run recorded in {RUNS}; "
                                   "choose another --out or pass --overwrite (it removes what this run does not write)")

    # -- writing --------------------------------------------------------------------------
    def _put(self, files: list[tuple[str, np.ndarray, bool]]) -> list[Future]:
        """Encode and write one target's files: now (`threads` 0), or as one background job.

        One job per target, not per file: with 21 files per CAI target, a future and a
        thread wake-up per file was 2,100 hand-offs per 100 targets; two threads still
        keep two targets encoding while the caller computes the next.
        """
        if self.threads <= 0:
            _encode_and_write(files, self.png_level)
            return []
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="folder-writer")
        size = sum(a.nbytes for _, a, _ in files)
        job = self._pool.submit(_encode_and_write, files, self.png_level)
        self._pending.append((job, size))
        self._pending_bytes += size
        while self._pending_bytes > MAX_PENDING_BYTES:  # bound the arrays held in memory
            done, held = self._pending.popleft()
            self._pending_bytes -= held
            done.result()
        return [job]

    def write(self, key: str, target_path: str | Path, normal: np.ndarray, outputs: list[Output]) -> tuple[list[dict[str, Any]], list[str]]:
        """Write one target's normal image and pseudo anomalies; return (its manifest rows, `bad:` lines).

        The rows are also added to this writer's manifest; a process worker's writer
        returns them for the parent's `add`. With `threads`, the files are encoded and
        written in the background: they are complete on disk once `wait` returns, or once
        `settled` has named `key`.
        """
        stem = stem_for(key)
        normal_rel = self._normal_name(stem, normal)
        resolved = str(Path(target_path).resolve())  # once per target: 0.39 s of 1000 `resolve` calls per 100 targets was per row
        rows, bad = [], []
        files: list[tuple[str, np.ndarray, bool]] = []  # (path, array, is it a mask), written in this order
        base = os.path.join(os.fspath(self.out), "")
        for o in outputs:
            if o.image.shape[:2] != normal.shape[:2] or o.mask.shape[:2] != normal.shape[:2]:
                bad.append(f"bad: {target_path}: output {o.tag} is {o.image.shape[:2]} (mask {o.mask.shape[:2]}), the normal image {normal.shape[:2]}")
                continue
            name = f"{stem}_{o.tag}.png"
            other = self._known.get(f"abnormal/{name}")
            if other is not None and other.get("target", key) != key:
                bad.append(f"bad: {target_path}: abnormal/{name} already holds a pseudo anomaly of target {other.get('target')!r}; not overwritten")
                continue
            mask = o.mask if o.mask.dtype == np.uint8 else (np.asarray(o.mask) > 0).astype(np.uint8) * 255
            files += [(f"{base}abnormal/{name}", o.image, False), (f"{base}mask/{name}", mask, True)]
            self._written.update((f"abnormal/{name}", f"mask/{name}"))
            rows.append({"file": f"abnormal/{name}", "mask": f"mask/{name}", "normal": normal_rel,
                         "target_path": resolved, "target": key, **o.provenance})
        if rows:
            files.append((base + normal_rel, normal, False))
            self._written.add(normal_rel)
        self._targets.append((key, self._put(files) if files else []))
        self.add(rows)
        return rows, bad

    def _normal_name(self, stem: str, normal: np.ndarray) -> str:
        """`normal/<stem>.png`, or `normal/<stem>___<W>x<H>.png` when another run left that target there at another size.

        (CAI works at 256 px, CDM at the image's own size: each run's pseudo anomalies
        keep their own normal image; `___<W>x<H>` cannot be a stem, so it meets nothing.)
        """
        rel = f"normal/{stem}.png"
        path = self.out / rel
        if self.overwrite or rel in self._written or not path.is_file():
            return rel
        try:
            with Image.open(path) as im:
                same = im.size == (normal.shape[1], normal.shape[0])
        except OSError:
            return rel
        return rel if same else f"normal/{stem}___{normal.shape[1]}x{normal.shape[0]}.png"

    def add(self, rows: list[dict[str, Any]], written: bool = True) -> None:
        """Record rows written by another writer of this run (a worker process's)."""
        for r in rows:
            self._rows[r["file"]] = r
            if written:
                self._written.update((r["file"], r["mask"], r["normal"]))

    def writing(self, key: str) -> bool:
        """Whether this writer's `write` of `key` may still have files being encoded (`settled` has not named it)."""
        return any(k == key for k, _ in self._targets)  # short: a driver calls `settled` after each target

    def settled(self) -> list[str]:
        """The keys of the `write` calls whose files are all complete on disk since the last call, in write order.

        Stops at the first target still being written, so a key is never named before
        the ones written earlier; raises the first write error. This is what lets the
        driver compute the next target while the last one's PNGs are encoded (NumPy and
        ISA-L release the GIL) and still journal a target only once its files are whole.
        """
        keys = []
        while self._targets and all(job.done() for job in self._targets[0][1]):
            key, jobs = self._targets.popleft()
            for job in jobs:
                job.result()
            keys.append(key)
        return keys

    def wait(self) -> list[str]:
        """Block until every file handed to `write` is on disk (raises the first write error); the keys `settled` had not named."""
        for job, _ in self._pending:
            job.result()
        self._pending.clear()
        self._pending_bytes = 0
        keys = [key for key, _ in self._targets]
        for _, jobs in self._targets:
            for job in jobs:
                job.result()
        self._targets.clear()
        return keys

    def finish(self, preview: bool = True) -> list[dict[str, Any]]:
        """Wait for the files, write manifest.jsonl (and preview.png, the run record); return this run's rows sorted by file."""
        self.wait()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        merged = {} if self.overwrite else {f: r for f, r in _read_rows(self.out / MANIFEST).items() if f}
        merged.update(self._rows)
        ordered = [merged[f] for f in sorted(merged)]
        if self.overwrite:
            self._remove_stale()
        _write_if_changed(self.out / MANIFEST, "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered).encode("utf-8"))
        if self.settings is not None:
            self._record_run()
        if preview and ordered:
            _write_if_changed(self.out / PREVIEW, _png(preview_grid(self.out, ordered)))
        elif self.overwrite:
            (self.out / PREVIEW).unlink(missing_ok=True)
        return [self._rows[f] for f in sorted(self._rows)]

    def _remove_stale(self) -> None:
        for sub in SUBFOLDERS:
            for f in (self.out / sub).iterdir():
                if f.is_file() and f"{sub}/{f.name}" not in self._written:
                    f.unlink()


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
