"""Benchmark: daad's hashing + near-duplicate search against idealo's imagededup PHash.

    python benchmarks/dedupe.py                  # quick default: 1500 images, 300k random codes (~1 min)
    python benchmarks/dedupe.py --full           # 10k images, 1M random hashes (the README's numbers)
    python benchmarks/dedupe.py --measure-k      # the measurement behind the default k (dedupe.py)

What it does, all in one run on this machine:

1. Images: real images from ../shared/data (every dataset, masks excluded) plus planted
   near-duplicates of each: JPEG q60, 50% resize, centred 2% crop, brightness +10%,
   horizontal flip, and a web re-post (75% size, JPEG q80); written to a temp folder.
2. Hash + dedupe them with daad (pHash + dHash, k=8, without and with the 8 dihedral
   variants) and with imagededup's `PHash` (`encode_images` + `find_duplicates`,
   its default threshold 10, its Cython brute force), both with the same worker count.
   Prints CPU seconds (this process and its workers), the ratio imagededup/daad, and the
   recall of planted pairs per plant; also daad `--fast` and imagehash itself.
   Then per core (`per_core`): both single-process in this process, interleaved rounds,
   medians: daad exact and `--fast` (`hash_files(workers=1, threads=1)`) against imagededup's
   `encode_image` on each file (what each of its pool workers runs) and imagehash, and
   the stages of the exact path (decode, grey, the two LANCZOS thumbnails) that bound it.
   The pooled comparison above is not per core: daad's pool is spawned (each worker
   imports numpy, scipy and Pillow, ~1.3 CPU s for 2 workers on this machine) while
   imagededup's `multiprocessing.Pool` forks.
3. Threads (`threads`, or alone with `--threads`): `hash_files` in this process with 1
   thread and with `hashing.default_threads()`, on the real images alone (the first 200
   by default, `--images`), interleaved rounds: wall and CPU seconds, the speed-up, and
   CPU / wall of the threaded run (above 1 only when Pillow released the GIL; it cannot
   reach the thread count while neighbours hold the cores: the load average is printed).
   Both must give the same hashes (checked).
4. Search alone: R random 128-bit codes with 1000 planted near pairs (<= k bits
   apart); daad's multi-index hashing on all R, and on a subset of B codes both daad
   (MIH and brute force) and imagededup's search (on the 64-bit pHash half), whose cost
   is quadratic; the ratio is measured at B, imagededup at R is extrapolated (B/R)^2
   and printed as such.

imagededup imports torchvision in its package __init__ files (for its CNN method);
torchvision from PyPI does not work with our CPU torch, so only its hashing modules are
imported (`_imagededup_phash`). Install: `pip install --no-deps imagededup` (see README).
"""

from __future__ import annotations

import argparse
import importlib
import io
import logging
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from daad.curate import hashing
from daad.core.images import IMAGE_SUFFIXES, load_image
from daad.curate.near_duplicates import BruteForce, MultiIndexHash, distance

SHARED = Path(os.environ.get("DAAD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue()))


def _crop2(im: Image.Image) -> Image.Image:
    dx, dy = round(im.width * 0.01), round(im.height * 0.01)
    return im.crop((dx, dy, im.width - dx, im.height - dy))


PLANTS = {
    "jpeg60": lambda im: _jpeg(im, 60),
    "resize50": lambda im: im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.BILINEAR),
    "crop2": _crop2,
    "bright10": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
    "hflip": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "repost": lambda im: _jpeg(im.resize((max(1, im.width * 3 // 4), max(1, im.height * 3 // 4)), Image.Resampling.BICUBIC), 80),
}


def real_images(root: Path = SHARED) -> list[Path]:
    skip = {"ground_truth", "groundTruth", "seg"}
    return sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not skip & set(p.parts) and not p.stem.endswith("_mask")
    )


def _imagededup_phash():
    """imagededup's PHash class without running its package __init__ (which imports torchvision)."""
    # By name: imagededup is an optional peer, not installed where the type check runs.
    try:
        imagededup = importlib.import_module("imagededup")
    except ImportError:
        sys.exit("benchmarks/dedupe.py compares against imagededup, which is not installed: "
                 "pip install --no-deps 'imagededup>=0.3.3' (--no-deps: its own dependencies pull torchvision "
                 "and a CUDA torch; this benchmark uses only its hashing code)")

    base = Path(str(imagededup.__file__)).parent  # a package from files: __file__ is set
    for sub in ("methods", "utils"):
        name = f"imagededup.{sub}"
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(base / sub)]
            sys.modules[name] = pkg
    logging.getLogger("imagededup").setLevel(logging.WARNING)
    for logger in list(logging.root.manager.loggerDict):
        if logger.startswith("imagededup"):
            logging.getLogger(logger).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="imagededup")
    return importlib.import_module("imagededup.methods.hashing").PHash


def make_images(n: int, out: Path, seed: int = 0, fmt: str = "png") -> tuple[list[Path], list[int], list[str], list[Path]]:
    """Write ~n images (bases + all plants of each); returns paths, base index and plant name per image, and the bases used."""
    bases = real_images()
    per = len(PLANTS) + 1
    rng = random.Random(seed)
    anomalies = [p for p in bases if _is_mvtec_anomaly(p)]  # always in: the hardest look-alikes
    rest = [p for p in bases if not _is_mvtec_anomaly(p)]
    chosen = anomalies + rng.sample(rest, min(len(rest), max(0, n // per - len(anomalies))))
    paths, group, kind = [], [], []
    for g, src in enumerate(chosen):
        im = load_image(src)
        for name, fn in [("base", lambda x: x), *PLANTS.items()]:
            p = out / f"{g:05d}_{name}.{fmt}"
            if fmt == "png":
                fn(im).save(p, compress_level=1)
            else:  # JPEG q95, as photos and web images come
                fn(im).convert("RGB").save(p, quality=95)
            paths.append(p)
            group.append(g)
            kind.append(name)
    return paths, group, kind, chosen


def _is_mvtec_anomaly(p: Path) -> bool:
    return "mvtec_ad" in p.parts and p.parent.name != "good" and "test" in p.parts


def recall(pairs: set[tuple[int, int]], group: list[int], kind: list[str]) -> dict[str, float]:
    """Per plant: the share of (plant, its base) pairs reported."""
    base_of = {g: i for i, (g, k) in enumerate(zip(group, kind)) if k == "base"}
    out = {}
    for plant in PLANTS:
        want = [(min(i, base_of[g]), max(i, base_of[g])) for i, (g, k) in enumerate(zip(group, kind)) if k == plant]
        out[plant] = sum(w in pairs for w in want) / max(1, len(want))
    return out


def cpu() -> float:
    """CPU seconds of this process and its finished worker processes (both sides use a process pool).

    The machine is shared: wall time would measure the neighbours.
    """
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _imagehash_pair(path: str) -> tuple[str, str]:
    import imagehash

    with Image.open(path) as im:
        return str(imagehash.phash(im)), str(imagehash.dhash(im))


def per_core(paths: list[Path], repeats: int) -> list[str]:
    """Hashing per core: everything single-process here, `repeats` interleaved rounds, median CPU seconds (the lines to print)."""
    import imagehash

    from daad.core.images import decode

    idd = _imagededup_phash()(verbose=False)
    files = [str(p) for p in paths]

    def imagededup_phash() -> None:
        for f in files:
            idd.encode_image(image_file=f)

    def imagehash_both() -> None:
        for f in files:
            with Image.open(f) as im:
                imagehash.phash(im)
                imagehash.dhash(im)

    stages = {"  stage: decode (daad's checks, EXIF)": 0.0, "  stage: convert('L')": 0.0,
              "  stage: LANCZOS 32x32 (pHash)": 0.0, "  stage: LANCZOS 9x8 (dHash)": 0.0}

    def exact_stages() -> None:
        """imagehash's calls one by one, each image dropped after use (holding 420 decoded images costs page faults)."""
        t = [0.0] * 4
        for f in files:
            t0 = time.process_time()
            im = decode(f, f)
            t1 = time.process_time()
            g = im if im.mode == "L" else im.convert("L")
            t2 = time.process_time()
            g.resize((32, 32), Image.Resampling.LANCZOS)
            t3 = time.process_time()
            g.resize((9, 8), Image.Resampling.LANCZOS)
            t4 = time.process_time()
            for i, d in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                t[i] += d
        for name, d in zip(stages, t):
            times[name].append(d)

    runs = {
        "daad exact (pHash + dHash)": lambda: hashing.hash_files(files, workers=1, threads=1, progress=False),
        "daad --fast (pHash + dHash)": lambda: hashing.hash_files(files, workers=1, threads=1, progress=False, fast=True),
        "imagededup PHash encode_image": imagededup_phash,
        "imagehash phash + dhash": imagehash_both,
    }
    times: dict[str, list[float]] = {name: [] for name in [*runs, *stages]}
    for _ in range(repeats):
        for name, fn in runs.items():
            t = time.process_time()
            fn()
            times[name].append(time.process_time() - t)
        exact_stages()
    med = {name: statistics.median(v) for name, v in times.items()}
    idd_s = med["imagededup PHash encode_image"]
    out = [f"\nper core: {len(files)} files, single process, medians of {repeats} interleaved rounds, load average {os.getloadavg()[0]:.1f}",
           f"{'what':40s} {'CPU s':>7s} {'ms/image':>9s} {'imagededup / this':>18s}"]
    out += [f"{name:40s} {v:7.2f} {1000 * v / len(files):9.2f} {idd_s / v:17.2f}x" for name, v in med.items()]
    floor = sum(v for name, v in med.items() if name.startswith("  stage"))
    out.append(f"the stages summed (imagehash's own calls, which exact hashing must make): {floor:.2f}s, imagededup / that {idd_s / floor:.2f}x; "
               f"daad exact adds only the batched DCT")
    return out


def threads(paths: list[Path], repeats: int) -> list[str]:
    """`hash_files` in this process, 1 thread against `default_threads()`: the lines to print."""
    files = [str(p) for p in paths]
    n = hashing.default_threads()
    hashing.hash_files(files, threads=1, progress=False)  # page cache and imports, outside the timing
    wall: dict[int, list[float]] = {1: [], n: []}
    cpu_s: dict[int, list[float]] = {1: [], n: []}
    same = True
    for _ in range(repeats):
        got = []
        for t in (1, n):
            w, c = time.perf_counter(), time.process_time()  # process_time: every thread of this process
            got.append(hashing.hash_files(files, workers=1, threads=t, progress=False))
            wall[t].append(time.perf_counter() - w)
            cpu_s[t].append(time.process_time() - c)
        same &= bool((got[0].phash == got[1].phash).all() and (got[0].dhash == got[1].dhash).all())
    w1, wn = statistics.median(wall[1]), statistics.median(wall[n])
    c1, cn = statistics.median(cpu_s[1]), statistics.median(cpu_s[n])
    return [f"\nthreads: {len(files)} real files, hash_files in this process, medians of {repeats} interleaved rounds, "
            f"load average {os.getloadavg()[0]:.1f}",
            f"{'threads':>8s} {'wall s':>7s} {'CPU s':>7s} {'CPU / wall':>11s}",
            f"{1:8d} {w1:7.2f} {c1:7.2f} {c1 / w1:11.2f}",
            f"{n:8d} {wn:7.2f} {cn:7.2f} {cn / wn:11.2f}",
            f"speed-up {w1 / wn:.2f}x wall (best rounds: {min(wall[1]) / min(wall[n]):.2f}x); same hashes: {same}"]


def bench_images(n: int, k: int, workers: int, fmt: str = "png", repeats: int = 3) -> None:
    from concurrent.futures import ProcessPoolExecutor

    PHash = _imagededup_phash()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = cpu()
        paths, group, kind, chosen = make_images(n, folder, fmt=fmt)
        print(f"images: {len(paths)} ({len(set(group))} real images from {SHARED} + {len(PLANTS)} plants each), written in {cpu() - t:.1f}s")
        index = {p.name: i for i, p in enumerate(paths)}

        hashing.hash_files(paths[:64], workers=1, progress=False)  # imports and caches, outside the timing
        t0 = cpu()
        h = hashing.hash_files(paths, workers=workers, progress=False)
        t1 = cpu()
        i, j, _ = MultiIndexHash().self_pairs(h.phash, h.dhash, k)
        t2 = cpu()
        ours = set(zip(i.tolist(), j.tolist()))

        hv = hashing.hash_files(paths, workers=workers, variants=True, progress=False)
        t3 = cpu()
        assert hv.phash_variants is not None and hv.dhash_variants is not None  # variants=True
        q, jv, _ = MultiIndexHash().cross_pairs(hv.phash_variants.reshape(-1), hv.dhash_variants.reshape(-1), hv.phash, hv.dhash, k)
        t4 = cpu()
        iv = q // 8
        ours_v = {(min(a, b), max(a, b)) for a, b in zip(iv.tolist(), jv.tolist()) if a != b}

        tt0, wt0 = cpu(), time.perf_counter()
        ht = hashing.hash_files(paths, progress=False)  # daad's own default: threads in this process under 64 MB of files
        tt1, wt1 = cpu(), time.perf_counter()
        assert (ht.phash == h.phash).all() and (ht.dhash == h.dhash).all()

        tf0 = cpu()
        hf = hashing.hash_files(paths, workers=workers, progress=False, fast=True)
        tf1 = cpu()
        fi, fj, _ = MultiIndexHash().self_pairs(hf.phash, hf.dhash, k)
        tf2 = cpu()
        ours_fast = set(zip(fi.tolist(), fj.tolist()))
        exact_fast = sum(a == b for a, b in zip(h.phash, hf.phash))

        th0 = cpu()
        with ProcessPoolExecutor(workers) as pool:
            ih = list(pool.map(_imagehash_pair, [str(p) for p in paths], chunksize=64))
        th1 = cpu()
        same_as_imagehash = sum(hashing.to_hex(p) == a and hashing.to_hex(d) == b for p, d, (a, b) in zip(h.phash, h.dhash, ih))

        ph = PHash(verbose=False)
        t5, w5 = cpu(), time.perf_counter()
        enc = ph.encode_images(image_dir=str(folder), num_enc_workers=workers)  # workers = os.cpu_count(): its default
        t6, w6 = cpu(), time.perf_counter()
        dup = ph.find_duplicates(encoding_map=enc, max_distance_threshold=10, num_dist_workers=workers)
        t7 = cpu()
        theirs = {(min(index[a], index[b]), max(index[a], index[b])) for a, bs in dup.items() for b in bs}
        dup8 = ph.find_duplicates(encoding_map=enc, max_distance_threshold=k, num_dist_workers=workers)
        t8 = cpu()
        theirs8 = {(min(index[a], index[b]), max(index[a], index[b])) for a, bs in dup8.items() for b in bs}
        core = per_core(paths, repeats) + threads(real_images()[:200], repeats)

    rows = [
        ("daad pHash+dHash, k=8", t1 - t0, t2 - t1, ours),
        (f"daad, default ({hashing.default_threads()} threads)", tt1 - tt0, t2 - t1, ours),
        ("daad --fast, k=8", tf1 - tf0, tf2 - tf1, ours_fast),
        ("daad --variants (8 dihedral)", t3 - t2, t4 - t3, ours_v),
        ("imagededup PHash, threshold 10", t6 - t5, t7 - t6, theirs),
        (f"imagededup PHash, threshold {k}", t6 - t5, t8 - t7, theirs8),
    ]
    mv = {g for g, src in enumerate(chosen) if _is_mvtec_anomaly(src)}
    print(f"\n{'method':34s} {'hash s':>8s} {'search s':>9s} {'total s':>8s}  recall: " + " ".join(f"{p:>8s}" for p in PLANTS) + "  cross-image pairs  distinct-MVTec-anomaly pairs")
    for name, th, ts, pairs in rows:
        r = recall(pairs, group, kind)
        cross = sum(group[a] != group[b] for a, b in pairs)
        mv_pairs = sum(group[a] != group[b] and group[a] in mv and group[b] in mv for a, b in pairs)
        print(f"{name:34s} {th:8.2f} {ts:9.3f} {th + ts:8.2f}  recall: " + " ".join(f"{r[p]:8.3f}" for p in PLANTS) + f"  {cross:17d}  {mv_pairs:27d}")
    base_total = rows[4][1] + rows[4][2]
    print(f"\nimagededup / daad total time: {base_total / (rows[0][1] + rows[0][2]):.2f}x (daad, {workers} processes), "
          f"{base_total / (rows[1][1] + rows[1][2]):.2f}x (daad default, threads), "
          f"{base_total / (rows[2][1] + rows[2][2]):.2f}x (daad --fast), {base_total / (rows[3][1] + rows[3][2]):.2f}x (daad --variants)")
    print(f"hashing alone: imagededup encode {rows[4][1]:.2f}s, imagehash phash+dhash {th1 - th0:.2f}s, daad {rows[0][1]:.2f}s "
          f"({workers} processes), {rows[1][1]:.2f}s (threads), daad --fast {rows[2][1]:.2f}s "
          f"-> imagededup / daad {rows[4][1] / rows[0][1]:.2f}x (processes), {rows[4][1] / rows[1][1]:.2f}x (threads), "
          f"/ daad --fast {rows[4][1] / rows[2][1]:.2f}x; imagehash / daad {(th1 - th0) / rows[0][1]:.2f}x")
    print(f"default against default (what a user waits for; --workers {workers}, imagededup's default is os.cpu_count()): "
          f"imagededup encode_images {w6 - w5:.2f} s wall / {t6 - t5:.2f} CPU s, daad hash_files {wt1 - wt0:.2f} s wall / "
          f"{tt1 - tt0:.2f} CPU s -> imagededup / daad {(w6 - w5) / (wt1 - wt0):.2f}x wall, {(t6 - t5) / (tt1 - tt0):.2f}x CPU "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"daad's hashes equal imagehash's on {same_as_imagehash} of {len(paths)} images; --fast pHash equals the exact one on {exact_fast} of {len(paths)}")
    print("cross-image pairs: pairs between copies of two different real images (the real data holds genuine near-duplicates,")
    print("e.g. DeepPCB template/test pairs); distinct-MVTec-anomaly pairs: of those, between two different MVTec AD anomalies (false).")
    print(f"({len(mv)} MVTec AD anomalies among the {len(chosen)} real images)")
    print("\n".join(core))


def bench_search(r: int, b: int, k: int, workers: int, seed: int = 0) -> None:
    PHash = _imagededup_phash()
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 2**64, r, dtype=np.uint64, endpoint=False)
    d = rng.integers(0, 2**64, r, dtype=np.uint64, endpoint=False)
    planted = []
    for n in range(min(1000, r // 2)):
        a, c = 2 * n, 2 * n + 1  # plant c as a copy of a with up to k flipped bits, split over both words
        flips = rng.choice(128, int(rng.integers(1, k + 1)), replace=False)
        p[c], d[c] = p[a], d[a]
        for f in flips:
            if f < 64:
                p[c] ^= np.uint64(1) << np.uint64(f)
            else:
                d[c] ^= np.uint64(1) << np.uint64(f - 64)
        planted.append((a, c))
    print(f"\nsearch alone: {r:,} random 128-bit codes with {len(planted)} planted pairs (1..{k} bits apart), k={k}")
    t = time.perf_counter()
    i, j, _ = MultiIndexHash().self_pairs(p, d, k)
    t_mih = time.perf_counter() - t
    found = set(zip(i.tolist(), j.tolist()))
    print(f"daad multi-index hashing on {r:,}: {t_mih:.2f}s, {len(found)} pairs, planted recall {sum(x in found for x in planted) / len(planted):.3f}")

    pb, db = p[:b], d[:b]
    t = time.perf_counter()
    MultiIndexHash().self_pairs(pb, db, k)
    t_mih_b = time.perf_counter() - t
    t = time.perf_counter()
    BruteForce().self_pairs(pb, db, k)
    t_bf_b = time.perf_counter() - t
    enc = {f"c{n}": format(int(x), "016x") for n, x in enumerate(pb)}
    t = time.perf_counter()
    PHash(verbose=False).find_duplicates(encoding_map=enc, max_distance_threshold=k, num_dist_workers=workers)
    t_idd_b = time.perf_counter() - t
    print(f"on the first {b:,}: daad MIH {t_mih_b:.3f}s, daad brute force {t_bf_b:.3f}s, imagededup brute_force_cython (64-bit pHash) {t_idd_b:.3f}s")
    print(f"imagededup / daad MIH at {b:,}: {t_idd_b / t_mih_b:.1f}x;  brute force / MIH: {t_bf_b / t_mih_b:.1f}x")
    est = t_idd_b * (r / b) ** 2
    print(f"imagededup at {r:,} (extrapolated x{(r / b) ** 2:,.0f}, quadratic): ~{est:,.0f}s -> ~{est / t_mih:,.0f}x daad MIH's measured {t_mih:.1f}s")


def measure_k(k: int) -> None:
    """Distances of planted copies of MVTec AD anomalies vs distances between distinct ones."""
    anomalies = sorted(p for p in (SHARED / "mvtec_ad").glob("*/test/*/*.png") if p.parent.name != "good")
    h = hashing.hash_files(anomalies, progress=False)
    iu = np.triu_indices(len(anomalies), 1)
    dist = distance(h.phash[:, None], h.dhash[:, None], h.phash[None], h.dhash[None])[iu]
    dp = hashing.hamming(h.phash[:, None], h.phash[None])[iu]
    dd = hashing.hamming(h.dhash[:, None], h.dhash[None])[iu]
    print(f"{len(anomalies)} distinct MVTec AD anomalies: smallest distance pHash {dp.min()}, dHash {dd.min()}, pHash+dHash {dist.min()}")
    worst = {}
    for path, p0, d0 in zip(anomalies, h.phash, h.dhash):
        im = load_image(path)
        for name, fn in PLANTS.items():
            hv = hashing.hash_images([fn(im)])
            if name == "hflip":
                v = hashing.hash_images([im], variants=True)
                assert v.phash_variants is not None and v.dhash_variants is not None  # variants=True
                dist_p = int(distance(v.phash_variants[0], v.dhash_variants[0], hv.phash[0], hv.dhash[0]).min())
            else:
                dist_p = int(distance(p0, d0, hv.phash[0], hv.dhash[0]))
            worst[name] = max(worst.get(name, 0), dist_p)
    print("largest pHash+dHash distance of a planted copy to its original: " + ", ".join(f"{n} {v}" for n, v in worst.items()) + " (hflip: best of 8 variants)")
    print(f"k={k}: distinct anomalies paired: {(dist <= k).sum()}; planted copies beyond k: {[n for n, v in worst.items() if v > k] or 'none'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="10k images and 1M random codes (default: --quick sizes)")
    ap.add_argument("--images", type=int, help="number of images (quick 1500, full 10000)")
    ap.add_argument("--random", type=int, help="random codes for the search step (quick 300k, full 1M)")
    ap.add_argument("--baseline-codes", type=int, help="codes for the quadratic baseline search (quick 8k, full 20k)")
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--measure-k", action="store_true", help="only print the measurement behind the default k")
    ap.add_argument("--format", choices=["png", "jpg"], default="png", help="how the planted image set is written (default png)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the per-core hashing comparison (default 3)")
    ap.add_argument("--threads", action="store_true", help="only the threads section, on the first --images real images (default 200)")
    ap.add_argument("--no-search", action="store_true", help="skip the random-code search step (benchmarks/search.py has it against faiss)")
    a = ap.parse_args()
    if a.measure_k:
        measure_k(a.k)
        return
    if a.threads:
        print("\n".join(threads(real_images()[: a.images or 200], a.repeats)))
        return
    n = a.images or (10_000 if a.full else 1500)
    r = a.random or (1_000_000 if a.full else 300_000)
    b = a.baseline_codes or (20_000 if a.full else 8_000)
    print(f"daad dedupe benchmark: {os.cpu_count()} CPUs, {a.workers} workers, k={a.k}")
    bench_images(n, a.k, a.workers, a.format, a.repeats)
    if not a.no_search:
        bench_search(r, b, a.k, a.workers)


if __name__ == "__main__":
    main()
