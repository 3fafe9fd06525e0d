"""Random 128-bit codes (pHash || dHash) with planted near-duplicates: the workload of near-duplicate search.

Random codes are the case `near_duplicates.plan_substrings` prices (their keys spread
evenly over a substring's buckets); the planted pairs sit at every distance 0..k, their
flipped bits spread over both 64-bit words, so a search that misses a distance or a
pHash/dHash boundary shows. Exact copies make buckets of three and more.

Why in the package: tests/test_near_duplicates.py (exactness against brute force) and
benchmarks/search.py (speed against faiss) plant the same codes, and both may import
from `daad` without the tests importing benchmarks or the benchmarks the test tree; it
sits in curate beside the search it feeds and imports nothing but numpy.
"""

from __future__ import annotations

import numpy as np


def planted_codes(n: int, k: int, pairs: int, copies: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pHash, dHash) uint64 arrays of n random codes with `pairs` planted pairs and `copies` exact copies.

    Codes 2t and 2t + 1 (t < pairs) are t % (k + 1) bits apart; codes 2 * pairs + i
    (i < copies) are copies of code i, so the first planted codes come in threes.
    The same (n, k, pairs, copies, seed) gives the same codes.
    """
    if pairs < 0 or copies < 0 or 2 * pairs + copies > n:
        raise ValueError(f"bad: {pairs} pairs and {copies} copies do not fit in {n} codes (2 * pairs + copies > n)")
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    d = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    for t in range(pairs):
        a, c = 2 * t, 2 * t + 1
        p[c], d[c] = p[a], d[a]
        for f in rng.choice(128, t % (k + 1), replace=False):
            if f < 64:
                p[c] ^= np.uint64(1) << np.uint64(f)
            else:
                d[c] ^= np.uint64(1) << np.uint64(f - 64)
    p[2 * pairs : 2 * pairs + copies], d[2 * pairs : 2 * pairs + copies] = p[:copies], d[:copies]
    return p, d
