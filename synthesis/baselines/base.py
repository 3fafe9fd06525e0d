"""What the baselines share: the working size, one seeded generator per target, the retry loop.

The generator is seeded from (seed, crc32 of the target's key), as CAI's is, so a target's
pseudo anomalies do not depend on call order or on the worker process that makes them.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from daad.core.errors import BadItemError
from daad.synthesis.cai.cai import Injection, resize_target, target_key

ATTEMPTS_PER_OUTPUT = 50


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): grey targets are repeated over three channels, alpha dropped."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


class Synthesizer:
    """Base of the baselines: `per_image` outputs per target, each from `_one` (None: redraw)."""

    name = ""

    def __init__(self, *, mode: str, per_image: int = 10, size: int | None = 256, seed: int = 0):
        if per_image < 1:
            raise ValueError(f"per_image must be >= 1, not {per_image}")
        self.mode = mode
        self.per_image = int(per_image)
        self.size = size
        self.seed = int(seed)

    def rng(self, key: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(key.encode("utf-8"))])

    def _one(self, image: np.ndarray, key: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        raise NotImplementedError

    def __call__(self, target: np.ndarray, key: str | None = None) -> list[Injection]:
        """`per_image` pseudo anomalies of `target` ((H, W) or (H, W, C) uint8)."""
        name = key if key is not None else target_key(target)
        if target.dtype != np.uint8 or target.ndim not in (2, 3):
            raise BadItemError(name, f"target must be a uint8 (H, W) or (H, W, C) array, not {target.dtype} {target.shape}")
        image = resize_target(target, self.size)
        rng = self.rng(name)
        out: list[Injection] = []
        attempts = 0
        while len(out) < self.per_image:
            attempts += 1
            if attempts > ATTEMPTS_PER_OUTPUT * self.per_image:
                raise BadItemError(name, f"{self.name}: gave up after {attempts - 1} draws with {len(out)} of {self.per_image} pseudo anomalies")
            made = self._one(image, name, rng)
            if made is None:
                continue
            result, mask, prov = made
            if not mask.any():
                continue
            # the keys CAI's Folder writer counts by: no DAAD class, no CAI scale, the whole image as foreground
            prov.update(method=self.name, mode=self.mode, target=name, index=len(out), seed=self.seed, size=self.size,
                        anomaly_class=self.name, scale="-", foreground="full")
            out.append(Injection(result, mask, prov))
        return out
