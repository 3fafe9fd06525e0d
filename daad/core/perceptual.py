"""The arithmetic of the 64-bit perceptual hashes (pHash, dHash), bit for bit `imagehash`'s.

Why in core: ingest (`daad.core.ingest`) holds every collected image decoded once to
check and normalise it, and hashing that image there costs only the grey conversion,
the two thumbnails and the DCT (no second decode). Publish and dedupe then find the
hashes stored. Batches of files, variants and the fast mode are `daad.curate.hashing`,
which builds on this module. scipy (the `dedupe` extra) is imported only when a hash is
computed: `available()` says whether it can be.

Both thumbnails come from one grey image with the Pillow calls `imagehash` makes
(`convert("L")`, then `resize(..., LANCZOS)` to 32x32 and 9x8), and the DCTs of a batch
run in one `scipy.fftpack.dct` call, which gives the same floats as one call per image.
The bits, their order (row-major, first bit most significant) and the 16-hex-digit
strings are `imagehash`'s.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

HASH_SIZE = 8
PHASH_SIDE = HASH_SIZE * 4  # imagehash's highfreq_factor=4
# Image.transpose codes of the 8 symmetries of the square; index 0 is the identity.
DIHEDRAL: tuple[Image.Transpose | None, ...] = (
    None,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)
_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


@cache
def available() -> bool:
    """Whether hashes can be computed here (scipy, from the `dedupe` extra, is installed)."""
    try:
        import scipy.fftpack  # noqa: F401
    except ImportError:
        return False
    return True


def thumbnails(im: Image.Image, variants: bool = False, fast: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(n, 32, 32) and (n, 8, 9) uint8 grey thumbnails, n = 8 with variants else 1.

    `fast`: Pillow first box-reduces by an integer factor (`reducing_gap=2`), then
    resamples: 5x faster on a 1000x1000 image, but not imagehash's pixels.
    """
    gap = 2.0 if fast else None
    grey = im if im.mode == "L" else im.convert("L")  # convert("L") of an L image is only a copy
    ph, dh = [], []
    for t in DIHEDRAL if variants else DIHEDRAL[:1]:
        g = grey if t is None else grey.transpose(t)
        ph.append(np.asarray(g.resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS, reducing_gap=gap)))
        dh.append(np.asarray(g.resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.LANCZOS, reducing_gap=gap)))
    return np.stack(ph), np.stack(dh)


def _pack(bits: np.ndarray) -> np.ndarray:
    """(..., 64) booleans -> (...,) uint64, first bit most significant (imagehash's order)."""
    return (bits.astype(np.uint64) * _WEIGHTS).sum(axis=-1, dtype=np.uint64)


def phash_bits(thumbs: np.ndarray) -> np.ndarray:
    """pHash of a batch of (n, 32, 32) grey thumbnails -> (n,) uint64.

    The 8x8 lowest frequencies of the 2-D DCT-II, each bit set when above their median.
    """
    import scipy.fftpack

    dct = scipy.fftpack.dct(scipy.fftpack.dct(thumbs, axis=1), axis=2)
    low = dct[:, :HASH_SIZE, :HASH_SIZE].reshape(len(thumbs), -1)
    med = np.median(low, axis=1, keepdims=True)
    return _pack(low > med)


def dhash_bits(thumbs: np.ndarray) -> np.ndarray:
    """dHash of a batch of (n, 8, 9) grey thumbnails -> (n,) uint64: each pixel brighter than its left neighbour."""
    diff = thumbs[:, :, 1:] > thumbs[:, :, :-1]
    return _pack(diff.reshape(len(thumbs), -1))


def to_hex(value: int | np.integer) -> str:
    """A 64-bit hash as imagehash's 16-hex-digit string."""
    return format(int(value), "016x")


def image_hashes(im: Image.Image) -> tuple[str, str]:
    """(pHash, dHash) of one decoded image, as `str(imagehash.phash(im))`, `str(imagehash.dhash(im))`."""
    ph, dh = thumbnails(im)
    return to_hex(phash_bits(ph)[0]), to_hex(dhash_bits(dh)[0])
