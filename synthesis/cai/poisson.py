"""Poisson image editing (Pérez et al. 2003) by an exact fast solver: CAI's injection step (paper Eq. 3).

What is solved. On a rectangular region (the pattern's bounding box plus a one-pixel
ring) the blended image u satisfies the discrete Poisson equation

    Δu = div v   on the interior,        u = target   on the ring (Dirichlet),

with the 5-point Laplacian Δ, forward-difference gradients and backward-difference
divergence (the discretisation OpenCV's `seamlessClone` uses, so the two can be
compared). The guidance field v is the source gradient inside the pattern mask and the
target gradient outside it (Normal mode); in Mixed mode a pixel inside the mask keeps,
per channel, whichever of the source and target gradient is stronger. "Stronger" is
Pérez's |∇s| > |∇t| by default (`mixed_rule="perez"`); `mixed_rule="opencv"` is the
comparison OpenCV's MIXED_CLONE makes, |sx - sy| > |tx - ty|, for users reproducing
results made with cv2 (the paper's era of code used it). It is not a magnitude: a
diagonal edge (sx == sy) never wins under it.

How. The Dirichlet Laplacian on a rectangle is diagonalised by the type-I discrete sine
transform, so the system is solved exactly (up to floating-point round-off) with two
2-D DSTs (`scipy.fft.dstn`) and a division by the eigenvalues: O(N log N), no
iteration, no Python loop. We solve for the correction d = u - target, which is zero on
the ring and whose right-hand side div(v - ∇target) is non-zero only where the guidance
differs from the target; this is the same equation, better conditioned. The right-hand
side is exact in float32 (sums of integer differences), so the transforms run in
float32: 2-3x faster than float64, with a round-off far below the final rounding to
uint8 (tested against a float64 solve).

Sizes. A DST-I of length L costs what an FFT of length 2 (L + 1) costs, which swings
with how that number factors (interior 238: 6.2 ms, 239: 1.2 ms, 3 channels). CAI
therefore solves on its region grown by a few pixels of target context to the next
side whose 2 (L + 1) has no prime factor above 11 (`fast_side`, `grow_region`: at most
+3 px below 64, +9 below 300, +23 below 1100). That is still the exact Poisson solution,
of the slightly larger region: outside the pattern the guidance is the target's own
gradient, so only the Dirichlet ring moves outwards (tests/test_poisson.py checks the
discrete equation and the ring on a grown region). The target's gradient is computed
once per injection (Normal mode: one gradient, of source - target, since v - ∇t =
∇(s - t) on the mask), and the eigenvalues are cached per size. Small regions (at most `SMALL_REGION` pixels:
CAI's patches up to ~36 px) are where cv2 was closest, because there each numpy call's fixed
cost (1-2.5 us) is most of the work: their right-hand side is computed in fewer calls
(`_rhs_small`: the same float32 values); the 16 x 16 patch of `benchmarks/poisson.py` went from 66 to 58
us (Normal) and from 93 to 73 us (Mixed) in one interleaved run against the previous
version (load 4; cv2: 205-215 us). Speed against
cv2.seamlessClone on the same regions: `python benchmarks/cai.py` (whole CAI) and
`python benchmarks/poisson.py` (the injection step alone, every patch size at 256, 512
and 1024; README, CAI speed).

Where OpenCV's `cv2.seamlessClone` differs (measured in tests/test_poisson.py):

* it erodes the mask by 3 iterations of a 3x3 kernel and zero-fills the source outside
  the mask (it only has the patch, we have the whole resized source image), so its
  cloned region is ~3 pixels thinner and thin patterns (scratches) can vanish;
* it uses the mask's bounding box itself as the region, so mask pixels on the box edge
  become boundary (we add a one-pixel ring around the box instead);
* its MIXED_CLONE compares |gx - gy| of source and target instead of the gradient
  magnitudes |∇| (see `mixed_rule`);
* it writes into the mask it is given (`bitwise_not` in place), so pass it a copy;
* it truncates its float32 solution to uint8 (we round ours).

Given cv2's effective inputs (cropped region, eroded mask, zero-filled source) our
solution equals cv2's to within 1 grey level at every pixel, in Normal mode and in Mixed
mode with `mixed_rule="opencv"` (the 1 is truncation vs rounding and float32): the
tested tolerance. Pérez's Mixed rule differs from cv2's by design (measured on a real
MVTec injection: mean 0.7, 99th percentile 11 grey levels inside the region).
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

Mode = Literal["normal", "mixed"]
MODES: tuple[str, ...] = ("normal", "mixed")
MixedRule = Literal["perez", "opencv"]
MIXED_RULES: tuple[str, ...] = ("perez", "opencv")


def _as_3d(a: np.ndarray) -> np.ndarray:
    return a[..., None] if a.ndim == 2 else a


def gradients(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences (gx, gy) of an (h, w, c) array; zero in the last column/row."""
    gx = np.zeros_like(f)
    gy = np.zeros_like(f)
    gx[:, :-1] = f[:, 1:] - f[:, :-1]
    gy[:-1] = f[1:] - f[:-1]
    return gx, gy


def _check(mode: str, mixed_rule: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown Poisson mode {mode!r}; expected one of {', '.join(MODES)}")
    if mixed_rule not in MIXED_RULES:
        raise ValueError(f"unknown mixed rule {mixed_rule!r}; expected one of {', '.join(MIXED_RULES)}")


def _use_source(
    tx: np.ndarray, ty: np.ndarray, sx: np.ndarray, sy: np.ndarray, mask: np.ndarray, mode: Mode, mixed_rule: MixedRule
) -> np.ndarray:
    """Where the guidance is the source gradient: the mask (Normal), or where the source's is stronger (Mixed)."""
    _check(mode, mixed_rule)
    use = mask[..., None].astype(bool)
    if mode == "mixed":
        if mixed_rule == "perez":
            use = use & (sx * sx + sy * sy > tx * tx + ty * ty)
        else:
            use = use & (np.abs(sx - sy) > np.abs(tx - ty))
    return use


def guidance(
    target: np.ndarray, source: np.ndarray, mask: np.ndarray, mode: Mode, mixed_rule: MixedRule = "perez"
) -> tuple[np.ndarray, np.ndarray]:
    """The guidance field v = (vx, vy) of Normal or Mixed mode (shape (h, w, c))."""
    tx, ty = gradients(target)
    sx, sy = gradients(source)
    use = _use_source(tx, ty, sx, sy, mask, mode, mixed_rule)
    return np.where(use, sx, tx), np.where(use, sy, ty)


@functools.lru_cache(maxsize=4096)
def _axis_eigenvalues(n: int, c: int = 1) -> np.ndarray:
    """Eigenvalues 2 cos(pi k / (n + 1)) - 2, k = 1 .. n, of the 1-D Dirichlet Laplacian, float64, each repeated `c` times."""
    values = 2.0 * np.cos(np.pi * np.arange(1, n + 1) / (n + 1)) - 2.0
    out = np.repeat(values, c) if c > 1 else values
    out.flags.writeable = False  # shared by every caller through the cache
    return out


class _EigenCache:
    """The eigenvalues per (n, m, channels or 0 for 2-D, dtype), one value per coefficient, up to `limit` bytes (least recently used out).

    Full (n, m, c) arrays rather than (n, m, 1) ones broadcast over the channels: numpy's
    inner loop over a broadcast last axis of 3 made the division 5-6x slower (measured:
    50.7 against 9.5 us on 131 x 131 x 3, 3.0 against 0.8 on 17 x 17 x 3); the values are
    the same float32 (or float64) numbers, so the quotients are too. Bounded by bytes: one
    1024 px region's array is ~12 MB.

    A miss is one `np.add` of the two axes' float64 eigenvalues (the column axis already
    repeated per channel) written straight into the float32 array: the values of
    `(ly[:, None] + lx).astype(float32)` repeated per channel, without the float64 plane
    and the repeat. A fresh process misses on every new region shape (855 of 1011 lookups
    in `benchmarks/cai.py --cli 100`: 0.08-0.09 CPU s of the CAI thread, 0.14 s before);
    measured against that form, best of 5: 3.5 against 14.4 us on 17 x 17 x 3, 10.6 against
    21.2 on 40 x 43 x 3, 328 against 826 on 263 x 263 x 3.
    """

    def __init__(self, limit: int = 64 << 20):
        self.limit = limit
        self._arrays: OrderedDict[tuple[int, int, int, str], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._last = np.zeros((0, 0))  # the array `like` handed out last

    def like(self, coeffs: np.ndarray) -> np.ndarray:
        """The eigenvalues for an array of coefficients (2-D, or 3-D with channels last), its shape and dtype.

        The last array handed out is tried first: its shape and dtype are its cache key (n,
        m and c, or 2-D for c = 0), so equal ones mean the same values, with no key to build
        and no lock (CAI's regions repeat a shape often; measured 2.4-3.1 against 5.3-6.2 us
        per lookup and division on 17 x 17 x 3, best of 7, load ~3). One reference swapped
        whole: safe to read from other threads.
        """
        last = self._last
        if last.shape != coeffs.shape or last.dtype != coeffs.dtype:
            last = self._last = self(coeffs.shape[0], coeffs.shape[1], coeffs.shape[2] if coeffs.ndim == 3 else 0, coeffs.dtype)
        return last

    def __call__(self, n: int, m: int, c: int, dtype: np.dtype) -> np.ndarray:
        key = (n, m, c, np.dtype(dtype).str)
        with self._lock:  # (threads may share it, as they shared the lru_cache it replaced)
            hit = self._arrays.get(key)
            if hit is not None:
                self._arrays.move_to_end(key)
                return hit
        per = max(c, 1)  # values per column: c = 0 is a 2-D array
        out = np.empty((n, m, c) if c else (n, m), dtype)
        np.add(_axis_eigenvalues(n)[:, None], _axis_eigenvalues(m, per), out=out.reshape(n, m * per))
        with self._lock:
            if key not in self._arrays:
                self._arrays[key] = out
                self._bytes += out.nbytes
            while self._bytes > self.limit and len(self._arrays) > 1:
                self._bytes -= self._arrays.popitem(last=False)[1].nbytes
        return out


_eigenvalues = _EigenCache()


def _divergence(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Backward-difference divergence (the adjoint of the forward gradient) on the interior."""
    return dx[1:-1, 1:-1] - dx[1:-1, :-2] + dy[1:-1, 1:-1] - dy[:-2, 1:-1]


_BINDING = "scipy.fft._pocketfft.pypocketfft"


def _dst1_reference(x: np.ndarray) -> np.ndarray:
    """The unscaled DST-I of `x` over its first two axes, from its definition: y_j = 2 sum_k x_k sin(pi (j+1)(k+1) / (n+1))."""
    for axis in (0, 1):  # products and sums, not tensordot: a BLAS call would start OpenBLAS's spinning threads
        n = x.shape[axis]
        k = np.arange(1, n + 1)
        basis = 2 * np.sin(np.pi * np.outer(k, k) / (n + 1))
        moved = np.moveaxis(x, axis, 0)
        x = np.moveaxis((basis.reshape(n, n, *([1] * (moved.ndim - 1))) * moved[None]).sum(axis=1), 0, axis)
    return x


def _pocketfft_dst():
    """scipy's own pocketfft binding, loaded without importing `scipy.fft`, when it computes the DST-I (checked here); else None.

    Why the binding: `scipy.fft.dstn` spends ~13 us per call on dispatch and argument
    checks before the same C transform (measured: 20 against 6.7 us on a 17 x 20 x 3
    float32 array), which is most of a small region's solve; every DST here is 2-D, float32
    or float64, contiguous and owned, so none of those checks can matter. Why not through
    `scipy.fft`: importing it loads scipy's array-API layer, numpy.testing, numpy.f2py and
    scipy.special, 0.12-0.16 s of a fresh `daad synthesize` process's 0.37 s start-up on
    this machine (`python -X importtime`), for one C function; loading the extension from
    its file takes ~1 ms. It is registered under its own name, so a later `import
    scipy.fft` uses this very module. The binding is private: a scipy where it is missing,
    has another signature or gives numbers other than the definition's uses `scipy.fft.dstn`
    (tests/test_poisson.py checks that the two agree bit for bit on the installed scipy).
    """
    try:
        binding = sys.modules.get(_BINDING)
        if binding is None:
            spec = importlib.util.find_spec("scipy")  # a top-level package: found, not imported
            folder = Path(next(iter(spec.submodule_search_locations or []))) / "fft" / "_pocketfft"  # type: ignore[union-attr]
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                if (folder / f"pypocketfft{suffix}").is_file():
                    loader = importlib.machinery.ExtensionFileLoader(_BINDING, str(folder / f"pypocketfft{suffix}"))
                    binding_spec = importlib.util.spec_from_file_location(_BINDING, loader.path, loader=loader)
                    binding = importlib.util.module_from_spec(binding_spec)  # type: ignore[arg-type]
                    loader.exec_module(binding)
                    sys.modules[_BINDING] = binding
                    break
        x = np.arange(60, dtype=np.float64).reshape(4, 5, 3) % 7 - 3
        forward = binding.dst(x.copy(), 1, (0, 1), 0, None, 1, None)  # type: ignore[union-attr]
        inverse = binding.dst(forward.copy(), 1, (0, 1), 2, None, 1, None)  # type: ignore[union-attr]
        if np.allclose(forward, _dst1_reference(x), rtol=0, atol=1e-9) and np.allclose(inverse, x, rtol=0, atol=1e-12):
            return binding.dst  # type: ignore[union-attr]
    except Exception:  # a scipy without it, or with another signature
        pass
    return None


_DST = _pocketfft_dst()


def _divide_by_eigenvalues(coeffs: np.ndarray) -> None:
    """coeffs /= the eigenvalue of each coefficient, in place (2-D, or 3-D with channels last)."""
    coeffs /= _eigenvalues.like(coeffs)


def _correction(rhs: np.ndarray) -> np.ndarray:
    """d with Δd = rhs on the interior and d = 0 on the ring: two DST-Is and a division by the eigenvalues.

    `rhs` is consumed: the transforms work in place (`overwrite_x`), the same values
    25-30% faster than with pocketfft's copies (measured on 17 .. 131 px squares x 3).
    """
    if _DST is not None and rhs.dtype in (np.float32, np.float64) and rhs.flags.c_contiguous:
        coeffs = _DST(rhs, 1, (0, 1), 0, rhs, 1, None)  # forward, unscaled (norm "backward"), in place
        _divide_by_eigenvalues(coeffs)
        return _DST(coeffs, 1, (0, 1), 2, coeffs, 1, None)  # inverse: scaled by 1 / (2 (n + 1)) per axis
    from scipy import fft

    coeffs = np.asarray(fft.dstn(rhs, type=1, axes=(0, 1), overwrite_x=True))
    _divide_by_eigenvalues(coeffs)
    return np.asarray(fft.idstn(coeffs, type=1, axes=(0, 1), overwrite_x=True))


def solve(target: np.ndarray, vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Solve Δu = div(vx, vy) inside the rectangle with u = target on its outer ring.

    Args:
        target: (h, w, c) float array; only its outer one-pixel ring is used as boundary
            (and its interior as the reference the correction is added to).
        vx, vy: guidance field, same shape.
    Returns:
        u, in the dtype of `target` (float32 or float64); u equals `target` on the ring.
    """
    t = target if target.dtype in (np.float32, np.float64) else target.astype(np.float64)
    h, w = t.shape[:2]
    u = t.copy()
    if h < 3 or w < 3:
        return u  # no interior pixel: everything is boundary
    tx, ty = gradients(t)
    rhs = _divergence(vx - tx, vy - ty)  # div(v - ∇t): the equation for d = u - target
    if rhs.any():
        u[1:-1, 1:-1] += _correction(rhs)
    return u


def _smooth(n: int) -> bool:
    """No prime factor above 11: the radices pocketfft has dedicated passes for."""
    for p in (2, 3, 5, 7, 11):
        while n % p == 0:
            n //= p
    return n == 1


@functools.lru_cache(maxsize=4096)
def fast_side(n: int) -> int:
    """The smallest side >= n whose DST-I is fast: 2 (interior + 1) = 2 (side - 1) has no prime factor above 11.

    pocketfft computes a DST-I of length L through an FFT of length 2 (L + 1), whose cost
    follows how that number factors, not its size (measured on a 3-channel float32
    square: interior 238 -> 6.2 ms, 239 -> 1.2 ms; 11-smooth lengths cost about what
    powers of two cost). Sides up to 1100 grow by 3 pixels at most.
    """
    side = max(n, 3)
    while not _smooth(2 * (side - 1)):
        side += 1
    return side if n >= 3 else n


def _grow_axis(start: int, size: int, limit: int) -> tuple[int, int]:
    """(start, size) of a fast side containing [start, start + size) inside [0, limit); unchanged when none fits."""
    side = fast_side(size)
    if side > limit:
        return start, size
    begin = min(max(0, start - (side - size) // 2), limit - side)
    return begin, side


def grow_region(top: int, left: int, h: int, w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """The region (top, left, h, w) grown by a few pixels of target context to sides with a fast transform.

    The Poisson solution on the grown region is the exact solution of its own (slightly
    larger) Dirichlet problem: the guidance outside the pattern is the target's gradient,
    so the extra pixels only move the boundary a few pixels further out.
    """
    t, gh = _grow_axis(top, h, height)
    le, gw = _grow_axis(left, w, width)
    return t, le, gh, gw


def _rhs(target: np.ndarray, source: np.ndarray, mask: np.ndarray, mode: Mode, mixed_rule: MixedRule) -> np.ndarray:
    """div(v - ∇t) on the interior, (h - 2, w - 2, c) float32: the right-hand side of the equation for d = u - target.

    v - ∇t is the source-minus-target gradient where the source guides and zero elsewhere.
    Every value is a sum of integer differences (|x| <= 4 * 255), exact in float32 in any
    order, so how it is computed cannot change a pixel. Normal mode (v - ∇t = ∇(s - t) on
    the mask) computes only the forward differences the interior's divergence reads, masked
    by multiplication (a -0.0 it leaves cannot change a sum): 8 array operations instead of
    the 14 of building both padded gradient fields.

    The arrays are worked on as (h, w * c) planes, a pixel's neighbour c elements away, with
    the mask repeated per channel once: a (h, w, 1) mask broadcast over a last axis of 3
    made numpy run its inner loop 3 elements at a time. uint8 inputs (CAI's) are differenced
    in int16 (|x| <= 4 * 510 fits: exact, so the same float32 rhs) instead of float32, half
    the bytes. Measured against the (h, w, c) float32 form on random regions x 3: 113
    against 311 us at 133 x 136, 490 against 2047 us at 265 x 268, 30 against 40 us at 40 x
    43, the same 23 us at 19 x 22 (numpy's per-call cost).
    """
    h, w, c = target.shape
    exact_int = target.dtype == source.dtype == np.uint8
    small = np.int16 if exact_int else np.float32
    d = np.subtract(source, target, dtype=small).reshape(h, w * c)
    m = _repeated_mask(mask, c).reshape(h, w * c)
    if mode == "normal":
        gx = d[1:-1, c:] - d[1:-1, :-c]  # dx on the interior's rows, columns 0 .. w-2
        gx *= m[1:-1, :-c]
        gy = d[1:, c:-c] - d[:-1, c:-c]  # dy on rows 0 .. h-2, the interior's columns
        gy *= m[:-1, c:-c]
        rhs = gx[:, c:] - gx[:, :-c]
        rhs += gy[1:]
        rhs -= gy[:-1]
        return rhs.astype(np.float32, copy=False).reshape(h - 2, w - 2, c)
    # Mixed: the interior's divergence reads v - ∇t only at pixels (0 .. h-2, 0 .. w-2), where
    # both forward differences exist; there v - ∇t is ∇(s - t) where the source guides and 0
    # elsewhere, so only the gradient of D = s - t is taken. The two tests need no gradient
    # of s or t of their own: Pérez's |∇s|^2 > |∇t|^2 is (sx - tx)(sx + tx) + (sy - ty)(sy + ty)
    # > 0, i.e. ∇D · ∇(s + t) > 0; OpenCV's |sx - sy| > |tx - ty| compares s(y, x+1) - s(y+1, x)
    # with the same of t (sx - sy, the two forward differences from one pixel). uint8 inputs
    # are differenced in int16 (|x| <= 510: exact) and the products summed in int32
    # (<= 2 * 510^2: exactly the comparison of the squares; float64 for float inputs). The
    # choice is applied by multiplying with it (np.where was a third of this path). Measured
    # against float32 gradient fields of s and t (the version before), the same rhs: 0.91
    # against 1.23 ms (Pérez) and 0.76 against 1.13 ms (OpenCV's rule) on 265 x 265 x 3,
    # 0.33 against 0.42 and 0.26 against 0.41 ms on 163 x 169 x 3, even on 19 x 19 x 3.
    dx = d[:-1, c:] - d[:-1, :-c]  # sx - tx
    dy = d[1:, :-c] - d[:-1, :-c]  # sy - ty
    if mixed_rule == "perez":  # |∇s|^2 - |∇t|^2 = ∇(s - t) · ∇(s + t) > 0
        wide = np.int32 if exact_int else np.float64
        both = np.add(source, target, dtype=small).reshape(h, w * c)
        gain = np.multiply(dx, both[:-1, c:] - both[:-1, :-c], dtype=wide)
        gain += np.multiply(dy, both[1:, :-c] - both[:-1, :-c], dtype=wide)
        use = gain > 0
    else:  # OpenCV's |sx - sy| > |tx - ty|, with sx - sy = s(y, x+1) - s(y+1, x)
        s2, t2 = source.reshape(h, w * c), target.reshape(h, w * c)
        s_cross = np.subtract(s2[:-1, c:], s2[1:, :-c], dtype=small)
        t_cross = np.subtract(t2[:-1, c:], t2[1:, :-c], dtype=small)
        use = np.greater(np.abs(s_cross, out=s_cross), np.abs(t_cross, out=t_cross))
    use &= m[:-1, :-c].view(bool)
    dx *= use
    dy *= use
    rhs = dx[1:, c:] - dx[1:, :-c]
    rhs += dy[1:, c:]
    rhs -= dy[:-1, c:]
    return rhs.astype(np.float32, copy=False).reshape(h - 2, w - 2, c)


SMALL_REGION = 40 * 40
"""Regions of at most this many pixels take `_rhs_small` (see there for the measurements)."""

_F32 = np.dtype(np.float32)


def _repeated_mask(mask: np.ndarray, c: int) -> np.ndarray:
    """The mask as 0/1 uint8, each pixel repeated per channel: (h, w * c) values in a C-contiguous buffer."""
    m = (mask if mask.dtype == bool else mask != 0).view(np.uint8)
    if c == 3:  # cv2's GRAY2RGB is np.repeat's three copies, cheaper
        return cv2.cvtColor(m, cv2.COLOR_GRAY2RGB)
    return np.repeat(m, c, axis=1) if c > 1 else np.ascontiguousarray(m)


def _rhs_small(target: np.ndarray, source: np.ndarray, mask: np.ndarray, mode: Mode, mixed_rule: MixedRule) -> np.ndarray:
    """`_rhs` for small uint8 regions in fewer numpy calls: the same float32 values, C-contiguous (h - 2, w - 2, c).

    On a region of a few hundred pixels each numpy call costs 1-2.5 us whatever it
    computes, so this form makes fewer calls: everything is float32 (every value is an
    integer below 2^24 in magnitude, exact in any order, so the values are `_rhs`'s), and
    each step works on the flat buffer at once through stacked views (`np.ndarray` over the
    buffer with explicit strides, 0.5 us; `as_strided` costs ~10x that). With k a flat
    index, c and w c the neighbours' offsets:

    * G[0][k] = D[k + c] - D[k] and G[1][k] = D[k + wc] - D[k] in one call for D = s - t
      (and for S = s + t in the same call in Mixed mode). At a pixel of the last column or
      row these wrap into the next row; the interior's divergence never reads them there.
    * Mixed, Pérez: |∇s|^2 > |∇t|^2 is ∇D · ∇S > 0. OpenCV: |sx - sy| > |tx - ty|; a =
      Sx - Sy and b = Dx - Dy are (sx - sy) + (tx - ty) and (sx - sy) - (tx - ty), so the
      test |a + b| > |a - b| is a b > 0. Each product is at most 510^2, a sum of two at
      most 2 * 510^2 < 2^24: exact.
    * The masked G, and the divergence G0[k] - G0[k - c] + G1[k] - G1[k - wc] in two calls.

    Measured against `_rhs` on random 19 x 19 x 3 regions (best of 5, load ~3): 18 against
    21 us (Normal), 28 against 60 us (Mixed, Pérez), 32 against 40 us (Mixed, OpenCV); 35
    x 35: 28/28, 39/56, 37/42 us; at 67 x 67 it is slower in Normal mode (43 against 40
    us) and in OpenCV's rule, and stacked views of 100 px regions fell off numpy's fast
    loops in an earlier form (10x slower): hence `SMALL_REGION`.
    """
    h, w, c = target.shape
    wc = w * c
    n = h * wc
    span = n - wc  # flat indices k with both k + c and k + wc inside the region
    start = wc + c  # the first interior pixel
    count = (h - 3) * wc + (w - 2) * c  # from the first interior element to the last
    m = _repeated_mask(mask, c)
    sf, tf = source.astype(_F32), target.astype(_F32)  # cheaper than a ufunc's dtype= (1 against 2.5 us each)
    if mode == "normal":
        d = np.subtract(sf, tf)
        g = np.ndarray((2, span), _F32, d, 4 * c, (4 * (wc - c), 4)) - np.ndarray((2, span), _F32, d, 0, (0, 4))
        use = m
    else:
        ds = np.empty((2, h, w, c), _F32)  # D and S, one buffer: one gradient call for both
        np.subtract(sf, tf, out=ds[0])
        np.add(sf, tf, out=ds[1])
        g4 = np.ndarray((2, 2, span), _F32, ds, 4 * c, (4 * n, 4 * (wc - c), 4)) - np.ndarray((2, 2, span), _F32, ds, 0, (4 * n, 0, 4))
        g = g4[0]
        if mixed_rule == "perez":
            p = g * g4[1]
            use = np.add(p[0], p[1]) > 0
        else:
            q = g4[:, 0] - g4[:, 1]
            use = np.multiply(q[0], q[1]) > 0
        np.logical_and(use, np.ndarray((span,), np.bool_, m), out=use)
    np.multiply(g, np.ndarray((2, span), np.bool_, use, 0, (0, 1)), out=g)
    e = g[:, start : start + count] - np.ndarray((2, count), _F32, g, 4 * (start - c), (4 * (span - wc + c), 4))
    rows = (h - 2, (w - 2) * c)
    rhs = np.add(np.ndarray(rows, _F32, e, 0, (4 * wc, 4)), np.ndarray(rows, _F32, e, 4 * count, (4 * wc, 4)))
    return rhs.reshape(h - 2, w - 2, c)


def _check_region(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> None:
    if target.shape != source.shape or target.shape[:2] != mask.shape:
        raise ValueError(f"target {target.shape}, source {source.shape} and mask {mask.shape} must cover the same region")


def solution(
    target: np.ndarray, source: np.ndarray, mask: np.ndarray, mode: Mode = "normal", mixed_rule: MixedRule = "perez"
) -> np.ndarray:
    """The float32 Poisson solution u (h, w, c) of `blend` before rounding: Δu = div v inside, u = target on the ring."""
    _check_region(target, source, mask)
    _check(mode, mixed_rule)
    t = _as_3d(target).astype(np.float32)
    h, w = mask.shape
    if h >= 3 and w >= 3:
        rhs = _rhs(t, _as_3d(source), mask, mode, mixed_rule)
        if rhs.any():
            t[1:-1, 1:-1] += _correction(rhs)
    return t


def blend(
    target: np.ndarray, source: np.ndarray, mask: np.ndarray, mode: Mode = "normal", mixed_rule: MixedRule = "perez"
) -> np.ndarray:
    """Poisson-blend `source` into `target` over one rectangular region.

    Args:
        target, source: (h, w) or (h, w, c) arrays of the same shape (any real dtype): the
            region of the target image and the aligned region of the source image. The
            outer one-pixel ring of `target` is the Dirichlet boundary.
        mask: (h, w) bool, where the source pattern is; pixels on the ring are ignored.
        mode: "normal" (source gradients inside the mask) or "mixed" (the stronger of
            source and target gradient, per pixel and channel).
        mixed_rule: what "stronger" means in Mixed mode (see the module docstring).
    Returns:
        The blended region as uint8, same shape as `target` (rounded, clipped to 0..255).
    """
    h, w = mask.shape
    if target.dtype != np.uint8 or h < 3 or w < 3:
        return np.clip(np.rint(solution(target, source, mask, mode, mixed_rule)), 0, 255).astype(np.uint8).reshape(target.shape)
    _check_region(target, source, mask)
    _check(mode, mixed_rule)
    t3 = _as_3d(target)
    out = t3.copy()
    # The ring is the target itself: only the interior is solved and rounded (what `solution` +
    # rint + clip gives). No test for an all-zero rhs first: its correction is exactly zero
    # (the transforms of zeros are zeros), so the rare no-op costs a solve and every other
    # injection saves a pass over rhs. The target is added to the correction's own buffer
    # (float32 + uint8: the same sum as float32(target) + correction); after clipping at 0,
    # cv2.convertScaleAbs is rint, the clip at 255 and the cast in one call, written into
    # `out`'s interior (round half to even like np.rint: checked on every multiple of 1/8
    # from 0 to 300 and on random values; 60 against 87 us on 131 x 131 x 3, 131 against
    # 213 on 200 x 200 x 3).
    s3 = _as_3d(source)
    small = h * w <= SMALL_REGION and s3.dtype == np.uint8
    inner = _correction((_rhs_small if small else _rhs)(t3, s3, mask, mode, mixed_rule))
    inner += t3[1:-1, 1:-1]
    dst = out[1:-1, 1:-1]
    written = cv2.convertScaleAbs(np.maximum(inner, 0, out=inner), dst)
    if written is not dst:  # cv2 hands back the array it was given when it wrote into it
        dst[...] = written
    return out.reshape(target.shape)
