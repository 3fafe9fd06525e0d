"""A published mask's pixels and bounding box, decoded the one way publish and synthesis share.

The rule is PIL's: grey values (`convert("L")`) >= 128 are the anomaly. Ingest stores
each mask's box in the catalog (`Catalog.set_mask_boxes`, keyed by the mask's sha) and
`daad publish` writes it as the `mask_box` column so that `daad synthesize` does not decode
every mask at start-up to learn its side (0.17-0.42 s for the 388 masks of the benchmark
release, the largest start-up cost after importing `datasets`); synthesis decodes a mask
only when its pattern is drawn, with this same function, so the stored box and the drawn
mask always agree.
"""

from __future__ import annotations

import io

import numpy as np

from daad.core.images import plain_png_array

Box = tuple[int, int, int, int]


def mask_array(data: bytes) -> np.ndarray:
    """Encoded mask bytes as bool (H, W): >= 128 of their grey values.

    Plain 8-bit grey PNGs (what `daad publish` writes) are decoded by cv2 where it is
    installed (`daad.core.images.plain_png_array`), 1.4x faster than PIL on the published
    masks and the same pixels (lossless, no conversion); anything else goes through PIL's
    `convert("L")`, so the grey rule never changes.
    """
    grey = plain_png_array(data)
    if grey is not None and grey.ndim == 2:
        return grey >= 128
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("L")) >= 128


def bbox(mask: np.ndarray) -> Box | None:
    """(top, left, height, width) of the smallest box holding the mask's non-zero pixels, or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def stored_box(data: bytes) -> list[int]:
    """The `mask_box` column's value for encoded mask bytes: [top, left, height, width], [] for an empty mask."""
    box = bbox(mask_array(data))
    return [] if box is None else list(box)


def checked_box(data: bytes, name: str) -> list[int]:
    """`stored_box(data)`, or BadMaskError naming `name` and why for bytes no decoder reads (a damaged mask file)."""
    from PIL import UnidentifiedImageError

    from daad.core.errors import BadMaskError

    try:
        return stored_box(data)
    except UnidentifiedImageError:
        raise BadMaskError(name, "mask not readable: not an image Pillow can identify") from None
    except (OSError, ValueError) as exc:  # truncated or corrupt data (Pillow raises OSError)
        raise BadMaskError(name, f"mask not readable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def image_box(mask) -> list[int]:
    """The `mask_box` value of a decoded mask image (`PIL.Image`), as `stored_box` gives for its PNG.

    What ingest stores while it holds the mask it checked (0/255 "L", saved losslessly),
    so publish reads the box instead of decoding every mask again (0.1 s for 388 masks).
    """
    grey = mask if mask.mode == "L" else mask.convert("L")
    box = bbox(np.asarray(grey) >= 128)
    return [] if box is None else list(box)


def side(box: Box | list[int] | None) -> int:
    """s_a of CAI's Eq. 1: the longer side of the box, 0 for an empty mask."""
    return max(box[2], box[3]) if box else 0
