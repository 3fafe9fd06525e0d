"""Benchmark: exact near-duplicate search (k = 8 on 128-bit codes) against faiss, in the same run.

    python benchmarks/search.py                     # 100k and 1M random codes
    python benchmarks/search.py --sizes 1000000,10000000

R random 128-bit codes (pHash || dHash) with 1000 planted pairs at distances 0..k. Each
searcher returns every pair within k; the pair sets are compared, so a faster but
inexact peer would show. Peers (`pip install faiss-cpu`, the `bench` extra), one
thread each (`faiss.omp_set_num_threads(1)`):

- faiss `IndexBinaryMultiHash(128, nhash, b)` with `nflip`: its own multi-index hashing,
  set up exact the same way (nhash substrings of b bits, probed to nflip bits, with
  nhash * (nflip + 1) > k), b chosen as daad's planner would (about log2 R);
- faiss `IndexBinaryHash(128, b)` with nflip = k (exact: one b-bit substring probed to
  radius k), only where it finishes in reasonable time (its probes grow as C(b, k)).

Times are CPU seconds of this process (`time.process_time`), since the machine is
shared and wall time measures the neighbours; wall seconds are printed beside them.
"""

from __future__ import annotations

import argparse
import importlib
import resource
import time
from functools import partial

import numpy as np

from daad.curate.near_duplicates import MultiIndexHash, plan_substrings
from daad.curate.planted_codes import planted_codes


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def as_bytes(p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(R, 16) uint8 rows for faiss: the 128 bits in faiss's order (the order does not change distances)."""
    return np.ascontiguousarray(np.stack([p, d], axis=1)).view(np.uint8).reshape(len(p), 16)


def faiss_pairs(index, x: np.ndarray, k: int) -> set[tuple[int, int]]:
    index.add(x)
    lims, _, labels = index.range_search(x, k + 1)  # faiss keeps distances < radius
    q = np.repeat(np.arange(len(x)), np.diff(lims).astype(np.int64))
    keep = q < labels
    return set(zip(q[keep].tolist(), labels[keep].tolist()))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--multihash-up-to", type=int, default=1_000_000, help="largest R for faiss IndexBinaryMultiHash (default 1M)")
    ap.add_argument("--hash-up-to", type=int, default=10_000, help="largest R for faiss IndexBinaryHash (default 10k: its cost is quadratic)")
    a = ap.parse_args()
    # By name: faiss is an optional peer, not installed where the type check runs.
    faiss = importlib.import_module("faiss")
    faiss.omp_set_num_threads(1)
    k = a.k
    print(f"exact search, k = {k}, random 128-bit codes + 1000 planted pairs; CPU s (wall s) of one thread")
    print(f"{'R':>11} | {'daad MIH':>16} | {'faiss MultiHash':>16} {'ratio':>6} | {'faiss Hash':>16} {'ratio':>6} | pairs  same  daad peak RSS")
    for r in [int(s) for s in a.sizes.split(",")]:
        p, d = planted_codes(r, k, pairs=min(1000, r // 2))
        (i, j, _), c_ours, w_ours = timed(partial(MultiIndexHash().self_pairs, p, d, k))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ours = set(zip(i.tolist(), j.tolist()))
        x = as_bytes(p, d)
        plan = plan_substrings(r, k)
        b = max(s.width for s in plan if s.radius > 0) if any(s.radius for s in plan) else 24
        nhash, nflip = -(-(k + 1) // 2), 1  # nhash * 2 > k: exact with one flip per substring
        while nhash * b > 128:
            b -= 1
        same = True
        mh_cell = f"{'-':>16} {'':>6}"
        if r <= a.multihash_up_to:
            mh = faiss.IndexBinaryMultiHash(128, nhash, b)
            mh.nflip = nflip
            theirs, c_mh, w_mh = timed(partial(faiss_pairs, mh, x, k))
            same = theirs == ours
            mh_cell = f"{c_mh:>7.2f} ({w_mh:>6.2f}) {c_mh / c_ours:>5.1f}x"
        hash_cell = f"{'-':>16} {'':>6}"
        if r <= a.hash_up_to:
            bh = faiss.IndexBinaryHash(128, 12)
            bh.nflip = k
            th, c_h, w_h = timed(partial(faiss_pairs, bh, x, k))
            same = same and th == ours
            hash_cell = f"{c_h:>7.2f} ({w_h:>6.2f}) {c_h / c_ours:>5.1f}x"
        print(f"{r:>11,} | {c_ours:>7.2f} ({w_ours:>6.2f}) | {mh_cell} | {hash_cell} | "
              f"{len(ours):>5} {str(same):>5} {rss:>7.0f} MB", flush=True)
    print("-: not run (the peer's cost at that size; see --multihash-up-to, --hash-up-to)")
    print("faiss MultiHash: nhash = ceil((k+1)/2) substrings of b bits (daad's probed width), nflip = 1; "
          "faiss Hash: one 12-bit substring, nflip = k; ratio = faiss CPU s / daad CPU s")


if __name__ == "__main__":
    main()
