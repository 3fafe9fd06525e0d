"""The small-region path of the Poisson solver (`_rhs_small`, blend below `SMALL_REGION`) gives the general path's values exactly.

Speed work may change how a value is computed, never the value: every right-hand side
and every blended pixel is compared with `==`, on random regions of every small shape
class (grey and colour, 2 and 4 channels, strong edges and ties of the Mixed tests,
non-contiguous targets cut from a larger image, bool and 0/255 masks) and on real MVTec
AD regions cut the way CAI cuts them.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
from PIL import Image

from daad.synthesis.cai import poisson

RULES = [("normal", "perez"), ("mixed", "perez"), ("mixed", "opencv")]


def _random_region(g: np.random.Generator, h: int, w: int, c: int, kind: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target cut from a larger image, source, mask); kind 0: source near the target (ties), 1: saturated edges, 2: noise."""
    shape = (h, w) if c == 0 else (h, w, c)
    image = g.integers(0, 256, (h + 5, w + 7, *shape[2:]), dtype=np.uint8)
    target = image[2 : 2 + h, 3 : 3 + w]  # a view with the image's strides, as CAI passes it
    source = g.integers(0, 256, shape, dtype=np.uint8)
    if kind == 0:
        source = np.clip(target.astype(int) + g.integers(-2, 3, shape), 0, 255).astype(np.uint8)
    elif kind == 1:
        source[g.random((h, w)) < 0.3] = 255
        source[g.random((h, w)) < 0.2] = 0
    mask = g.random((h, w)) < g.random()
    return target, source, mask


def _shapes(g: np.random.Generator, count: int):
    for i in range(count):
        h, w = (int(x) for x in g.integers(3, 41, 2))
        yield i, h, w, (0, 1, 3, 2, 4)[i % 5]


@pytest.mark.parametrize("mode,rule", RULES)
def test_small_rhs_equals_the_general_rhs_on_random_regions(mode, rule):
    g = np.random.default_rng(17)
    for i, h, w, c in _shapes(g, 150):
        target, source, mask = _random_region(g, h, w, max(c, 1), i % 3)
        want = poisson._rhs(target, source, mask, mode, rule)
        got = poisson._rhs_small(target, source, mask if i % 2 else mask.astype(np.uint8) * 255, mode, rule)
        assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == want.shape
        assert np.array_equal(got, want), (h, w, c, mode, rule)


@pytest.mark.parametrize("mode,rule", RULES)
def test_blend_small_path_equals_the_general_path(monkeypatch, mode, rule):
    """blend with the small path (the default below SMALL_REGION) against blend with it switched off: the same pixels."""
    g = np.random.default_rng(18)
    cases = []
    for i, h, w, c in _shapes(g, 120):
        target, source, mask = _random_region(g, h, w, c, i % 3)
        if i % 7 == 3:
            source = source.astype(np.float32)  # a float source: the general path in both runs, the same answer
        cases.append((target, source, mask if i % 4 else mask.astype(np.uint8) * 255))
    small = [poisson.blend(t, s, m, cast(Any, mode), cast(Any, rule)) for t, s, m in cases]
    monkeypatch.setattr(poisson, "SMALL_REGION", 0)
    for (t, s, m), got in zip(cases, small):
        want = poisson.blend(t, s, m, cast(Any, mode), cast(Any, rule))
        assert got.dtype == np.uint8 and got.shape == t.shape and np.array_equal(got, want), (t.shape, s.dtype, mode, rule)


def test_blend_of_float_inputs_is_unchanged_by_the_small_path(monkeypatch):
    """Float targets never take the small path: their result is clip(rint(solution)), with or without it."""
    g = np.random.default_rng(19)
    target = g.random((21, 18, 3)) * 255
    source = g.random((21, 18, 3)) * 255
    mask = g.random((21, 18)) < 0.5
    want = np.clip(np.rint(poisson.solution(target, source, mask, "mixed")), 0, 255).astype(np.uint8)
    assert np.array_equal(poisson.blend(target, source, mask, "mixed"), want)
    monkeypatch.setattr(poisson, "SMALL_REGION", 0)
    assert np.array_equal(poisson.blend(target, source, mask, "mixed"), want)


def test_small_path_on_real_regions(shared_data, monkeypatch):
    """Real MVTec AD patterns on real targets at CAI's small sizes, grown to fast sides as CAI grows them."""
    src_img = Image.open(shared_data / "mvtec_ad/bottle/test/broken_large/006.png").convert("RGB")
    mask_img = Image.open(shared_data / "mvtec_ad/bottle/ground_truth/broken_large/006_mask.png")
    box = mask_img.getbbox()
    assert box is not None
    target = np.asarray(Image.open(shared_data / "mvtec_ad/capsule/test/good/001.png").convert("RGB").resize((256, 256)))
    cases = []
    for side in (1, 4, 9, 16, 21, 24, 29, 32, 37):
        for w in (side, side + 5):
            src = np.asarray(src_img.crop(box).resize((w, side)))
            msk = np.asarray(mask_img.crop(box).resize((w, side), Image.Resampling.NEAREST)) > 127
            top, left, bh, bw = 100, 90, side + 2, w + 2
            gt, gl, gh, gw = poisson.grow_region(top, left, bh, bw, 256, 256)
            tgt = target[gt : gt + gh, gl : gl + gw]
            grown_src, grown_mask = tgt.copy(), np.zeros((gh, gw), bool)
            grown_src[top - gt + 1 : top - gt + bh - 1, left - gl + 1 : left - gl + bw - 1] = src
            grown_mask[top - gt + 1 : top - gt + bh - 1, left - gl + 1 : left - gl + bw - 1] = msk
            for t, s in ((tgt, grown_src), (tgt[..., 1], grown_src[..., 1])):  # colour, and one channel as grey
                cases.append((t, s, grown_mask))
    assert any(t.shape[0] * t.shape[1] <= poisson.SMALL_REGION for t, _, _ in cases)
    got = {(i, mode, rule): poisson.blend(t, s, m, cast(Any, mode), cast(Any, rule)) for i, (t, s, m) in enumerate(cases) for mode, rule in RULES}
    changed = sum(not np.array_equal(v, cases[i][0]) for (i, _, _), v in got.items())
    assert changed > len(got) // 2  # real injections, not targets left alone
    monkeypatch.setattr(poisson, "SMALL_REGION", 0)
    for (i, mode, rule), v in got.items():
        t, s, m = cases[i]
        assert np.array_equal(v, poisson.blend(t, s, m, cast(Any, mode), cast(Any, rule))), (t.shape, mode, rule)
