"""The Poisson injection step alone against cv2.seamlessClone: every patch size at 256, 512 and 1024.

    python benchmarks/poisson.py                  # the sweep, Normal and Mixed
    python benchmarks/poisson.py --sizes 512      # one target size
    python benchmarks/poisson.py --repeat 9       # more interleaved runs per row (default 5)
    python benchmarks/poisson.py --max-side 40    # only the patches of sides 16 .. 40 (where per-call costs dominate)

Why a sweep: a sine transform's cost follows how 2 (n + 1) factors, not n (238x250 was
10x slower than 237x249 before regions were grown to fast sides), so a few chosen sizes
can hide a slow one. Each row injects a real anomaly (an MVTec AD bottle/broken_large
crop with its mask, resized so its box is exactly h x w) into the centre of a real
MVTec AD capsule test/good image resized to the target size, as CAI does it:

* ours: `poisson.grow_region` to fast sides, the grown source and mask filled in
  (what `CAI._inject_once` does), then `poisson.blend` on the grown region;
* cv2: `cv2.seamlessClone` given only the pattern's box plus its one-pixel ring (its
  cheapest use: cv2 copies whatever image it is given; `benchmarks/cai.py` hands cv2 the
  same regions).

Patch sides run from 16 to min(size / 2, 256) in steps of 8, each as h x h and as the
awkward h x (h + 5), plus 237x249 and 238x250 (the issue's pair). Times are CPU seconds
of this process (cv2 on one thread), each the median of `repeat` interleaved runs (ours,
cv2, ours, cv2, ...) of a loop long enough to be measured; the ratio is cv2 / ours, and
the last line is the smallest ratio of the sweep. The machine is shared: read ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from daad.core.images import load_image, load_mask
from daad.synthesis.cai import poisson

cv2.setNumThreads(1)
DATA = Path(os.environ.get("DAAD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MODES = {"normal": cv2.NORMAL_CLONE, "mixed": cv2.MIXED_CLONE}


def patch_sizes(size: int, max_side: int = 256) -> list[tuple[int, int]]:
    """(h, w) of every row at target size `size`: squares, awkward h x (h + 5), and the issue's pair (sides <= max_side)."""
    top = min(size // 2, max_side)
    sides = list(range(16, top + 1, 8))
    out = [(h, h) for h in sides] + [(h, h + 5) for h in sides]
    out += [(237, 249), (238, 250)]
    return sorted({(h, w) for h, w in out if h + 2 <= size and w + 2 <= size and h <= max_side})


def real_inputs(data: Path, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target at size x size, pattern crop, its bool mask): real MVTec AD images."""
    img = data / "mvtec_ad/bottle/test/broken_large/006.png"
    im = load_image(img)
    mask = np.asarray(load_mask(data / "mvtec_ad/bottle/ground_truth/broken_large/006_mask.png", im.size)) > 0
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    target = cv2.resize(np.asarray(load_image(data / "mvtec_ad/capsule/test/good/001.png")), (size, size), interpolation=cv2.INTER_AREA)
    return target, np.ascontiguousarray(np.asarray(im)[crop]), mask[crop]


def region_inputs(target: np.ndarray, crop: np.ndarray, cmask: np.ndarray, h: int, w: int):
    """The injection region of an h x w pattern box at the centre: (top, left, source region, mask region) with the ring."""
    src = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
    msk = cv2.resize(cmask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    bh, bw = h + 2, w + 2
    src_r = np.zeros((bh, bw, 3), np.uint8)
    src_r[1:-1, 1:-1] = src
    msk_r = np.zeros((bh, bw), bool)
    msk_r[1:-1, 1:-1] = msk
    top, left = (target.shape[0] - bh) // 2, (target.shape[1] - bw) // 2
    return top, left, src_r, msk_r


def ours(target, top, left, src, msk, mode):
    """CAI's injection step: grow to fast sides, fill the grown source and mask, solve; the blended region.

    Neither side copies the whole target (CAI's copy of its output image is the same for
    both and would only dilute the ratio at 1024 px)."""
    bh, bw = msk.shape
    gt, gl, gh, gw = poisson.grow_region(top, left, bh, bw, target.shape[0], target.shape[1])
    tgt = target[gt:gt + gh, gl:gl + gw]
    inner = (slice(top - gt, top - gt + bh), slice(left - gl, left - gl + bw))
    grown_src = tgt.copy()
    grown_src[inner] = src
    grown_msk = np.zeros((gh, gw), bool)
    grown_msk[inner] = msk
    return poisson.blend(tgt, grown_src, grown_msk, mode)


def theirs(target, top, left, src, msk, mode):
    """cv2.seamlessClone of the same pattern on the same box plus ring, given only that region (its cheapest use)."""
    bh, bw = msk.shape
    region = (slice(top, top + bh), slice(left, left + bw))
    centre = (1 + (bw - 2) // 2, 1 + (bh - 2) // 2)  # cv2 centres its ROI (the mask's box) on it: exactly the box
    return cv2.seamlessClone(src, np.ascontiguousarray(target[region]), msk.astype(np.uint8) * 255, centre, MODES[mode])


def _loop(fn, args, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn(*args)
    return (time.process_time() - start) / n


def timed_pair(args, repeat: int) -> tuple[float, float]:
    """Median seconds per call of ours and of cv2, interleaved `repeat` times (loops of >= ~20 ms of cv2)."""
    once = _loop(theirs, args, 1)
    n = max(1, int(0.02 / max(once, 1e-5)))
    a, b = [], []
    for _ in range(repeat):
        a.append(_loop(ours, args, n))
        b.append(_loop(theirs, args, n))
    return statistics.median(a), statistics.median(b)


def sweep(data: Path, sizes: list[int], repeat: int, modes: list[str], max_side: int = 256) -> float:
    print(f"Poisson injection alone vs cv2.seamlessClone: real MVTec AD pattern into a real target, "
          f"{os.cpu_count()} CPU cores (load {os.getloadavg()[0]:.1f}), one thread, median of {repeat} interleaved runs")
    head = f"{'size':>5} {'patch h x w':>12} {'grown':>9} |" + "".join(
        f" {m + ' ms ours':>15} {'cv2':>6} {'ratio':>5} |" for m in modes)
    print(head)
    print("-" * len(head))
    worst = (float("inf"), "")
    for size in sizes:
        target, crop, cmask = real_inputs(data, size)
        for h, w in patch_sizes(size, max_side):
            top, left, src, msk = region_inputs(target, crop, cmask, h, w)
            _, _, gh, gw = poisson.grow_region(top, left, h + 2, w + 2, size, size)
            line = f"{size:>5} {f'{h} x {w}':>12} {f'{gh}x{gw}':>9} |"
            for mode in modes:
                t_ours, t_cv2 = timed_pair((target, top, left, src, msk, mode), repeat)
                ratio = t_cv2 / t_ours
                worst = min(worst, (ratio, f"{size} px, {h} x {w}, {mode}"))
                line += f" {1000 * t_ours:>15.3f} {1000 * t_cv2:>6.2f} {ratio:>5.1f} |"
            print(line)
            sys.stdout.flush()
    print(f"smallest ratio cv2 / ours: {worst[0]:.2f}x ({worst[1]}); grown = the region ours solves on "
          f"(box + ring grown to fast sides); load now {os.getloadavg()[0]:.1f}")
    return worst[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,512,1024", help="target sizes (default 256,512,1024)")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved runs per row (default 5)")
    ap.add_argument("--modes", default="normal,mixed", help="Poisson modes (default normal,mixed)")
    ap.add_argument("--max-side", type=int, default=256, help="largest patch side (default 256; e.g. 40 for the small rows alone)")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"real sample data not found at {DATA} (set DAAD_SHARED_DATA)")
    sweep(DATA, [int(s) for s in args.sizes.split(",")], args.repeat, args.modes.split(","), args.max_side)


if __name__ == "__main__":
    main()
