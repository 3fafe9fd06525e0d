"""Multi-index hashing is exact: it returns exactly brute force's pairs, whatever the plan its cost model picks.

Codes with planted pairs at every distance 0..k (spread over both 64-bit words), for
several k and sizes (so the planner picks different substring counts, widths and probe
radii), hand-made plans that probe to radius 2 and straddle the pHash/dHash boundary,
and the real hashes of images in ../shared/data.
"""

from __future__ import annotations

import numpy as np
import pytest

from daad.curate.hashing import hash_files
from daad.curate.near_duplicates import BruteForce, MultiIndexHash, Substring, plan_substrings


def planted_codes(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random 128-bit codes; codes 2t and 2t+1 are t % (k+1) bits apart (t < n // 4), some in clusters of three."""
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    d = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    for t in range(n // 4):
        a, c = 2 * t, 2 * t + 1
        p[c], d[c] = p[a], d[a]
        for f in rng.choice(128, t % (k + 1), replace=False):
            if f < 64:
                p[c] ^= np.uint64(1) << np.uint64(f)
            else:
                d[c] ^= np.uint64(1) << np.uint64(f - 64)
    third = n // 2 + np.arange(0, n // 8)  # exact copies of planted codes: buckets of three and more
    p[third], d[third] = p[third - n // 2], d[third - n // 2]
    return p, d


def same(a, b) -> bool:
    order = np.lexsort((b[1], b[0]))
    return all(np.array_equal(x, y[order]) for x, y in zip(a, b))


@pytest.mark.parametrize("n,k", [(3000, 0), (3000, 1), (3000, 3), (4000, 8), (3000, 13), (2000, 20)])
def test_planted_pairs_at_every_distance_match_brute_force(n, k):
    p, d = planted_codes(n, k)
    ours, truth = MultiIndexHash().self_pairs(p, d, k), BruteForce().self_pairs(p, d, k)
    assert same(ours, truth)
    dist = truth[2]
    assert set(range(k + 1)) <= set(dist.tolist())  # every distance 0..k is really there
    assert same(MultiIndexHash().cross_pairs(p[:300], d[:300], p, d, k), BruteForce().cross_pairs(p[:300], d[:300], p, d, k))


@pytest.mark.parametrize(
    "plan",
    [
        [Substring(0, 12, 2), Substring(12, 12, 1), Substring(24, 16, 1), Substring(40, 32, 0)],
        [Substring(56, 16, 2), Substring(72, 20, 2), Substring(100, 22, 1)],  # the first straddles pHash and dHash
    ],
)
def test_hand_made_plans_with_radius_two_are_exact(plan):
    # Each plan is exact for k = sum(radius + 1) - 1 (Norouzi's bound with these radii).
    k = sum(s.radius + 1 for s in plan) - 1
    p, d = planted_codes(3000, k, seed=1)
    assert same(MultiIndexHash(plan=plan).self_pairs(p, d, k), BruteForce().self_pairs(p, d, k))
    assert same(MultiIndexHash(plan=plan).cross_pairs(p[:200], d[:200], p, d, k), BruteForce().cross_pairs(p[:200], d[:200], p, d, k))
    with pytest.raises(ValueError, match="bad substring"):
        MultiIndexHash(plan=[Substring(0, 30, 1)])  # a probed substring's table would be 2^30 entries


def test_planner_sizes_substrings_from_n():
    widths = {n: [s.width for s in plan_substrings(n, 8) if s.radius > 0] for n in (10_000, 1_000_000)}
    assert max(widths[10_000]) < min(widths[1_000_000])  # more codes, longer substrings (about log2 n bits)
    for n in (100, 10_000, 1_000_000, 10_000_000):
        for k in (0, 4, 8, 16):
            plan = plan_substrings(n, k)
            assert sum(s.radius + 1 for s in plan) >= k + 1  # the pigeonhole bound covers k
            bits = [b for s in plan for b in range(s.start, s.start + s.width)]
            assert len(bits) == len(set(bits)) and max(bits) < 128  # disjoint substrings of the 128 bits


def test_real_image_hashes_match_brute_force(shared_data):
    paths = sorted(p for p in shared_data.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".bmp"} and "mask" not in p.name)[::3]
    h = hash_files(paths, progress=False, workers=1)
    p, d = h.phash[h.ok], h.dhash[h.ok]
    assert len(p) > 300
    for k in (0, 4, 8, 12):
        ours, truth = MultiIndexHash().self_pairs(p, d, k), BruteForce().self_pairs(p, d, k)
        assert same(ours, truth), k
    assert len(BruteForce().self_pairs(p, d, 8)[0]) > 0  # the real data holds near-duplicates
