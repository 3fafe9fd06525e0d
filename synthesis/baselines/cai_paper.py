"""CAI as the authors' released code does it (github.com/HU13-SVG/Cross-domain-Anomaly-Injection, CAI/).

Their `multiprocess_of_CAI.py` differs from the paper's text (and from daad's `CAI`
defaults) in four places, reproduced here so results can be set beside theirs:

1. Injection by `cv2.seamlessClone` (NORMAL_CLONE / MIXED_CLONE), not an exact solver,
   over the pattern mask after a morphological close and a dilation with an 8x8 kernel
   (`dilate_image`), so the Poisson domain holds a band of the source's context.
2. The mask of Eq. 4 is |I_sa - I_n| > 7 followed by a 7x7 median blur
   (`difference_image`), not daad's T = 4 without blur.
3. R' is rounded to one decimal when drawn (`round(np.random.uniform(0.7, 1), 1)`).
4. (Not reproduced) they draw a pattern by `random.randint` over a sorted file list
   and seed Python's `random` with the target's number; daad's per-target generator
   stands in (same distribution, reproducible across processes).

Departures: their difference is taken on the grey ('L') images; daad's CAI takes the
max over channels, kept here (the same on grey targets). The injection region is the
pattern's box plus a ring of 5 px (CAI's `ring`): an 8x8 dilation reaches 4 px out, so it is never clipped.
The 7x7 median is scaled with the working size (their code runs at 256 px).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from daad.synthesis.cai.cai import CAI

KERNEL = 8  # pixels at any size: it offsets cv2's own 3 x (3x3) erosion of the mask inside seamlessClone
THRESHOLD = 7
MEDIAN = 7  # at 256 px
DECIMALS = 1
PAD = 8


class SeamlessClone:
    """The authors' injection on one region: close + dilate the mask (k x k, 8 at 256 px), then cv2.seamlessClone."""

    def __init__(self, kernel: int = KERNEL):
        self.kernel = np.ones((kernel, kernel), np.uint8)

    def __call__(self, target: np.ndarray, source: np.ndarray, mask: np.ndarray, mode: str = "normal",
                 mixed_rule: str = "opencv") -> np.ndarray:
        return seamless_clone_blend(target, source, mask, mode, self.kernel)


def seamless_clone_blend(target: np.ndarray, source: np.ndarray, mask: np.ndarray, mode: str, kernel: np.ndarray) -> np.ndarray:
    m = cv2.dilate(cv2.morphologyEx(mask.astype(np.uint8) * 255, cv2.MORPH_CLOSE, kernel), kernel)
    m[0, :] = m[-1, :] = 0
    m[:, 0] = m[:, -1] = 0
    if not m.any():
        return target.copy()
    grey = target.ndim == 2
    t3 = np.repeat(target[..., None], 3, axis=2) if grey else np.ascontiguousarray(target[..., :3])
    s3 = np.repeat(source[..., None], 3, axis=2) if grey else np.ascontiguousarray(source[..., :3])
    # cv2 asserts on regions a few pixels thin (the authors pad the source to > 8 px for
    # the same reason); a reflected border outside the mask changes nothing inside it.
    t3, s3 = (cv2.copyMakeBorder(a, PAD, PAD, PAD, PAD, cv2.BORDER_REFLECT) for a in (t3, s3))
    m = cv2.copyMakeBorder(m, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=0)
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    centre = (int(cols[0] + (cols[-1] - cols[0] + 1) // 2), int(rows[0] + (rows[-1] - rows[0] + 1) // 2))
    flag = cv2.NORMAL_CLONE if mode == "normal" else cv2.MIXED_CLONE
    try:
        out = cv2.seamlessClone(s3, t3, m, centre, flag)[PAD:-PAD, PAD:-PAD]
    except cv2.error:  # still too thin for cv2: no change, so CAI redraws (an invisible injection)
        return target.copy()
    return cv2.cvtColor(out, cv2.COLOR_RGB2GRAY) if grey else out


def scaled(k: int, size: int | None, odd: bool = False) -> int:
    """A kernel side of the authors' 256 px code at `size` px (odd when a median needs it)."""
    n = max(2, int(round(k * (size or 256) / 256)))
    return (n | 1) if odd else n


def paper_code_cai(patterns: Any, *, mode: str = "normal", size: int | None = 256, **options: Any) -> CAI:
    """A `CAI` with the authors' code's choices (blender, T = 7 + median 7, R' to one decimal); other options pass through.

    The authors work at 256 px; at other sizes the 7x7 median scales with the image side,
    so a crack that survives it at 256 px survives it at 64 px too (unscaled at 64 px it
    erased thin cracks: Mixed mode gave up on a Magnetic Tile target after 2000 draws).
    The 8x8 close/dilate does not scale: it offsets cv2's erosion, which is in pixels.
    """
    return CAI(patterns, mode=mode, size=size, blender=SeamlessClone(KERNEL), threshold=THRESHOLD,
               median=scaled(MEDIAN, size, odd=True), decimals=DECIMALS, ring=KERNEL // 2 + 1, **options)
