"""Exact near-duplicate search over 128-bit codes (pHash || dHash) for a Hamming threshold k.

The distance of two images is `hamming(pHash) + hamming(dHash)`: on the real images
in ../shared/data the sum separates re-encoded copies from distinct look-alike images
(MVTec AD anomalies of one category) better than either hash alone (see dedupe.py for
the numbers behind the default k).

Two searchers share one small interface (`self_pairs`, `cross_pairs`), both exact:

- `MultiIndexHash` (default): pigeonhole. Cut the 128 bits into k+1 disjoint
  substrings; two codes within distance k agree exactly on at least one of them. Per
  substring, sort the keys and pair up equal keys only, then verify the full distance.
  No all-pairs comparison: on 1M random codes it verifies a few hundred million
  candidates instead of 5e11 pairs.
- `BruteForce`: every pair, vectorised in blocks (numpy popcount). Simpler, and
  faster below a few thousand codes; the benchmark (benchmarks/dedupe.py) measures both.

Both return (i, j, distance) int64 arrays; `self_pairs` gives each unordered pair once
with i < j.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]


def distance(p1: np.ndarray, d1: np.ndarray, p2: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """hamming(pHash) + hamming(dHash), elementwise with broadcasting."""
    return (np.bitwise_count(np.bitwise_xor(p1, p2)).astype(np.int64) + np.bitwise_count(np.bitwise_xor(d1, d2)).astype(np.int64))


def _empty() -> Pairs:
    e = np.zeros(0, np.int64)
    return e, e.copy(), e.copy()


class Searcher(Protocol):
    def self_pairs(self, p: np.ndarray, d: np.ndarray, k: int) -> Pairs: ...

    def cross_pairs(self, qp: np.ndarray, qd: np.ndarray, p: np.ndarray, d: np.ndarray, k: int) -> Pairs: ...


class BruteForce:
    """All pairs in blocks of `block` rows: O(n^2) popcounts, no index."""

    def __init__(self, block: int = 1024):
        self.block = block

    def cross_pairs(self, qp: np.ndarray, qd: np.ndarray, p: np.ndarray, d: np.ndarray, k: int) -> Pairs:
        out = []
        for s in range(0, len(qp), self.block):
            dist = distance(qp[s : s + self.block, None], qd[s : s + self.block, None], p[None], d[None])
            i, j = np.nonzero(dist <= k)
            out.append((i + s, j, dist[i, j]))
        return tuple(np.concatenate(x).astype(np.int64) for x in zip(*out)) if out else _empty()  # type: ignore[return-value]

    def self_pairs(self, p: np.ndarray, d: np.ndarray, k: int) -> Pairs:
        i, j, dist = self.cross_pairs(p, d, p, d, k)
        keep = i < j
        return i[keep], j[keep], dist[keep]


def _substrings(k: int) -> list[tuple[int, int, int]]:
    """k+1 disjoint (word, shift, width) bit ranges covering both 64-bit words."""
    m = k + 1
    m_p = (m + 1) // 2
    parts = []
    for word, count in ((0, m_p), (1, m - m_p)):
        if count == 0:
            continue
        edges = np.linspace(0, 64, count + 1).round().astype(int)
        parts += [(word, int(a), int(b - a)) for a, b in zip(edges[:-1], edges[1:])]
    return parts


def _keys(p: np.ndarray, d: np.ndarray, part: tuple[int, int, int]) -> np.ndarray:
    word, shift, width = part
    src = p if word == 0 else d
    return (src >> np.uint64(shift)) & np.uint64((1 << width) - 1)


class MultiIndexHash:
    """Pigeonhole multi-index hashing with k+1 exact-match substrings (needs k <= 127)."""

    @staticmethod
    def _sorted_substrings(p: np.ndarray, d: np.ndarray, k: int) -> Iterator[tuple[tuple[int, int, int], np.ndarray, np.ndarray]]:
        """(substring, order, sorted keys) of the indexed codes for each of the k+1 substrings."""
        for part in _substrings(k):
            keys = _keys(p, d, part)
            order = np.argsort(keys, kind="stable")
            yield part, order, keys[order]

    @staticmethod
    def _unique_pairs(found: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Candidate pairs encoded as i * n + j, deduplicated across substrings and decoded."""
        if not found:
            return None
        codes = np.unique(np.concatenate(found))
        return codes // n, codes % n

    def self_pairs(self, p: np.ndarray, d: np.ndarray, k: int) -> Pairs:
        n = len(p)
        found: list[np.ndarray] = []
        for _, order, sk in self._sorted_substrings(p, d, k):
            # Pair sorted neighbours at growing offsets while equal keys remain: all pairs in each bucket.
            alive = np.arange(n - 1)
            off = 1
            while len(alive):
                alive = alive[alive + off < n]
                alive = alive[sk[alive] == sk[alive + off]]
                if not len(alive):
                    break
                a, b = order[alive], order[alive + off]
                dist = distance(p[a], d[a], p[b], d[b])
                ok = dist <= k
                lo, hi = np.minimum(a[ok], b[ok]), np.maximum(a[ok], b[ok])
                found.append(lo.astype(np.int64) * n + hi)
                off += 1
        pairs = self._unique_pairs(found, n)
        if pairs is None:
            return _empty()
        i, j = pairs
        return i, j, distance(p[i], d[i], p[j], d[j])

    def cross_pairs(self, qp: np.ndarray, qd: np.ndarray, p: np.ndarray, d: np.ndarray, k: int) -> Pairs:
        n = len(p)
        found: list[np.ndarray] = []
        for part, order, sk in self._sorted_substrings(p, d, k):
            qk = _keys(qp, qd, part)
            lo = np.searchsorted(sk, qk, "left")
            cnt = np.searchsorted(sk, qk, "right") - lo
            qi = np.repeat(np.arange(len(qp)), cnt)
            if not len(qi):
                continue
            starts = np.repeat(lo - np.cumsum(cnt) + cnt, cnt)  # position within each run
            bi = order[starts + np.arange(len(qi))]
            dist = distance(qp[qi], qd[qi], p[bi], d[bi])
            ok = dist <= k
            found.append(qi[ok].astype(np.int64) * n + bi[ok])
        pairs = self._unique_pairs(found, n)
        if pairs is None:
            return _empty()
        i, j = pairs
        return i, j, distance(qp[i], qd[i], p[j], d[j])


SEARCHERS: dict[str, type] = {"mih": MultiIndexHash, "brute": BruteForce}


def get_searcher(name: str = "mih") -> Searcher:
    if name not in SEARCHERS:
        raise ValueError(f"unknown search method {name!r}; expected one of {', '.join(SEARCHERS)}")
    return SEARCHERS[name]()
