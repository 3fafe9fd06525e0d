"""CAI's speed work changes no pixel: each cheaper form equals the plain one it replaced.

Every check compares against the plain computation written out here (a listing of legal
centres, a 4-connected labelling, np.pad, the divergence of the guidance field), on
random inputs with a fixed seed and on real images; and CAI's whole output on real
targets is pinned by digests taken from the version before the speed work (the same
digests on 16 targets x 3 modes at 256 and 512 px were compared when it was made).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from daad.core.images import load_image, load_mask
from daad.synthesis import CAI, Pattern
from daad.synthesis.cai import foreground, poisson
from daad.synthesis.cai.cai import resize_pattern
from daad.synthesis.cai.locations import legal_centres, sample_location
from daad.synthesis.cai.matching import bbox

DIGESTS = Path(__file__).resolve().parent / "data" / "cai_exact_digests.json"


def _listed_location(fg: np.ndarray, h: int, w: int, rng: np.random.Generator) -> tuple[int, int] | None:
    """The plain sampler: list every legal centre, draw one."""
    allowed, top, left = legal_centres(fg, h, w)
    idx = np.flatnonzero(allowed)
    if idx.size == 0:
        return None
    r, c = divmod(int(idx[rng.integers(idx.size)]), allowed.shape[1])
    return top + r, left + c


def test_location_sampler_draws_the_listed_centre():
    g = np.random.default_rng(0)
    for _ in range(400):
        H, W = (int(v) for v in g.integers(3, 120, 2))
        fg = g.random((H, W)) < g.choice([0.002, 0.05, 0.5, 1.0])
        h, w = (int(v) for v in g.integers(1, max(H, W) + 3, 2))
        seed = int(g.integers(1 << 30))
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        assert sample_location(fg, h, w, a) == _listed_location(fg, h, w, b)
        assert a.integers(1 << 30) == b.integers(1 << 30)  # the same draws consumed


def _labelled_fill(mask: np.ndarray) -> np.ndarray:
    inv = (~mask).astype(np.uint8)
    n, labels = cv2.connectedComponents(inv, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return mask | (~np.isin(labels, border) & (inv > 0))


def _largest_by_stats(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return mask if n <= 2 else labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def test_hole_filling_and_largest_component_equal_the_labelling():
    g = np.random.default_rng(1)
    for _ in range(300):
        H, W = (int(v) for v in g.integers(1, 60, 2))
        m = g.random((H, W)) < g.choice([0.3, 0.6, 0.9])
        if g.random() < 0.5:
            m = cv2.morphologyEx(m.view(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)) > 0
        assert np.array_equal(foreground._fill_holes(m), _labelled_fill(m))
        assert np.array_equal(foreground._largest_component(m), _largest_by_stats(m))


def _padded_resize(pattern: Pattern, side: int, ring: int = 1):
    """resize_pattern with np.pad, as it was written before cv2.copyMakeBorder."""
    f = side / pattern.side
    margin = int(np.ceil((2.0 + ring) / f)) + 1
    assert pattern.box is not None
    top, left, h, w = pattern.box
    H, W = pattern.mask.shape
    pads = (max(0, margin - top), max(0, top + h + margin - H), max(0, margin - left), max(0, left + w + margin - W))
    img = pattern.image[max(0, top - margin) : min(H, top + h + margin), max(0, left - margin) : min(W, left + w + margin)]
    msk = pattern.mask[max(0, top - margin) : min(H, top + h + margin), max(0, left - margin) : min(W, left + w + margin)].astype(np.float32)
    spec = ((pads[0], pads[1]), (pads[2], pads[3]))
    img = np.pad(img, spec + (((0, 0),) if img.ndim == 3 else ()), mode="edge")
    msk = np.pad(msk, spec)
    size = (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f)))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    img_r = cv2.resize(np.ascontiguousarray(img), size, interpolation=interp)
    msk_r = cv2.resize(msk, size, interpolation=interp) >= 0.5
    t, c, rh, rw = bbox(msk_r) or (0, 0, 0, 0)
    return img_r[t - ring : t + rh + ring, c - ring : c + rw + ring], msk_r[t - ring : t + rh + ring, c - ring : c + rw + ring]


def test_pattern_resize_with_cv2_borders_equals_np_pad(shared_data):
    img = shared_data / "mvtec_ad/bottle/test/broken_large/006.png"
    im = load_image(img)
    mask = np.asarray(load_mask(shared_data / "mvtec_ad/bottle/ground_truth/broken_large/006_mask.png", im.size)) > 0
    rgb = np.asarray(im)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    # Cut tight to the box so every margin needs padding, in colour and in grey.
    tight = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    for image in (rgb[tight], cv2.cvtColor(np.ascontiguousarray(rgb[tight]), cv2.COLOR_RGB2GRAY)):
        pattern = Pattern(np.ascontiguousarray(image), mask[tight])
        for side in (12, 40, 97, 180, 400):
            got, want = resize_pattern(pattern, side), _padded_resize(pattern, side)
            assert got is not None
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@pytest.mark.parametrize("mode,rule", [("normal", "perez"), ("mixed", "perez"), ("mixed", "opencv")])
def test_right_hand_side_is_the_divergence_of_the_guidance(mode, rule):
    """_rhs (int16 / int32 for uint8 inputs) equals div(v - ∇t) computed in float64 from `guidance`."""
    g = np.random.default_rng(2)
    for h, w, c in ((19, 23, 3), (40, 37, 1), (67, 71, 3)):
        t = g.integers(0, 256, (h, w, c), dtype=np.uint8)
        s = np.clip(t.astype(int) + g.integers(-90, 90, (h, w, c)), 0, 255).astype(np.uint8)
        s[g.random((h, w)) < 0.2] = 255  # strong edges, and ties of the Mixed comparisons
        mask = g.random((h, w)) < 0.6
        tf, sf = t.astype(np.float64), s.astype(np.float64)
        vx, vy = poisson.guidance(tf, sf, mask, mode, rule)  # type: ignore[arg-type]
        tx, ty = poisson.gradients(tf)
        dx, dy = vx - tx, vy - ty
        want = dx[1:-1, 1:-1] - dx[1:-1, :-2] + dy[1:-1, 1:-1] - dy[:-2, 1:-1]
        got = poisson._rhs(t, s, mask, mode, rule)  # type: ignore[arg-type]
        assert got.dtype == np.float32 and np.array_equal(got, want)


def test_blend_is_the_rounded_clipped_solution():
    """blend's uint8 path (int16 rhs on (h, w * c) planes, cv2's rounding) equals clip(rint(solution)) of the float path."""
    g = np.random.default_rng(3)
    for h, w, c in ((19, 22, 3), (40, 37, 1), (67, 71, 3), (5, 9, 3)):
        t = g.integers(0, 256, (h, w, c), dtype=np.uint8)
        s = np.clip(t.astype(int) + g.integers(-120, 120, (h, w, c)), 0, 255).astype(np.uint8)
        mask = g.random((h, w)) < 0.6
        for mode, rule in (("normal", "perez"), ("mixed", "perez"), ("mixed", "opencv")):
            want = np.clip(np.rint(poisson.solution(t, s, mask, mode, rule)), 0, 255).astype(np.uint8)  # type: ignore[arg-type]
            assert np.array_equal(poisson.blend(t, s, mask, mode, rule), want)  # type: ignore[arg-type]
            assert np.array_equal(poisson.blend(t[..., 0], s[..., 0], mask, mode, rule), want[..., 0])  # type: ignore[arg-type]
        assert np.array_equal(poisson.blend(t, t, mask), t)  # an all-zero rhs: the target itself


def test_cv2_rounding_is_numpys():
    """blend rounds with cv2.convertScaleAbs after clipping at 0: round half to even and the clip at 255, as np.rint + clip."""
    x = np.repeat((np.arange(0, 8 * 300, dtype=np.float32) / np.float32(8))[:, None], 3, axis=1).reshape(1, -1, 3)
    assert np.array_equal(cv2.convertScaleAbs(x), np.clip(np.rint(x), 0, 255).astype(np.uint8))


def test_eigenvalue_cache_holds_the_plain_values_within_its_bytes():
    cache = poisson._EigenCache(limit=3 * 40 * 40 * 4)
    for n, m, c, dtype in ((5, 7, 3, np.float32), (40, 40, 3, np.float32), (9, 4, 0, np.float32), (5, 7, 3, np.float32),
                           (6, 11, 1, np.float32), (13, 8, 2, np.float64), (263, 261, 3, np.float32)):
        got = cache(n, m, c, np.dtype(dtype))
        ly = 2.0 * np.cos(np.pi * np.arange(1, n + 1) / (n + 1)) - 2.0
        lx = 2.0 * np.cos(np.pi * np.arange(1, m + 1) / (m + 1)) - 2.0
        plane = (ly[:, None] + lx[None, :]).astype(dtype)
        want = np.repeat(plane[..., None], c, axis=2) if c else plane
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert cache._bytes <= cache.limit or len(cache._arrays) == 1


def _digests(patterns: list[Pattern], targets: list[tuple[str, np.ndarray]]) -> dict[str, str]:
    out = {}
    for mode, rule in (("normal", "perez"), ("mixed", "perez"), ("mixed", "opencv")):
        cai = CAI(patterns, mode=mode, mixed_rule=rule, size=256, seed=7)
        for key, img in targets:
            h = hashlib.sha256()
            for inj in cai(img, key=key):
                h.update(inj.image.tobytes())
                h.update(inj.mask.tobytes())
                h.update(json.dumps(inj.provenance, sort_keys=True).encode())
            out[f"{mode}/{rule}/{key}"] = h.hexdigest()
    return out


def test_cai_output_is_the_pre_speed_work_output(shared_data):
    """Images, masks and provenance of 3 modes x 4 real targets (RGB objects, grey textures) against stored digests."""
    patterns = []
    for img in sorted((shared_data / "mvtec_ad").glob("*/test/*/*.png"))[::3]:
        if img.parent.name == "good":
            continue
        m = shared_data / "mvtec_ad" / img.parts[-4] / "ground_truth" / img.parent.name / f"{img.stem}_mask.png"
        im = load_image(img)
        patterns.append(Pattern(np.asarray(im), np.asarray(load_mask(m, im.size)) > 0, img.name, img.parent.name, "mvtec_ad"))
    for img in sorted((shared_data / "magnetic_tile" / "MT_Crack" / "Imgs").glob("*.jpg"))[:6]:
        im = load_image(img)
        patterns.append(Pattern(np.asarray(im), np.asarray(load_mask(img.with_suffix(".png"), im.size, binarize=True)) > 0, img.name, "crack", "magnetic_tile"))
    files = (sorted((shared_data / "mvtec_ad").glob("*/test/good/*.png"))[::9]
             + sorted((shared_data / "magnetic_tile" / "MT_Free" / "Imgs").glob("*.jpg"))[:2])
    targets = [(str(f.relative_to(shared_data)), np.asarray(load_image(f))) for f in files]
    assert _digests(patterns, targets) == json.loads(DIGESTS.read_text())
