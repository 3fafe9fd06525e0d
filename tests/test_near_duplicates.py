"""Multi-index hashing is exact: it returns exactly brute force's pairs, whatever the plan its cost model picks.

Codes with planted pairs at every distance 0..k (spread over both 64-bit words), for
several k and sizes (so the planner picks different substring counts, widths and probe
radii), hand-made plans that probe to radius 2 and straddle the pHash/dHash boundary,
and the real hashes of images in ../shared/data.
"""

from __future__ import annotations

import numpy as np
import pytest

from daad.curate import planted_codes as planted
from daad.curate.hashing import hash_files
from daad.curate.near_duplicates import BruteForce, MultiIndexHash, Substring, distance, plan_substrings


def planted_codes(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random 128-bit codes; codes 2t and 2t+1 are t % (k+1) bits apart (t < n // 4), the first n // 8 in threes."""
    return planted.planted_codes(n, k, pairs=n // 4, copies=n // 8, seed=seed)


def same(a, b) -> bool:
    order = np.lexsort((b[1], b[0]))
    return all(np.array_equal(x, y[order]) for x, y in zip(a, b))


def test_planted_codes_are_where_the_docstring_says():
    p, d = planted.planted_codes(1000, 5, pairs=300, copies=40, seed=3)
    t = np.arange(300)
    assert np.array_equal(distance(p[2 * t], d[2 * t], p[2 * t + 1], d[2 * t + 1]), t % 6)
    assert np.array_equal(p[600:640], p[:40]) and np.array_equal(d[600:640], d[:40])
    with pytest.raises(ValueError, match="do not fit in 100 codes"):
        planted.planted_codes(100, 5, pairs=50, copies=1)


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
