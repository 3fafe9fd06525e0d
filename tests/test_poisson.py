"""The Poisson solver behind CAI: exact on the discrete equation, and equal to cv2.seamlessClone on cv2's inputs.

Tolerance. Given the inputs cv2 really solves with (its region = the mask's bounding box
placed on the centre, its mask eroded by 3 iterations of a 3x3 kernel, its source zeroed
outside the mask), our solution and cv2's differ by at most 1 grey level at every pixel:
cv2 truncates a float32 solution, we round. Real MVTec AD images, both modes.
"""

from __future__ import annotations

from typing import Any, cast

import cv2
import numpy as np
import pytest
from PIL import Image

from daad.synthesis.cai import poisson

TOLERANCE = 1  # grey levels, at every pixel


def test_solver_is_exact_on_a_known_solution():
    rng = np.random.default_rng(0)
    truth = rng.random((41, 57, 3)) * 255
    start = truth.copy()
    start[1:-1, 1:-1] = rng.random((39, 55, 3)) * 255  # only the ring of `start` is right
    vx, vy = poisson.gradients(truth)
    assert np.abs(poisson.solve(start, vx, vy) - truth).max() < 1e-9
    f32 = poisson.solve(start.astype(np.float32), vx.astype(np.float32), vy.astype(np.float32))
    assert np.abs(f32 - truth).max() < 0.01  # float32 round-off is far below one grey level


def test_ring_is_the_target_and_mixed_with_a_flat_source_changes_nothing():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    flat = np.full_like(target, 90)
    mask = np.zeros((30, 40), bool)
    mask[5:25, 5:35] = True
    normal = poisson.blend(target, flat, mask, "normal")
    assert np.array_equal(normal[0], target[0]) and np.array_equal(normal[-1], target[-1])
    assert np.array_equal(normal[:, 0], target[:, 0]) and np.array_equal(normal[:, -1], target[:, -1])
    # Normal mode with a flat source flattens the masked area (source gradients are zero there) ...
    assert normal[8:22, 8:32].std() < target[8:22, 8:32].std() / 4
    # ... Mixed mode keeps the stronger gradient everywhere, i.e. the target's: nothing changes.
    assert np.array_equal(poisson.blend(target, flat, mask, "mixed"), target)


def test_bad_shapes_and_modes_are_refused():
    a = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="same region"):
        poisson.blend(a, np.zeros((10, 11, 3), np.uint8), np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="unknown Poisson mode"):
        poisson.blend(a, a, np.zeros((10, 10), bool), cast(Any, "screen"))  # not a Mode: the run-time check is tested


def _real_pair(shared_data, size=256):
    src = np.asarray(Image.open(shared_data / "mvtec_ad/bottle/test/broken_large/006.png").convert("RGB").resize((size, size)))
    m = Image.open(shared_data / "mvtec_ad/bottle/ground_truth/broken_large/006_mask.png").resize((size, size), Image.Resampling.NEAREST)
    mask = (np.asarray(m) > 127).astype(np.uint8) * 255
    dst = np.asarray(Image.open(shared_data / "mvtec_ad/capsule/test/good/001.png").convert("RGB").resize((size, size)))
    return src, dst, mask


def _cv2_effective_inputs(src, dst, mask, centre):
    """What cv2.seamlessClone solves with: its ROI, eroded mask and zero-filled source."""
    x, y, w, h = cv2.boundingRect(mask)
    left, top = centre[0] - w // 2, centre[1] - h // 2
    roi = mask[y : y + h, x : x + w]
    source = np.where(roi[..., None] > 0, src[y : y + h, x : x + w], 0).astype(np.uint8)
    # cv2 erodes the ROI inside the full mask, so outside the box counts as background.
    eroded = cv2.erode(np.pad(roi, 3), np.ones((3, 3), np.uint8), iterations=3)[3:-3, 3:-3] > 0
    return dst[top : top + h, left : left + w], source, eroded, (top, left)


@pytest.mark.parametrize("centre", [(128, 128), (110, 140)])
@pytest.mark.parametrize("mode,flag,rule", [("normal", cv2.NORMAL_CLONE, "perez"), ("mixed", cv2.MIXED_CLONE, "opencv")])
def test_agrees_with_cv2_seamlessclone_on_its_inputs(shared_data, centre, mode, flag, rule):
    src, dst, mask = _real_pair(shared_data)
    ref = cv2.seamlessClone(src, dst, mask.copy(), centre, flag)  # cv2 writes into its mask: give it a copy
    tgt, source, eroded, (top, left) = _cv2_effective_inputs(src, dst, mask, centre)
    ours = dst.copy()
    ours[top : top + tgt.shape[0], left : left + tgt.shape[1]] = poisson.blend(tgt, source, eroded, mode, rule)
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= TOLERANCE
    assert (ref != dst).any(axis=2).sum() > 10000  # the comparison covers a real, large injection


def test_perez_mixed_rule_differs_from_cv2_where_documented(shared_data):
    """Our default Mixed rule compares gradient magnitudes; cv2 compares |gx - gy| (see poisson's docstring)."""
    src, dst, mask = _real_pair(shared_data)
    ref = cv2.seamlessClone(src, dst, mask.copy(), (128, 128), cv2.MIXED_CLONE)
    tgt, source, eroded, (top, left) = _cv2_effective_inputs(src, dst, mask, (128, 128))
    ours = poisson.blend(tgt, source, eroded, "mixed", "perez")
    region = ref[top : top + tgt.shape[0], left : left + tgt.shape[1]]
    diff = np.abs(ours.astype(int) - region.astype(int))
    assert 0.2 < diff.mean() < 3 and diff.max() > TOLERANCE  # measured: mean 0.7, 99th percentile 11


@pytest.mark.parametrize("mode", ["normal", "mixed"])
def test_grown_region_solution_satisfies_the_equation_and_the_boundary(shared_data, mode):
    """CAI solves on the pattern's region grown to a fast transform size: still the exact Poisson solution there."""
    src, dst, mask = _real_pair(shared_data)
    ys, xs = np.nonzero(mask)
    top, left = ys.min() - 1, xs.min() - 1  # the pattern's box plus its one-pixel ring, as CAI cuts it
    h, w = ys.max() - top + 2, xs.max() - left + 2
    gt, gl, gh, gw = poisson.grow_region(top, left, h, w, 256, 256)
    assert gt <= top and gl <= left and gt + gh >= top + h and gl + gw >= left + w and (gh, gw) != (h, w)
    assert poisson.fast_side(gh) == gh and poisson.fast_side(gw) == gw
    tgt = dst[gt : gt + gh, gl : gl + gw]
    source = tgt.copy()  # outside the pattern's region the source is never read: fill it with the target
    source[top - gt : top - gt + h, left - gl : left - gl + w] = src[top : top + h, left : left + w]
    region_mask = mask[gt : gt + gh, gl : gl + gw] > 0
    u = poisson.solution(tgt, source, region_mask, mode).astype(np.float64)
    t = tgt.astype(np.float64)
    assert np.array_equal(u[0], t[0]) and np.array_equal(u[-1], t[-1])  # Dirichlet boundary: the target's ring
    assert np.array_equal(u[:, 0], t[:, 0]) and np.array_equal(u[:, -1], t[:, -1])
    lap = u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]
    vx, vy = poisson.guidance(t, source.astype(np.float64), region_mask, mode)
    div = vx[1:-1, 1:-1] - vx[1:-1, :-2] + vy[1:-1, 1:-1] - vy[:-2, 1:-1]
    assert np.abs(lap - div).max() < 0.05  # the 5-point equation, to float32 round-off
    assert np.abs(lap - div).max() < 0.05 * np.abs(div).max()
    assert (np.abs(u - t) > 2).sum() > 1000  # a real injection, not the target left alone


def test_fast_side_has_a_smooth_transform_length_and_grows_little():
    for n in range(3, 1100):
        side = poisson.fast_side(n)
        rest = 2 * (side - 1)
        for p in (2, 3, 5, 7, 11):
            while rest % p == 0:
                rest //= p
        assert rest == 1 and n <= side <= n + 23
    assert poisson.grow_region(0, 250, 256, 6, 256, 256) == (0, 250, 256, 6)  # no fast side fits: unchanged
    assert poisson.grow_region(242, 0, 14, 238, 256, 256) == (241, 0, 15, 241)  # grows, shifted to stay inside the image


def test_the_dst_binding_is_scipy_ffts_own_and_agrees_with_it_bit_for_bit():
    """The solver loads scipy's pocketfft binding from its file (no `import scipy.fft` at start-up): the very module and numbers of `scipy.fft.dstn`."""
    import subprocess
    import sys

    probe = ("import sys\nfrom daad.synthesis.cai import poisson\nassert poisson._DST is not None\n"
             "assert 'scipy.fft' not in sys.modules, sorted(m for m in sys.modules if m.startswith('scipy'))\n"
             "import scipy.fft._pocketfft.basic as basic\nassert basic.pfft is sys.modules[poisson._BINDING]\nprint('ok')")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
    from scipy import fft

    assert poisson._DST is not None
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (5, 7), (17, 20, 3), (64, 64, 3), (131, 97, 3), (250, 238, 3)]:
        for dtype in (np.float32, np.float64):
            x = rng.normal(size=shape).astype(dtype)
            assert np.array_equal(poisson._DST(x.copy(), 1, (0, 1), 0, None, 1, None), fft.dstn(x, type=1, axes=(0, 1)))
            assert np.array_equal(poisson._DST(x.copy(), 1, (0, 1), 2, None, 1, None), fft.idstn(x, type=1, axes=(0, 1)))
            assert np.allclose(poisson._dst1_reference(x.astype(np.float64)), fft.dstn(x.astype(np.float64), type=1, axes=(0, 1)))
