"""NSA, Natural Synthetic Anomalies (Schlueter, Tan, Hou, Kainz, ECCV 2022): Poisson-blended patches of other normal images.

A rectangular patch of another normal image of the same domain (never the target itself)
is resized by a factor in [0.7, 1.3] (NSA's resize augmentation) and Poisson-blended at a
random location of the target, in Normal (NSA-N) or Mixed (NSA-M) mode, by the same
exact solver CAI uses (`daad.synthesis.cai.poisson`). Patch sides are 5-40 % of the image
side each (NSA's `width_bounds_pct` for objects is 3-40 %; 5 % keeps a patch at least
3 px wide at 64 px). NSA labels pixels by a continuous intensity difference; the Folder
layout needs binary masks, so the mask is the pixels the blend changed by more than 4
grey levels (CAI's T), inside the patch. Departure: NSA trains with several patches per
image and a background filter; one patch per output here, like the other methods.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from daad.synthesis.cai import poisson
from daad.synthesis.cai.cai import resize_target

from .base import Synthesizer, as_rgb

MODES = ("normal", "mixed")
VISIBLE = 4


class NSA(Synthesizer):
    """NSA pseudo anomalies from `sources`, a list of (key, image) normal images of the target domain."""

    def __init__(self, sources: Sequence[tuple[str, np.ndarray]], *, mode: str = "normal", per_image: int = 10,
                 size: int | None = 256, seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"unknown NSA mode {mode!r}; expected one of {', '.join(MODES)}")
        if len(sources) < 2:
            raise ValueError("NSA needs at least two normal images (patches come from images other than the target)")
        super().__init__(mode=mode, per_image=per_image, size=size, seed=seed)
        self.name = "nsa-n" if mode == "normal" else "nsa-m"
        self.sources = [(k, as_rgb(resize_target(im, size))) for k, im in sources]

    def _one(self, image: np.ndarray, key: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        rgb = as_rgb(image)
        H, W = rgb.shape[:2]
        others = [i for i, (k, _) in enumerate(self.sources) if k != key]
        j = others[int(rng.integers(len(others)))]
        src_key, src = self.sources[j]
        sh, sw = src.shape[:2]
        h, w = int(round(rng.uniform(0.05, 0.4) * sh)), int(round(rng.uniform(0.05, 0.4) * sw))
        y0, x0 = int(rng.integers(0, sh - h + 1)), int(rng.integers(0, sw - w + 1))
        f = float(rng.uniform(0.7, 1.3))
        ph, pw = max(3, int(round(h * f))), max(3, int(round(w * f)))
        if ph + 2 >= H or pw + 2 >= W:
            return None
        patch = cv2.resize(src[y0 : y0 + h, x0 : x0 + w], (pw, ph), interpolation=cv2.INTER_LINEAR)
        top, left = int(rng.integers(0, H - ph - 1)), int(rng.integers(0, W - pw - 1))
        region = (slice(top, top + ph + 2), slice(left, left + pw + 2))
        tgt = rgb[region]
        source = tgt.copy()
        source[1:-1, 1:-1] = patch
        inner = np.zeros(tgt.shape[:2], bool)
        inner[1:-1, 1:-1] = True
        blended = poisson.blend(tgt, source, inner, self.mode)  # type: ignore[arg-type]
        out = rgb.copy()
        out[region] = blended
        changed = (np.abs(blended.astype(np.int16) - tgt).max(axis=2) > VISIBLE) & inner
        mask = np.zeros((H, W), np.uint8)
        mask[region] = changed.astype(np.uint8) * 255
        if image.ndim == 2:
            out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        return out, mask, {"source": src_key, "source_box": [y0, x0, h, w], "resize": round(f, 4), "box": [top, left, ph + 2, pw + 2]}
