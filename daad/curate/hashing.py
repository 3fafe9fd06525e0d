"""64-bit perceptual hashes (pHash, dHash), bit for bit those of `imagehash`, computed in batches.

Why our own implementation and not `imagehash` itself: `imagehash.phash` and
`imagehash.dhash` each convert the image to grey again, and run one DCT per image.
Here an image is decoded and converted to grey once, both thumbnails come from that
grey image with the same Pillow calls `imagehash` makes (`convert("L")`, then
`resize(..., LANCZOS)` to 32x32 and 9x8), and the DCTs of a whole batch run in one
`scipy.fftpack.dct` call, which gives the same floats as one call per image. The bits,
their order (row-major, first bit most significant) and the 16-hex-digit strings are
`imagehash`'s: `str(imagehash.phash(im)) == phash(im)` (tests/test_hashing.py proves it
on the real images in ../shared/data). That arithmetic is `daad.core.perceptual`, which
ingest also uses to hash each new record's image as it is collected; this module
hashes files in batches, in threads or processes, with variants or the fast mode;
`FactsStream` hashes files and boxes masks ahead of a consumer that needs them in order
(publish writing the rows of a catalog that stored neither).

Where it runs (`hash_files`): a batch under `POOL_MIN_BYTES` of files in this process,
in `default_threads()` threads; a bigger one in a pool of processes (one per CPU), or on
the engine given. Threads because Pillow releases the GIL around its decoders, convert
and resample (`ImagingSectionEnter` in its C code), which are ~85% of the time (cProfile
of 183 real Magnetic Tile and MVTec AD files: decode 59%, resize 24%, convert 2%), and a
thread costs nothing to start where a spawned pool of 2 costs ~1.5 CPU s. Measured
(benchmarks/dedupe.py `threads`, 200 real files, the same hashes): the same CPU time
with 1 and 2 threads, and 0.8-1.23x wall in six runs, because this shared machine gives
any one thread about half a core (a pure-Python loop ran at 0.5 CPU s per wall s, load
5.0-8.7): a speed-up from the second core needs a machine with one free, which these
runs never had.

Decoding files (`hash_files`) keeps those bits and skips what they do not need: no
image is copied to drop its metadata first (`daad.core.images.decode`, not
`load_image`: the hashes only read pixels), an upright image is not copied by the EXIF
step, and a grey image is not converted to grey again. `fast=True` (`daad dedupe --fast`, `daad leakage --fast`, opt-in) gives up the
bits for speed: JPEGs are downscaled in the DCT domain while decoding and thumbnails
are box-reduced first (see `decode_grey`); its hashes are never stored, and its recall on the planted
copies of benchmarks/dedupe.py is printed beside its speed (README, "Near-duplicates").

Where the time goes, per core (benchmarks/dedupe.py `per_core`, 420 planted-copy images,
single thread, load ~8 on 2 shared cores, Dec 2): JPEG q95 files 4.2 ms an image
(imagededup's PHash 4.9 ms: 1.17x), of which decode 1.9, convert("L") 0.2 and the two
LANCZOS thumbnails 1.2 + 1.0 (each resize filters every input pixel ~6 times, whatever
the output size, so the 9x8 costs what the 32x32 does); PNG files 10.5 ms (imagededup
10.9 ms: 1.04x), of which decode 7.7. Those are imagehash's own calls: while the bits stay
imagehash's, daad cannot be much faster than imagededup (which decodes the same bytes and
resizes once, in RGB). Rejected as not identical: one resize serving both hashes, grey
decoding of RGB JPEGs (below), a DCT as a matrix product A @ X @ A.T (same bits on 200
real thumbnails, other bits on 6 of 7 flat or gradient ones, whose coefficients are
rounding noise that `scipy.fftpack.dct` rounds its own way; the DCT is <1% of the time). `fast=True` is 0.95-1.25 ms a JPEG (3.96-4.38x imagededup in four runs), 7.8 ms a PNG (1.4x).

Checked again for anything both identical and faster (Dec 2, /tmp scripts on the real
files, load ~1.5): one shared `convert("L")` for both hashes is what `thumbnails` already
does, and a grey PNG already decodes straight to "L" (no conversion at all). On 33 RGB
MVTec AD PNGs (1024x1024, the media store's format) a decode costs 28-41 ms, the grey
conversion ~1 ms, the two grey LANCZOS thumbnails 3.5-4.0 + 3.0-3.4 ms, against
imagededup's one RGB LANCZOS to 32x32 (+ grey) at 9.2-9.6 ms: the same work within 10%,
so per core the exact mode stays at 1.1x imagededup (1.10x on 1498 planted-copy PNGs,
load 2.0). `Image.reduce(2)` before the LANCZOS costs 0.6-0.9 ms but gave imagehash's
thumbnail on 0 of 40 images (so did `reducing_gap=3`), and OpenCV's PNG decoder with
Pillow's luma formula (r*19595 + g*38470 + b*7471 + 0x8000 >> 16) gave Pillow's grey
pixels on 300/300 grey and 33/33 RGB PNGs but was no faster on the RGB ones (27.5 vs
27.8 ms) and 1.2-1.35x on small grey ones (decode is half their time): not worth a
second decoder beside daad's checks. The 2x goal is for the whole call: imagededup's
default `encode_images` is a pool of os.cpu_count() processes, daad's default
`hash_files` threads in this process (processes above `POOL_MIN_BYTES`); both are
printed side by side, wall and CPU, by benchmarks/dedupe.py ("default against default").

Dihedral variants (`variants=True`): the hashes of the image's 8 rotations/flips, each
exactly `imagehash` of `im.transpose(t)`, so a mirrored or rotated copy of an image is
within a few bits of one of the original's variants. Variant 0 is the image itself.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
import scipy.fftpack  # noqa: F401  (the dedupe extra: this module is what needs it, `perceptual` imports it lazily)
from PIL import Image
from tqdm import tqdm

from daad.core.errors import BadItemError
from daad.core.images import decode
from daad.core.mask_box import checked_box
from daad.core.processes import process_pool
from daad.core.perceptual import DIHEDRAL, HASH_SIZE, PHASH_SIDE, dhash_bits, phash_bits, thumbnails, to_hex
from daad.engine import Engine, LocalEngine

__all__ = ["DIHEDRAL", "HASH_SIZE", "Hashes", "dhash", "dhash_bits", "hamming", "hash_files", "hash_images", "hex_array",
           "phash", "phash_bits", "to_hex"]

FAST_SIDE = 4 * PHASH_SIDE  # fast mode: libjpeg downscales to no less than this (4x the pHash thumbnail)
# Below this many bytes of files, `hash_files` (no workers, no engine given) hashes in this
# process, in threads: a spawned pool of 2 costs 1.3-1.5 CPU s and 5-6 s wall to start (2 tiny
# tasks, load 7 on 2 cores), about what hashing 30-60 MB of files costs in one process
# (12 MB/s on the JPEG q95 benchmark set, 22-28 MB/s on PNGs).
POOL_MIN_BYTES = 64 << 20


def hex_array(texts: Iterable[str]) -> np.ndarray:
    """16-hex-digit strings -> uint64 array."""
    return np.array([int(t, 16) for t in texts], dtype=np.uint64)


def phash(im: Image.Image) -> str:
    """pHash of one image, as `str(imagehash.phash(im))`."""
    return to_hex(phash_bits(thumbnails(im, False)[0])[0])


def dhash(im: Image.Image) -> str:
    """dHash of one image, as `str(imagehash.dhash(im))`."""
    return to_hex(dhash_bits(thumbnails(im, False)[1])[0])


@dataclass
class Hashes:
    """Hashes of a batch of images, in input order.

    `phash`/`dhash` are (n,) uint64; with variants, `phash_variants`/`dhash_variants` are
    (n, 8) (column 0 equals `phash`). `ok[i]` is False for an image that could not be
    read; its hashes are 0 and `errors` holds its one-line reason.
    """

    phash: np.ndarray
    dhash: np.ndarray
    ok: np.ndarray
    phash_variants: np.ndarray | None = None
    dhash_variants: np.ndarray | None = None
    errors: list[str] = field(default_factory=list)


def hash_images(images: Sequence[Image.Image], variants: bool = False) -> Hashes:
    """Hash already-decoded images (one batched DCT for all of them)."""
    n, v = len(images), 8 if variants else 1
    ph = np.zeros((n, v, PHASH_SIDE, PHASH_SIDE), np.uint8)
    dh = np.zeros((n, v, HASH_SIZE, HASH_SIZE + 1), np.uint8)
    for i, im in enumerate(images):
        ph[i], dh[i] = thumbnails(im, variants)
    return _finish(ph, dh, np.ones(n, bool), variants, [])


def _finish(ph: np.ndarray, dh: np.ndarray, ok: np.ndarray, variants: bool, errors: list[str]) -> Hashes:
    n, v = ph.shape[:2]
    p = phash_bits(ph.reshape(n * v, PHASH_SIDE, PHASH_SIDE)).reshape(n, v) if n else np.zeros((0, v), np.uint64)
    d = dhash_bits(dh.reshape(n * v, HASH_SIZE, HASH_SIZE + 1)).reshape(n, v) if n else np.zeros((0, v), np.uint64)
    p[~ok] = 0
    d[~ok] = 0
    return Hashes(p[:, 0].copy(), d[:, 0].copy(), ok, p if variants else None, d if variants else None, errors)


def _fast_jpeg(im: Image.Image) -> None:
    """A `decode` hook for fast mode: libjpeg decodes a JPEG straight to grey, downscaled in the DCT domain."""
    if im.format == "JPEG" and im.mode in ("RGB", "L"):
        im.draft("L", (FAST_SIDE, FAST_SIDE))


def decode_grey(path: Union[str, Path], fast: bool = False) -> Image.Image:
    """The grey image a file's hashes start from (daad's checks and EXIF orientation, no normalising copy).

    Exact mode decodes as imagehash does (RGB, then `convert("L")`). Decoding an RGB JPEG
    straight to grey (libjpeg's own luma) was measured as the default and rejected: 2.9x
    faster decoding and identical hashes on all 275 RGB JPEGs of ../shared/data (the
    other 528 are grey JPEGs, decoded to grey anyway), but 6 of 420 JPEG q95 copies in
    benchmarks/dedupe.py (`--format jpg`) got other bits than imagehash's (measured again
    on Dec 1: the same 275/275 and 6/420). It is part of `fast` (opt-in, `--fast`), which also lets libjpeg
    downscale in the DCT domain (1/2 to 1/8, to no less than FAST_SIDE pixels a side)
    and box-reduces the thumbnails first (`thumbnails`): hashes then differ from
    imagehash by a few bits; the planted-copy recall and the speed of both modes are in
    the README.
    """
    im = decode(path, str(path), _fast_jpeg if fast else None)
    return im if im.mode == "L" else im.convert("L")


def _hash_chunk(_state: None, args: tuple[list[str], bool, bool]) -> Hashes:
    """Worker: decode (with daad's checks and EXIF orientation), thumbnail and hash a chunk of files.

    The DCT runs per chunk where the work runs, so only 16 bytes per image travel back
    to the driver; a batched DCT gives the same floats per image whatever the batch.
    """
    paths, variants, fast = args
    v = 8 if variants else 1
    ph = np.zeros((len(paths), v, PHASH_SIDE, PHASH_SIDE), np.uint8)
    dh = np.zeros((len(paths), v, HASH_SIZE, HASH_SIZE + 1), np.uint8)
    ok = np.zeros(len(paths), bool)
    errors = []
    for i, p in enumerate(paths):
        try:
            ph[i], dh[i] = thumbnails(decode_grey(p, fast), variants, fast)
            ok[i] = True
        except BadItemError as exc:
            errors.append(str(exc))
    return _finish(ph, dh, ok, variants, errors)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one: taskset, containers), else the CPU count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def default_workers(paths: Sequence[Union[str, Path]], min_bytes: int = POOL_MIN_BYTES) -> int:
    """Worker processes worth starting for these files: 1 (this process) below `min_bytes` of files, else the CPU count.

    Publishing 388 unhashed Magnetic Tile images (22.5 MB) took 1.0 CPU s / 1.4 s wall in
    this process and 3.0 CPU s / 3.8 s wall with a pool of 2 (benchmarks/publish.py's data):
    below the threshold the pool's start-up is most of the work (this process then hashes
    in threads, `default_threads`). Stops reading sizes once the threshold is reached; an
    unreadable file counts 0 (hashing names it).
    """
    cpus = usable_cpus()
    if cpus == 1:
        return 1
    total = 0
    for p in paths:
        try:
            total += os.stat(p).st_size
        except OSError:
            continue
        if total >= min_bytes:
            return cpus
    return 1


def default_threads() -> int:
    """Threads that hash in this process: one per usable CPU.

    Threads and not only processes because Pillow releases the GIL while it decodes,
    converts and resizes, which is ~85% of an image's hashing time (cProfile of 183 real
    Magnetic Tile and MVTec AD files: decode 59%, resize 24%, convert 2%), and a thread
    costs nothing to start, so even a small batch uses every core.
    """
    return usable_cpus()


def _in_threads(chunks: list[tuple[list[str], bool, bool]], threads: int, bar: tqdm) -> list[Hashes | None]:
    """`_hash_chunk` over chunks in `threads` threads of this process; results in chunk order."""
    parts: list[Hashes | None] = [None] * len(chunks)
    if threads <= 1 or len(chunks) <= 1:
        for i, c in enumerate(chunks):
            parts[i] = _hash_chunk(None, c)
            bar.update(len(c[0]))
        return parts
    pool = ThreadPoolExecutor(threads, thread_name_prefix="hash")
    try:
        futures = {pool.submit(_hash_chunk, None, c): i for i, c in enumerate(chunks)}
        for f in as_completed(futures):
            i = futures[f]
            parts[i] = f.result()
            bar.update(len(chunks[i][0]))
    finally:  # Ctrl-C or an error: drop the chunks not started, wait only for those running
        pool.shutdown(wait=True, cancel_futures=True)
    return parts


def hash_files(
    paths: Sequence[Union[str, Path]],
    variants: bool = False,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "hash",
    chunk: int = 64,
    fast: bool = False,
    engine: Engine | None = None,
    threads: int | None = None,
) -> Hashes:
    """Hash image files in parallel (decoding dominates); bad files are reported, not fatal.

    `engine` decides where chunks of `chunk` files are hashed (a Ray cluster hashes
    them on its nodes; every node must see the paths); without one, `workers`
    processes here (default: `default_workers`, this process for a small batch, else the
    CPU count; 1 runs in this process). In this process the chunks run in `threads`
    threads (default `default_threads`; chunks cut smaller so every thread gets several).
    The hashes are the same whichever runs them. `fast`: JPEGs are downscaled while
    decoding (see `decode_grey`); the hashes are then not imagehash's.
    """
    paths = [str(p) for p in paths]
    if engine is None:
        workers = workers or default_workers(paths)
    local = engine is None and workers == 1
    nthreads = max(1, threads or default_threads()) if local else 1
    if nthreads > 1:
        chunk = max(1, min(chunk, -(-len(paths) // (4 * nthreads))))
    chunks = [(paths[i : i + chunk], variants, fast) for i in range(0, len(paths), chunk)]
    parts: list[Hashes | None] = [None] * len(chunks)
    with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress) as bar:
        if local:
            parts = _in_threads(chunks, nthreads, bar)
        else:
            for i, h in (engine or LocalEngine(workers or 1)).imap(_hash_chunk, chunks):
                parts[i] = h
                bar.update(len(chunks[i][0]))
    done = [p for p in parts if p is not None]
    if not done:
        v = 8 if variants else 1
        return _finish(np.zeros((0, v, PHASH_SIDE, PHASH_SIDE), np.uint8), np.zeros((0, v, HASH_SIZE, HASH_SIZE + 1), np.uint8), np.zeros(0, bool), variants, [])

    def cat(name: str) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in done]
        return None if arrays[0] is None else np.concatenate(arrays)

    return Hashes(cat("phash"), cat("dhash"), cat("ok"), cat("phash_variants"), cat("dhash_variants"),  # type: ignore[arg-type]
                  [e for p in done for e in p.errors])


@dataclass
class Facts:
    """What a release row needs computed from one chunk of files: hashes and mask boxes, in input order.

    `hashes` covers the chunk's images (an item without an image path has ok False and
    no error); `boxes[i]` is `mask_box.stored_box` of the item's mask, None when it had
    no mask path or the mask could not be decoded (named in `errors`).
    """

    hashes: Hashes
    boxes: list[list[int] | None]
    errors: list[str]


def _facts_chunk(_state: None, args: tuple[list[str | None], list[str | None]]) -> Facts:
    """Worker: imagehash's pHash/dHash of the images given and the boxes of the masks given (either may be None)."""
    paths, masks = args
    ph = np.zeros((len(paths), 1, PHASH_SIDE, PHASH_SIDE), np.uint8)
    dh = np.zeros((len(paths), 1, HASH_SIZE, HASH_SIZE + 1), np.uint8)
    ok = np.zeros(len(paths), bool)
    errors: list[str] = []
    boxes: list[list[int] | None] = []
    for i, (p, m) in enumerate(zip(paths, masks)):
        if p is not None:
            try:
                ph[i], dh[i] = thumbnails(decode_grey(p))
                ok[i] = True
            except BadItemError as exc:
                errors.append(str(exc))
        box = None
        if m is not None:
            try:
                box = checked_box(Path(m).read_bytes(), m)
            except OSError as exc:
                errors.append(f"{m}: mask not readable: {exc.strerror or exc}")
            except BadItemError as exc:
                errors.append(str(exc))
        boxes.append(box)
    return Facts(_finish(ph, dh, ok, False, []), boxes, errors)


class FactsStream:
    """`Facts` of (image, mask) pairs chunk by chunk, in input order, computed ahead while the caller uses earlier chunks.

    What `daad publish` of an old catalog (no stored hashes or boxes) writes its rows
    from: the work starts when the stream is made, every chunk is submitted at once
    (only paths travel; 16 bytes a hash and a box come back), and the caller's parquet
    writing overlaps it. Where it runs is `hash_files`' rule: processes
    (`default_workers`, one per usable CPU) for a batch of `POOL_MIN_BYTES` or more,
    else `default_threads()` threads of this process, which cost nothing to start. The
    bits are `hash_files`' (imagehash's), whichever runs them. `close()` (or the `with`
    block's end) drops the chunks not started and waits for those running.
    """

    def __init__(
        self, images: Sequence[Union[str, Path, None]], masks: Sequence[Union[str, Path, None]], chunk: int = 32,
        workers: int | None = None, threads: int | None = None,
    ):
        imgs = [None if p is None else str(p) for p in images]
        msks = [None if m is None else str(m) for m in masks]
        if len(imgs) != len(msks):
            raise ValueError(f"{len(imgs)} images but {len(msks)} masks")
        chunks = [(imgs[i : i + chunk], msks[i : i + chunk]) for i in range(0, len(imgs), chunk)]
        workers = workers or default_workers([p for p in imgs if p is not None])
        self._pool: Executor | None = None
        if chunks and workers > 1:
            self._pool = process_pool(min(workers, len(chunks)))
        elif chunks:
            self._pool = ThreadPoolExecutor(max(1, threads or default_threads()), thread_name_prefix="facts")
        self._futures = [self._pool.submit(_facts_chunk, None, c) for c in chunks] if self._pool else []

    def __iter__(self) -> Iterator[Facts]:
        for f in self._futures:
            yield f.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "FactsStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance of uint64 hashes (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))).astype(np.int64)
