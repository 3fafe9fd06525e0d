"""Label Studio's brush masks: the bit-packed run-length format its BrushLabels results hold.

Label Studio stores a brush region as `value.rle`, a list of bytes encoding the region's
RGBA raster (height x width x 4, row-major) with thi.ng's `rle-pack` scheme, read MSB-first:

    32 bits  number of values (4 * width * height)
     5 bits  word size - 1 (8: one byte per value)
    4 x 4 bits  the four run-length field sizes - 1 (3, 4, 8, 16 in Label Studio's own encoder)
    then chunks: 1 bit "repeat", 2 bits which run-length field, (field) bits run length - 1,
                 then one word (repeat) or run-length words (literal)

The region is the alpha channel (> 0). The editor in the browser writes literal chunks
as well as repeats, so the decoder reads both; the encoder writes repeats only, which every
reader accepts. Written from the format, checked against the Label Studio SDK's own
decoder and encoder (tests/test_annotate.py) when a Label Studio install is at hand.
"""

from __future__ import annotations

import numpy as np

_RLE_SIZES = (3, 4, 8, 16)  # what Label Studio's encoder uses; the widest run is 2**16 values


class BrushFormatError(ValueError):
    """The bytes are not a Label Studio brush RLE of the expected size."""


def encode(mask: np.ndarray) -> list[int]:
    """A 2-D mask (non-zero = region) as Label Studio's brush RLE (a list of ints 0..255)."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    flat = np.repeat((mask > 0).astype(np.uint8) * 255, 4)  # RGBA, every channel = region
    n = int(flat.size)
    change = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [n])))
    fields: list[tuple[int, int]] = [(n, 32), (7, 5)] + [(s - 1, 4) for s in _RLE_SIZES]
    widest = 1 << _RLE_SIZES[-1]
    for start, length in zip(starts.tolist(), lengths.tolist()):
        value = int(flat[start])
        while length > 0:
            run = min(length, widest)
            cls = next(i for i, s in enumerate(_RLE_SIZES) if run <= 1 << s)
            fields += [(1, 1), (cls, 2), (run - 1, _RLE_SIZES[cls]), (value, 8)]
            length -= run
    bits = "".join(format(v, f"0{w}b") for v, w in fields)
    bits += "0" * (-len(bits) % 8)
    return list(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


class _Bits:
    def __init__(self, data: list[int] | bytes):
        self.bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
        self.pos = 0

    def read(self, width: int) -> int:
        end = self.pos + width
        if end > self.bits.size:
            raise BrushFormatError("brush RLE ends in the middle of a field (truncated)")
        value = 0
        for b in self.bits[self.pos:end].tolist():
            value = (value << 1) | b
        self.pos = end
        return value


def decode(rle: list[int] | bytes, width: int, height: int) -> np.ndarray:
    """The region (bool, height x width) of a Label Studio brush RLE drawn on a width x height image."""
    try:
        data = bytes(rle)
    except (TypeError, ValueError) as exc:
        raise BrushFormatError(f"brush RLE is not a list of bytes ({exc})") from None
    src = _Bits(data)
    num = src.read(32)
    if num != 4 * width * height:
        raise BrushFormatError(f"brush RLE holds {num} values, but a {width}x{height} RGBA image has {4 * width * height}")
    word = src.read(5) + 1
    sizes = [src.read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint32)
    i = 0
    while i < num:
        repeat = src.read(1)
        j = min(num, i + 1 + src.read(sizes[src.read(2)]))
        if repeat:
            out[i:j] = src.read(word)
        else:
            for k in range(i, j):
                out[k] = src.read(word)
        i = j
    return out.reshape(height, width, 4)[:, :, 3] > 0
