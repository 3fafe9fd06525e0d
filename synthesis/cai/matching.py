"""Source-target matching (STM, paper Eq. 1) and multi-scale synthesis (MAS, Algorithm 1 lines 6-23).

R = s_a / s_f, with s_a the longer side of the anomaly mask's bounding box (in source
pixels) and s_f that of the target's foreground (in target pixels, after the target is
resized to the working size). A pattern is trivial (R < 0.1, discarded), small, medium
or large; a pseudo anomaly's scale is given by R' = s'_a / s_f of the injected,
resized pattern: small [0.1, 0.3), medium [0.3, 0.7), large [0.7, 1].

Choosing R' (MAS). A pattern may produce its own scale or a smaller one, never a
larger one, and larger scales are filled first. Algorithm 1 as printed tests
`N_l < C_l`; the intended test is "this scale still needs more", C < N.
We also never exceed a quota: a pattern that could only make scales whose quota is
full is skipped (the printed algorithm would keep adding small ones), so a target gets
exactly N_l + N_m + N_s outputs. Within the chosen scale, R' is uniform over the
interval (as in the paper, so a medium pattern may be enlarged up to the top of the
medium interval, never beyond it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from daad.core.mask_box import bbox  # noqa: F401  (CAI's box; publish stores the same one)

TRIVIAL_BELOW = 0.1


@dataclass(frozen=True)
class Scale:
    """One pseudo-anomaly scale: its name and its R' interval [low, high) (large: [0.7, 1])."""

    name: str
    low: float
    high: float
    closed: bool = False  # the large interval includes 1.0

    def contains(self, r: float) -> bool:
        return self.low <= r <= self.high if self.closed else self.low <= r < self.high


LARGE = Scale("large", 0.7, 1.0, closed=True)
MEDIUM = Scale("medium", 0.3, 0.7)
SMALL = Scale("small", 0.1, 0.3)
SCALES: tuple[Scale, ...] = (LARGE, MEDIUM, SMALL)  # larger first: the order MAS fills them
SCALE_BY_NAME = {s.name: s for s in SCALES}


def source_scale(r: float) -> Scale | None:
    """The scale type of a source pattern with STR R (None: trivial, discarded)."""
    if r < TRIVIAL_BELOW:
        return None
    if r >= LARGE.low:
        return LARGE
    return MEDIUM if r >= MEDIUM.low else SMALL


def allowed_scales(r: float) -> tuple[Scale, ...]:
    """The scales a pattern with STR R may produce, larger first (its own scale and smaller)."""
    own = source_scale(r)
    if own is None:
        return ()
    return SCALES[SCALES.index(own):]


def choose_scale(r: float, counts: dict[str, int], quota: dict[str, int]) -> Scale | None:
    """MAS: the largest scale this pattern may produce that still needs more, or None (skip it)."""
    for scale in allowed_scales(r):
        if counts.get(scale.name, 0) < quota.get(scale.name, 0):
            return scale
    return None


def side_range(scale: Scale, s_f: int) -> tuple[int, int]:
    """The integer pattern sides n with n / s_f inside `scale` (empty when low > high)."""
    lo = math.ceil(scale.low * s_f - 1e-9)  # math, not numpy: the same integers, without a numpy scalar per draw
    hi_exact = scale.high * s_f
    hi = math.floor(hi_exact + 1e-9) if scale.closed else math.ceil(hi_exact - 1e-9) - 1
    return max(lo, 1), hi


def draw_side(scale: Scale, s_f: int, rng: np.random.Generator, decimals: int | None = None) -> tuple[float, int]:
    """Draw R' uniformly in the scale's interval; return it and the integer side s'_a it asks for.

    `decimals` rounds R' as the authors' code does (`round(uniform(0.7, 1), 1)`); the side
    is still clipped into the scale, so a rounded 0.3 of a small draw stays small.
    """
    lo, hi = side_range(scale, s_f)
    r_prime = float(rng.uniform(scale.low, scale.high))
    if decimals is not None:
        r_prime = round(r_prime, decimals)
    side = min(max(round(r_prime * s_f), lo), hi)  # np.clip's order: the lower bound first, then the upper
    return r_prime, side


def split_quota(per_image: int) -> tuple[int, int, int]:
    """N_l/N_m/N_s for `per_image` outputs in the paper's 4:3:3 ratio (10 -> 4/3/3)."""
    n_large = round(per_image * 0.4)
    n_medium = round(per_image * 0.3)
    return n_large, n_medium, per_image - n_large - n_medium


def quotas(n_large: int, n_medium: int, n_small: int) -> dict[str, int]:
    return {LARGE.name: n_large, MEDIUM.name: n_medium, SMALL.name: n_small}


def reachable_quota(quota: dict[str, int], max_ratio: float) -> tuple[dict[str, int], dict[str, int]]:
    """Move the quota of scales no pattern can reach down to the largest reachable scale.

    With a pool whose largest STR is `max_ratio` (for this target), large pseudo anomalies
    may be impossible; Algorithm 1 would then loop forever. We keep the total and report
    the move. Returns (the quota used, the counts moved per scale it was moved from).
    """
    reach = allowed_scales(max_ratio)
    if not reach:
        return quota, {}
    top = reach[0]
    used = dict(quota)
    moved: dict[str, int] = {}
    for scale in SCALES[: SCALES.index(top)]:
        if used.get(scale.name, 0):
            moved[scale.name] = used[scale.name]
            used[top.name] = used.get(top.name, 0) + used[scale.name]
            used[scale.name] = 0
    return used, moved
