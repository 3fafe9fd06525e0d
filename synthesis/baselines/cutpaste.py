"""CutPaste (Li, Sohn, Yoon, Pfister, CVPR 2021): cut a patch of the target and paste it elsewhere on it.

"normal": a rectangle of 2-15 % of the image area with aspect ratio in [0.3, 3.3]
(log-uniform), as in the paper. "scar": a thin rectangle 2-16 px wide and 10-25 px long
at 256 px, rotated by [-45, 45] degrees, as in the paper (scaled with the working size).
Both get the paper's colour jitter (brightness, contrast, saturation 0.1, here as
per-channel gain and offset). Departures: CutPaste is an image-level self-supervision and
has no masks; the paste region is the mask here, as the evaluation protocol needs (and as
AnomalyDiffusion's protocol does); a draw that changes no pixel by more than 4 grey
levels (CAI's T) is redrawn, since an invisible anomaly with a mask teaches nothing.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .base import Synthesizer, as_rgb

MODES = ("normal", "scar")
VISIBLE = 4  # grey levels, as CAI's T


def _jitter(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gain = rng.uniform(0.9, 1.1, size=(1, 1, patch.shape[2]))
    offset = rng.uniform(-0.1, 0.1, size=(1, 1, patch.shape[2])) * 255
    return np.clip(patch.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


class CutPaste(Synthesizer):
    """CutPaste pseudo anomalies; `mode` "normal" (CutPaste) or "scar" (CutPaste-scar)."""

    def __init__(self, *, mode: str = "normal", per_image: int = 10, size: int | None = 256, seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"unknown CutPaste mode {mode!r}; expected one of {', '.join(MODES)}")
        super().__init__(mode=mode, per_image=per_image, size=size, seed=seed)
        self.name = "cutpaste" if mode == "normal" else "cutpaste-scar"

    def _one(self, image: np.ndarray, key: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        rgb = as_rgb(image)
        H, W = rgb.shape[:2]
        if self.mode == "normal":
            area = rng.uniform(0.02, 0.15) * H * W
            aspect = float(np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3))))
            h, w = int(round(np.sqrt(area / aspect))), int(round(np.sqrt(area * aspect)))
            angle = 0.0
        else:
            k = H / 256
            w, h = max(1, int(round(rng.uniform(2, 16) * k))), max(2, int(round(rng.uniform(10, 25) * k)))
            angle = float(rng.uniform(-45, 45))
        if h < 2 or w < 1 or h >= H or w >= W:
            return None
        y0, x0 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        patch = _jitter(rgb[y0 : y0 + h, x0 : x0 + w], rng)
        pmask = np.full((h, w), 255, np.uint8)
        if angle:
            side = int(np.ceil(np.hypot(h, w))) + 2
            canvas = np.zeros((side, side, 3), np.uint8)
            cmask = np.zeros((side, side), np.uint8)
            t, lft = (side - h) // 2, (side - w) // 2
            canvas[t : t + h, lft : lft + w], cmask[t : t + h, lft : lft + w] = patch, pmask
            rot = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
            patch = cv2.warpAffine(canvas, rot, (side, side), flags=cv2.INTER_NEAREST)
            pmask = cv2.warpAffine(cmask, rot, (side, side), flags=cv2.INTER_NEAREST)
            h = w = side
            if side >= min(H, W):
                return None
        y1, x1 = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        out = rgb.copy()
        inside = pmask > 0
        region = out[y1 : y1 + h, x1 : x1 + w]
        region[inside] = patch[inside]
        changed = np.abs(region.astype(np.int16) - rgb[y1 : y1 + h, x1 : x1 + w]).max(axis=2) > VISIBLE
        if not (changed & inside).any():
            return None
        mask = np.zeros((H, W), np.uint8)
        mask[y1 : y1 + h, x1 : x1 + w][inside] = 255
        if image.ndim == 2:
            out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        return out, mask, {"box_from": [y0, x0], "box": [y1, x1, h, w], "angle": round(angle, 3)}
