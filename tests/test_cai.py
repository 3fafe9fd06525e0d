"""CAI on numpy arrays, with real anomalies (MVTec AD bottle/capsule, Magnetic Tile) and real normal targets.

Reads like a user's session: build patterns from real images and masks, configure CAI
once, call it on MVTec AD test/good images, and check what the paper promises: 10
outputs per target split 4/3/3 (larger first), R' inside its scale's interval and never
a scale above the pattern's own, masks binary, non-empty and on the foreground, nothing
changed outside the solved region or the foreground, and bit-identical reruns.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from daad.core.errors import BadItemError
from daad.core.images import load_image, load_mask
from daad.synthesis import CAI, Pattern
from daad.synthesis.cai import matching
from daad.synthesis.cai.cai import resize_target
from daad.synthesis.cai.foreground import AutoForeground, OtsuForeground
from daad.synthesis.cai.locations import centre_offset, sample_location

SIZE = 256


def _patterns(data: Path) -> list[Pattern]:
    out = []
    for img in sorted((data / "mvtec_ad").glob("*/test/*/*.png")):
        if img.parent.name == "good":
            continue
        m = data / "mvtec_ad" / img.parts[-4] / "ground_truth" / img.parent.name / f"{img.stem}_mask.png"
        im = load_image(img)
        out.append(Pattern(np.asarray(im), np.asarray(load_mask(m, im.size)) > 0, f"mvtec_ad:{img.parts[-4]}/{img.parent.name}/{img.name}", "crack", "mvtec_ad"))
    for kind in ("MT_Crack", "MT_Break", "MT_Uneven"):
        for img in sorted((data / "magnetic_tile" / kind / "Imgs").glob("*.jpg"))[:8]:
            im = load_image(img)
            mask = np.asarray(load_mask(img.with_suffix(".png"), im.size, binarize=True)) > 0
            out.append(Pattern(np.asarray(im), mask, f"magnetic_tile:{kind}/{img.name}", "crack", "magnetic_tile"))
    return out


@pytest.fixture(scope="module")
def patterns(shared_data) -> list[Pattern]:
    return _patterns(shared_data)


@pytest.fixture(scope="module")
def targets(shared_data) -> dict[str, np.ndarray]:
    names = ["mvtec_ad/bottle/test/good/001.png", "mvtec_ad/capsule/test/good/005.png"]
    return {n: np.asarray(load_image(shared_data / n)) for n in names}


@pytest.fixture(scope="module")
def cai_n(patterns) -> CAI:
    return CAI(patterns, mode="normal", size=SIZE, seed=0)


@pytest.mark.parametrize("name", ["mvtec_ad/bottle/test/good/001.png", "mvtec_ad/capsule/test/good/005.png"])
def test_ten_pseudo_anomalies_per_target_as_the_paper_specifies(cai_n, targets, name):
    target = targets[name]
    out = cai_n(target, key=name)
    assert len(out) == 10
    assert Counter(i.provenance["scale"] for i in out) == {"large": 4, "medium": 3, "small": 3}

    normal = resize_target(target, SIZE)
    fg = OtsuForeground()(normal)  # what `auto` picked for these objects
    assert all(i.provenance["foreground"] == "otsu" for i in out)
    box = matching.bbox(fg)
    assert box is not None
    s_f = max(box[2:])
    for inj in out:
        p = inj.provenance
        scale = matching.SCALE_BY_NAME[p["scale"]]
        assert scale.contains(p["R_prime"]) and scale in matching.allowed_scales(p["R"])  # never above the pattern's own scale
        assert p["R"] >= 0.1 and p["s_f"] == s_f
        assert inj.image.shape == normal.shape and inj.image.dtype == np.uint8
        assert inj.mask.shape == normal.shape[:2] and set(np.unique(inj.mask)) == {0, 255}
        assert not (inj.mask.astype(bool) & ~fg).any()  # inside the foreground
        top, left, h, w = p["box"]
        assert top >= 0 and left >= 0 and top + h <= SIZE and left + w <= SIZE  # the whole pattern inside the image
        assert fg[p["location"][0], p["location"][1]]  # centred on the foreground
        assert (p["location"][0] - top, p["location"][1] - left) == centre_offset(h, w)
        rt, rl, rh, rw = p["region"]  # the solved region: the box grown to a fast transform size
        assert rt <= top and rl <= left and rt + rh >= top + h and rl + rw >= left + w
        assert rt >= 0 and rl >= 0 and rt + rh <= SIZE and rl + rw <= SIZE and rh - h <= 9 and rw - w <= 9
        changed = (inj.image != normal).any(axis=2)
        inside = np.zeros_like(changed)
        inside[rt : rt + rh, rl : rl + rw] = True
        assert not (changed & ~inside).any() and not (changed & ~fg).any()  # unchanged outside the solved region and the object
        assert (inj.mask > 0).sum() <= changed.sum()  # the mask marks changed pixels only (Eq. 4)
        assert {"daad_id", "anomaly_class", "origin", "R", "R_prime", "scale", "location", "mode", "seed", "threshold"} <= set(p)


def test_same_seed_bit_identical_other_seed_different(patterns, targets):
    name, target = next(iter(targets.items()))
    a = CAI(patterns, seed=7, size=SIZE)(target, key=name)
    b = CAI(patterns, seed=7, size=SIZE)(target, key=name)
    c = CAI(patterns, seed=8, size=SIZE)(target, key=name)
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask) and x.provenance == y.provenance for x, y in zip(a, b))
    assert any(not np.array_equal(x.image, y.image) for x, y in zip(a, c))


def test_mixed_mode_and_grey_targets(patterns, targets):
    name, target = next(iter(targets.items()))
    grey = target.mean(axis=2).astype(np.uint8)
    out = CAI(patterns, mode="mixed", size=SIZE, seed=0, foreground="full")(grey, key=name)
    assert len(out) == 10 and out[0].image.shape == (SIZE, SIZE)
    assert all(i.provenance["mode"] == "mixed" and i.provenance["foreground"] == "full" and i.mask.any() for i in out)


def test_mas_fills_larger_scales_first_and_never_exceeds_a_quota():
    quota = matching.quotas(4, 3, 3)
    counts = {"large": 0, "medium": 0, "small": 0}
    order = []
    for r in [1.5, 0.5, 2.0, 0.05, 0.2, 0.9, 0.8, 3.0, 0.4, 0.6, 0.35, 0.15, 0.25, 5.0, 0.12]:
        scale = matching.choose_scale(r, counts, quota)
        if scale is None:
            continue
        counts[scale.name] += 1
        order.append((r, scale.name))
    assert counts == {"large": 4, "medium": 3, "small": 3}
    assert (0.05, "small") not in order  # trivial patterns are discarded
    assert (3.0, "medium") in order  # a large pattern steps down once large is full ...
    assert (0.6, "small") in order  # ... a medium one too, once medium is full
    assert len(order) == 10  # and once every quota is full, nothing more is made (5.0 came too late)
    assert all(matching.SCALE_BY_NAME[s] in matching.allowed_scales(r) for r, s in order)


def test_unreachable_scales_move_down_and_are_recorded(patterns, targets):
    small_only = [p for p in patterns if p.origin == "magnetic_tile" and p.side < 120]
    name, target = next(iter(targets.items()))
    out = CAI(small_only, size=SIZE, seed=0)(target, key=name)
    assert len(out) == 10
    assert all("quota_moved" in i.provenance for i in out)
    assert Counter(i.provenance["scale"] for i in out)["large"] == 0


def test_side_range_and_location_sampler_respect_their_constraints():
    for s_f in (17, 100, 229, 256):
        for scale in matching.SCALES:
            lo, hi = matching.side_range(scale, s_f)
            assert scale.contains(lo / s_f) and scale.contains(hi / s_f)
            assert not scale.contains((lo - 1) / s_f) and not scale.contains((hi + 1) / s_f)
    fg = np.zeros((64, 64), bool)
    fg[20:40, 5:60] = True
    rng = np.random.default_rng(0)
    for _ in range(200):
        at = sample_location(fg, 21, 30, rng)
        assert at is not None
        r, c = at
        ch, cw = centre_offset(21, 30)
        assert fg[r, c] and r - ch >= 0 and c - cw >= 0 and r - ch + 21 <= 64 and c - cw + 30 <= 64
    assert sample_location(fg, 65, 10, rng) is None


def test_auto_foreground_tells_objects_from_textures(shared_data, targets):
    auto = AutoForeground()
    for img in targets.values():
        auto(resize_target(img, SIZE))
        assert auto.last_method == "otsu"
    for f in sorted((shared_data / "magnetic_tile/MT_Free/Imgs").glob("*.jpg"))[:4]:
        mask = auto(resize_target(np.asarray(load_image(f)), SIZE))
        assert auto.last_method == "full" and mask.all()


class _NoForeground:
    """A Masker (name and call) that finds nothing."""

    name = "none"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return np.zeros(image.shape[:2], bool)


def test_bad_targets_are_named(patterns, targets):
    name, target = next(iter(targets.items()))
    with pytest.raises(BadItemError, match="empty foreground"):
        CAI(patterns, foreground=_NoForeground())(target, key="t.png")
    tiny = [Pattern(np.zeros((50, 50, 3), np.uint8), np.pad(np.ones((10, 10), bool), 20))]  # R = 10 / 229 < 0.1
    with pytest.raises(BadItemError, match="t.png: no anomaly pattern is large enough"):
        CAI(tiny, size=SIZE)(target, key="t.png")
    with pytest.raises(ValueError, match="quota"):
        CAI(patterns, quota=(0, 0, 0))
