"""DRAEM's pseudo anomalies (Zavrtanik, Kristan, Skocaj, ICCV 2021): Perlin-noise masks filled from a texture image.

As in DRAEM: a 2-D Perlin noise with scales 2^a x 2^b (a, b in 0..5, independently),
rotated by [-90, 90] degrees, thresholded at 0.5 gives the mask M; a texture image
(DRAEM: DTD; here any folder the user gives, e.g. a DAAD release's images, since DTD
cannot be downloaded here) is resized to the target, augmented by three of DRAEM's
intensity operations (gamma, brightness/contrast, posterize, solarize, invert, here drawn
from that list) and blended I_a = (1 - M) I + (1 - beta) M A + beta M I, beta in
[0, 0.8). Departures: DRAEM also makes half of its training samples without anomaly (the
evaluation protocol adds the normal images itself) and uses imgaug's affine rotation of
the texture; a rotation by a multiple of 90 degrees stands in for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from daad.core.images import IMAGE_SUFFIXES, load_image

from .base import Synthesizer, as_rgb

MAX_TEXTURES = 2000  # textures are decoded once at the working size; enough variety, bounded memory


def perlin(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D Perlin noise of `shape` with `res` gradient cells per axis (shape must be a multiple of res)."""

    def fade(t: np.ndarray) -> np.ndarray:
        return 6 * t**5 - 15 * t**4 + 10 * t**3

    d = (shape[0] // res[0], shape[1] // res[1])
    grid = np.mgrid[0 : res[0] : res[0] / shape[0], 0 : res[1] : res[1] / shape[1]].transpose(1, 2, 0) % 1
    angles = 2 * np.pi * rng.random((res[0] + 1, res[1] + 1))
    grads = np.dstack((np.cos(angles), np.sin(angles)))

    def tile(a: np.ndarray) -> np.ndarray:
        return a.repeat(d[0], 0).repeat(d[1], 1)

    g00, g10 = tile(grads[:-1, :-1]), tile(grads[1:, :-1])
    g01, g11 = tile(grads[:-1, 1:]), tile(grads[1:, 1:])
    n00 = (grid * g00).sum(2)
    n10 = (np.dstack((grid[..., 0] - 1, grid[..., 1])) * g10).sum(2)
    n01 = (np.dstack((grid[..., 0], grid[..., 1] - 1)) * g01).sum(2)
    n11 = (np.dstack((grid[..., 0] - 1, grid[..., 1] - 1)) * g11).sum(2)
    t = fade(grid)
    n0 = n00 * (1 - t[..., 0]) + t[..., 0] * n10
    n1 = n01 * (1 - t[..., 0]) + t[..., 0] * n11
    return np.sqrt(2) * ((1 - t[..., 1]) * n0 + t[..., 1] * n1)


def _augment(tex: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ops = rng.choice(5, size=3, replace=False)
    out = tex.astype(np.float32)
    for op in ops:
        if op == 0:
            out = 255 * (out / 255) ** rng.uniform(0.5, 2.0)
        elif op == 1:
            out = out * rng.uniform(0.8, 1.2) + rng.uniform(-30, 30)
        elif op == 2:
            bits = int(rng.integers(4, 8))
            out = np.floor(np.clip(out, 0, 255) / 2 ** (8 - bits)) * 2 ** (8 - bits)
        elif op == 3:
            out = np.where(out > 128, 255 - out, out)
        else:
            out = 255 - out
        out = np.clip(out, 0, 255)
    return out


def texture_images(folder: str | Path) -> list[Path]:
    """The texture images under `folder` (recursive), sorted; ValueError when there are none."""
    root = Path(folder).expanduser()
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) if root.is_dir() else []
    if not found:
        raise ValueError(f"{root}: no texture images found (DRAEM needs a folder of images, e.g. DTD or a DAAD release's images)")
    return found


class DRAEM(Synthesizer):
    """DRAEM pseudo anomalies with textures from `textures` (a folder, or a list of image paths)."""

    def __init__(self, textures: str | Path | Sequence[Path], *, per_image: int = 10, size: int | None = 256, seed: int = 0):
        super().__init__(mode="perlin", per_image=per_image, size=size, seed=seed)
        self.name = "draem"
        paths = texture_images(textures) if isinstance(textures, (str, Path)) else list(textures)
        if not paths:
            raise ValueError("DRAEM needs at least one texture image")
        self.texture_paths = paths[:MAX_TEXTURES]
        self._cache: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": {}}

    def _texture(self, i: int, shape: tuple[int, int]) -> np.ndarray:
        if i not in self._cache:
            im = as_rgb(np.asarray(load_image(self.texture_paths[i]).convert("RGB")))
            self._cache[i] = cv2.resize(im, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        return self._cache[i]

    def _one(self, image: np.ndarray, key: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        rgb = as_rgb(image)
        H, W = rgb.shape[:2]
        a, b = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        side = 2 ** int(np.ceil(np.log2(max(H, W, 32))))
        noise = perlin((side, side), (2**a, 2**b), rng)
        angle = float(rng.uniform(-90, 90))
        rot = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
        noise = cv2.warpAffine(noise.astype(np.float32), rot, (side, side), borderMode=cv2.BORDER_REFLECT)
        m = cv2.resize(noise, (W, H), interpolation=cv2.INTER_LINEAR) > 0.5
        if not m.any():
            return None
        t = int(rng.integers(len(self.texture_paths)))
        tex = np.rot90(self._texture(t, (H, W)), int(rng.integers(4)))
        if tex.shape[:2] != (H, W):
            tex = cv2.resize(np.ascontiguousarray(tex), (W, H), interpolation=cv2.INTER_AREA)
        tex = _augment(tex, rng)
        beta = float(rng.uniform(0, 0.8))
        m3 = m[..., None]
        out = np.where(m3, (1 - beta) * tex + beta * rgb, rgb)
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        if image.ndim == 2:
            out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        return out, m.astype(np.uint8) * 255, {"texture": str(self.texture_paths[t]), "perlin_scale": [2**a, 2**b],
                                               "angle": round(angle, 3), "beta": round(beta, 4)}
