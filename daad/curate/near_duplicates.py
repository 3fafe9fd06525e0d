"""Exact near-duplicate search over 128-bit codes (pHash || dHash) for a Hamming threshold k.

The distance of two images is `hamming(pHash) + hamming(dHash)`: on the real images
in ../shared/data the sum separates re-encoded copies from distinct look-alike images
(MVTec AD anomalies of one category) better than either hash alone (see dedupe.py for
the numbers behind the default k).

Two searchers share one small interface (`self_pairs`, `cross_pairs`), both exact:

- `MultiIndexHash` (default): multi-index hashing (Norouzi, Punjani & Fleet, "Fast
  search in Hamming space with multi-index hashing", CVPR 2012). Cut the code into m
  disjoint substrings; write k = m r + a (0 <= a < m). A pair within distance k has a
  substring within Hamming radius r among the first a + 1, or within r - 1 among the
  others (otherwise its distance would be at least (a+1)(r+1) + (m-a-1) r = k + 1), so
  probing every key within that radius in each substring's table finds every pair,
  for any k: exact. The substrings need not cover all 128 bits (the distance left
  outside them only adds), which lets widths stay at what a table can index.
  How m and the widths are chosen: `plan_substrings` prices each m with a cost model of
  random codes (sort, table, probes, expected candidates to verify) and takes the
  cheapest, which gives substrings of about log2 N bits (N = 1M, k = 8: three 21-22-bit
  substrings probed to radius 1 and three 21-bit exact ones; 10M: four 24-bit ones at
  radius 1 and one 32-bit exact one). The old fixed choice, k + 1 exact substrings of
  ~14 bits, verified N^2 / 2^14 candidates: 397M at 1M codes, growing as N^2.
  How a substring is searched: sort the keys (one sort of key << 32 | index), build a
  table of 2^w bucket starts and counts, and for each key look up the buckets of the
  key with each set of <= radius bits flipped. Candidates are verified in the sorted
  order of the substring: the codes are permuted into that order first, so the
  verification reads them nearly in sequence (the neighbours of consecutive keys lie
  in consecutive buckets). Each unordered pair is found once per substring (from the
  side whose key has the flip's top bit clear) and reported once overall (by the first
  substring that catches it; no deduplication sort).
  Measured on this 2-core machine (random 128-bit codes, k = 8, CPU seconds of one
  process; the machine was shared, wall time was 2-5x that): 1M codes 2.1 s, 10M codes
  37 s, peak memory 0.2 GB and 0.93 GB (about 70 bytes per code for the codes, their
  sorted copies, keys and order, plus 192 MiB for a 24-bit table). benchmarks/search.py
  prints it against faiss's IndexBinaryMultiHash and IndexBinaryHash in the same run.
- `BruteForce`: every pair, vectorised in blocks (numpy popcount). Simpler, and
  faster below a few thousand codes; the benchmark (benchmarks/dedupe.py) measures both.

Both return (i, j, distance) int64 arrays; `self_pairs` gives each unordered pair once
with i < j.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
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


MAX_TABLE_BITS = 24  # a probed substring's bucket table: 2^24 + 1 int32 starts = 64 MiB
_SORT_COST = 12.0  # one argsort + gathers per code, in units of one probe of one code (measured, see the docstring)
_VERIFY_COST = 2.0  # one candidate's full-distance check, same unit
_TABLE_COST = 0.5  # one entry of a probed substring's bucket table (bincount + cumsum), same unit


@dataclass(frozen=True)
class Substring:
    """Bits [start, start + width) of the 128-bit code (0-63: pHash, 64-127: dHash), probed to Hamming radius `radius`."""

    start: int
    width: int
    radius: int


def _keys(p: np.ndarray, d: np.ndarray, sub: Substring) -> np.ndarray:
    s, w = sub.start, sub.width
    mask = np.uint64((1 << w) - 1)
    if s + w <= 64:
        return (p >> np.uint64(s)) & mask
    if s >= 64:
        return (d >> np.uint64(s - 64)) & mask
    return ((p >> np.uint64(s)) | (d << np.uint64(64 - s))) & mask


def _probes(width: int, radius: int) -> int:
    """Keys within `radius` of a key of `width` bits: sum of C(width, t), t = 0..radius."""
    return sum(math.comb(width, t) for t in range(radius + 1))


def _split(m: int, radii: list[int], cap: int) -> list[int]:
    """Widths of m substrings: 128 bits split evenly, probed ones capped at `cap`, the others at 32, spare bits to the unprobed ones."""
    widths = [128 // m + (i < 128 % m) for i in range(m)]
    widths = [min(w, cap) if r > 0 else min(w, 32) for w, r in zip(widths, radii)]
    spare = 128 - sum(widths)
    for i, r in enumerate(radii):
        if r == 0 and spare > 0:
            extra = min(spare, 32 - widths[i])
            widths[i] += extra
            spare -= extra
    return widths


def plan_substrings(n: int, k: int, cap: int = MAX_TABLE_BITS, self_join: bool = True, queries: int | None = None) -> list[Substring]:
    """The cheapest exact plan for n indexed codes (and `queries` query codes) at threshold k.

    For m substrings, k = m * r + a (0 <= a < m): the first a + 1 substrings are probed to
    radius r, the others to r - 1 (Norouzi et al.'s bound: a pair within k has at least
    one substring within its radius, else its distance would be >= (a+1)(r+1) + (m-a-1)r
    = k + 1). Each m is priced with a cost model of random codes (sorting, probing each
    key's neighbours, verifying the expected candidates); the cheapest wins, which puts
    the widths near log2 n bits.
    """
    q = n if queries is None else queries
    half = 0.5 if self_join else 1.0
    best: tuple[float, list[Substring]] | None = None
    for m in range(1, min(k + 1, 128) + 1):
        r, a = divmod(k, m)
        radii = [r] * (a + 1) + [r - 1] * (m - a - 1)
        widths = _split(m, radii, cap)
        cost, plan, pos = 0.0, [], 0
        for w, rad in zip(widths, radii):
            if w <= 0:
                continue
            probes = _probes(w, rad)
            cost += _SORT_COST * (n + q) + half * q * probes * (1.0 + _VERIFY_COST * n / 2.0**w)
            cost += _TABLE_COST * 2.0**w if rad > 0 else 0.0
            plan.append(Substring(pos, w, rad))
            pos += w
        if best is None or cost < best[0]:
            best = (cost, plan)
    assert best is not None
    return best[1]


def _flips_by_top_bit(width: int, radius: int) -> Iterator[tuple[int, list[int]]]:
    """Every XOR mask of 1..radius bits within `width` bits, grouped by its highest bit."""
    for hb in range(width):
        flips = [(1 << hb) | sum(1 << b for b in rest) for t in range(radius) for rest in itertools.combinations(range(hb), t)]
        yield hb, flips


def _sort_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, sorted keys) of keys of <= 32 bits: one sort of key << 32 | index (measured 1.7x faster than argsort)."""
    packed = np.sort((keys << np.uint64(32)) | np.arange(len(keys), dtype=np.uint64))
    return (packed & np.uint64(0xFFFFFFFF)).astype(np.int64), packed >> np.uint64(32)


def _table(sorted_keys: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, count) per key: key's run in the sorted keys is start[key] .. start[key] + count[key] (2^width each)."""
    count = np.bincount(sorted_keys.astype(np.intp), minlength=1 << width).astype(np.int32)
    start = np.zeros(1 << width, np.int64)
    np.cumsum(count[:-1], out=start[1:])
    return start, count


def _expand(a: np.ndarray, targets: np.ndarray, table: tuple[np.ndarray, np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs (a[i], every sorted position whose key is targets[i]), in batches."""
    start, count = table
    cnt = count[targets]
    hit = np.flatnonzero(cnt)
    yield from _runs(a[hit], start[targets[hit]], cnt[hit])


def _probe(src: np.ndarray, keys: np.ndarray, flips: list[int], table: tuple[np.ndarray, np.ndarray], chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs (a, every sorted position whose key is keys[a] ^ f) for a in src and each flip f: the probing of both joins.

    `src` is taken `chunk` positions at a time, which bounds memory to one chunk's keys
    and one flip's candidates (2^21 positions: 16 MB an int64 array) whatever N is.
    """
    for c0 in range(0, len(src), chunk):
        a0 = src[c0 : c0 + chunk]
        ka = keys[a0]
        for f in flips:
            yield from _expand(a0, ka ^ f, table)


def _runs(a: np.ndarray, lo: np.ndarray, cnt: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(a[i], lo[i] + t) for t < cnt[i]: one batch per t while runs are short (random buckets hold ~1 code), then all at once."""
    for _ in range(4):
        if not len(a):
            return
        yield a, lo
        more = np.flatnonzero(cnt > 1)
        a, lo, cnt = a[more], lo[more] + 1, cnt[more] - 1
    if len(a):
        total = int(cnt.sum())
        first = np.repeat(lo - np.cumsum(cnt) + cnt, cnt)
        yield np.repeat(a, cnt), first + np.arange(total)


def _caught_earlier(kp: np.ndarray, kd: np.ndarray, lp: np.ndarray, ld: np.ndarray, plan: list[Substring], s: int) -> np.ndarray:
    """True where an earlier substring of the plan already reports the pair (so each pair is reported once)."""
    caught = np.zeros(len(kp), bool)
    for sub in plan[:s]:
        caught |= np.bitwise_count(_keys(kp, kd, sub) ^ _keys(lp, ld, sub)) <= sub.radius
    return caught


class MultiIndexHash:
    """Multi-index hashing (Norouzi et al.) with substrings sized from N and bit-flip probing; exact for any k.

    `max_table_bits` caps a probed substring's width (its bucket table is 2^w int32 starts).
    `plan` (optional) fixes the substrings as (start bit, width, radius) triples, for tests.
    """

    def __init__(self, max_table_bits: int = MAX_TABLE_BITS, chunk: int = 1 << 21, plan: list[Substring] | None = None):
        self.max_table_bits = max_table_bits
        self.chunk = chunk
        for sub in plan or []:
            if not 0 < sub.width <= 32 or sub.start < 0 or sub.start + sub.width > 128 or (sub.radius > 0 and sub.width > max_table_bits):
                raise ValueError(f"bad substring {sub}: widths are 1..32 bits inside the 128, probed ones at most {max_table_bits}")
        self.plan_override = plan

    def plan(self, n: int, k: int, self_join: bool, queries: int | None = None) -> list[Substring]:
        return self.plan_override if self.plan_override is not None else plan_substrings(n, k, self.max_table_bits, self_join, queries)

    def self_pairs(self, p: np.ndarray, d: np.ndarray, k: int) -> Pairs:
        p, d = np.ascontiguousarray(p, np.uint64), np.ascontiguousarray(d, np.uint64)
        if len(p) < 2 or k < 0:
            return _empty()
        return self._verified(p, d, p, d, k, self.plan(len(p), k, True), self_join=True)

    def cross_pairs(self, qp: np.ndarray, qd: np.ndarray, p: np.ndarray, d: np.ndarray, k: int) -> Pairs:
        qp, qd = np.ascontiguousarray(qp, np.uint64), np.ascontiguousarray(qd, np.uint64)
        p, d = np.ascontiguousarray(p, np.uint64), np.ascontiguousarray(d, np.uint64)
        if len(p) == 0 or len(qp) == 0 or k < 0:
            return _empty()
        return self._verified(qp, qd, p, d, k, self.plan(len(p), k, False, len(qp)), self_join=False)

    def _verified(self, qp: np.ndarray, qd: np.ndarray, p: np.ndarray, d: np.ndarray, k: int, plan: list[Substring],
                  self_join: bool) -> Pairs:
        """Every (query, code) pair within k, each once, sorted: the candidates of each substring, verified.

        Both sides are put in the substring's sorted key order first (a self join sorts
        once), so verification reads the codes nearly in sequence and the queries' probes
        walk the table in sequence. A self join reports i < j; a pair an earlier
        substring caught is dropped, so no deduplication sort is needed.
        """
        n = len(p)
        found: list[np.ndarray] = []
        for s, sub in enumerate(plan):
            order, sk = _sort_keys(_keys(p, d, sub))
            ps, ds = p[order], d[order]
            if self_join:
                qorder, qps, qds = order, ps, ds
                candidates = self._self_candidates(sk, sub)
            else:
                qorder, qks = _sort_keys(_keys(qp, qd, sub))
                qps, qds = qp[qorder], qd[qorder]
                candidates = self._cross_candidates(qks, sk, sub)
            for a, b in candidates:
                ok = distance(qps[a], qds[a], ps[b], ds[b]) <= k
                i, j = qorder[a[ok]], order[b[ok]]
                if self_join:
                    i, j = np.minimum(i, j), np.maximum(i, j)
                keep = ~_caught_earlier(qp[i], qd[i], p[j], d[j], plan, s)
                found.append(i[keep] * n + j[keep])
        if not found:
            return _empty()
        codes = np.sort(np.concatenate(found))
        i, j = codes // n, codes % n
        return i, j, distance(qp[i], qd[i], p[j], d[j])

    def _self_candidates(self, sk: np.ndarray, sub: Substring) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Sorted positions (a, b), a != b, whose keys are within the substring's radius, each unordered pair once."""
        n = len(sk)
        # Equal keys: pair sorted neighbours at growing offsets while equal keys remain (all pairs in each bucket).
        alive = np.arange(n - 1)
        off = 1
        while len(alive):
            alive = alive[alive + off < n]
            alive = alive[sk[alive] == sk[alive + off]]
            if len(alive):
                yield alive, alive + off
            off += 1
        if sub.radius == 0:
            return
        table = _table(sk, sub.width)
        ski = sk.astype(np.intp)
        for hb, flips in _flips_by_top_bit(sub.width, sub.radius):
            # A pair with different keys is found once: from the side whose key has the flip's top bit clear.
            yield from _probe(np.flatnonzero((ski & (1 << hb)) == 0), ski, flips, table, self.chunk)

    def _cross_candidates(self, qks: np.ndarray, sk: np.ndarray, sub: Substring) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(query position, index position) pairs, both in sorted order, whose keys are within the radius."""
        if sub.radius == 0 and sub.width > self.max_table_bits:
            lo = np.searchsorted(sk, qks, "left")
            cnt = np.searchsorted(sk, qks, "right") - lo
            hit = np.flatnonzero(cnt)
            yield from _runs(hit, lo[hit], cnt[hit])
            return
        flips = [0] + [f for _, fs in _flips_by_top_bit(sub.width, sub.radius) for f in fs]
        yield from _probe(np.arange(len(qks)), qks.astype(np.intp), flips, _table(sk, sub.width), self.chunk)


SEARCHERS: dict[str, type] = {"mih": MultiIndexHash, "brute": BruteForce}


def get_searcher(name: str = "mih") -> Searcher:
    if name not in SEARCHERS:
        raise ValueError(f"unknown search method {name!r}; expected one of {', '.join(SEARCHERS)}")
    return SEARCHERS[name]()
