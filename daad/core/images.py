"""Decoding and normalising images and masks, with the checks every source needs.

Why here and not in each collector: a phone photo, a web download and a dataset file
must end up identical in the store (same pixels -> same bytes -> same id), and all of
them can be truncated, lie about their format, or be decompression bombs.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import Callable, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from daad.core.errors import BadImageError, BadMaskError
from daad.core.settings import max_pixels

try:  # HEIC/HEIF photos from phones, when the maintained reader is installed.
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIC_SUPPORTED = True
except ImportError:  # pragma: no cover - depends on the optional extra
    HEIC_SUPPORTED = False

ImageSource = Union[str, Path, bytes, Image.Image, np.ndarray]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"} | (
    {".heic", ".heif"} if HEIC_SUPPORTED else set()
)


def not_regular(path: Union[str, Path]) -> str:
    """"" for a regular file (or a link to one), else what it is: opening a FIFO named
    `x.png` blocks for ever, a device reads for ever, so only regular files are read."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken link" if os.path.islink(path) else "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISREG(mode):
        return ""
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))
    return next((what for test, what in kinds if test(mode)), "not a regular file")


def _open(src: ImageSource, name: str, prepare: Callable[[Image.Image], None] | None = None) -> Image.Image:
    """Open lazily, refuse bombs before decoding, then decode fully (truncation shows here).

    `prepare` sees the opened, not yet decoded image (e.g. to ask a JPEG `draft` mode).
    """
    if isinstance(src, Image.Image):
        return src
    if isinstance(src, np.ndarray):
        return Image.fromarray(src)
    if isinstance(src, (str, Path)):
        what = not_regular(src)
        if what:
            raise BadImageError(name, f"not a regular file ({what})")
    limit = max_pixels()
    fp = io.BytesIO(src) if isinstance(src, bytes) else src
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
            try:
                im = Image.open(fp)
                if im.width * im.height > limit:
                    raise BadImageError(name, f"{im.width}x{im.height} pixels exceeds the decompression-bomb limit of {limit} (DAAD_MAX_PIXELS)")
                if prepare is not None:
                    prepare(im)
                im.load()
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(name, f"image exceeds the decompression-bomb limit of {limit} pixels (DAAD_MAX_PIXELS): {exc}") from None
    except UnidentifiedImageError:
        raise BadImageError(name, "not an image Pillow can identify") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(name, f"cannot decode ({exc})") from None
    return im


def load_image(src: ImageSource, name: str | None = None) -> Image.Image:
    """Decode an image and normalise it to what DAAD stores.

    EXIF orientation is applied to the pixels (a phone photo shows upright), then every
    piece of metadata is dropped by rebuilding the image from its pixels: phones put the
    owner's GPS position in EXIF/XMP. The result is RGB, or L for grey images (16-bit
    and palette images are converted so that every consumer can read them).
    """
    im = decode(src, name)
    return Image.frombytes(im.mode, im.size, im.tobytes())  # rebuilt from pixels: no metadata survives


def decode(src: ImageSource, name: str | None = None, prepare: Callable[[Image.Image], None] | None = None) -> Image.Image:
    """`load_image` without its final copy: checked, decoded, EXIF-oriented, RGB or L, metadata still attached.

    For readers that only compute from the pixels (hashing); `prepare` is called on the
    opened image before decoding (e.g. `im.draft("L", ...)` to decode a JPEG to grey).
    """
    label = name or (str(src) if isinstance(src, (str, Path)) else "<image>")
    im = _open(src, label, prepare)
    try:
        ImageOps.exif_transpose(im, in_place=True)  # in place: without it Pillow copies every upright image
    except Exception as exc:  # a broken EXIF block must not lose the picture
        raise BadImageError(label, f"unreadable EXIF orientation ({exc})") from None
    if im.mode not in ("RGB", "L"):
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.float64)
            hi = arr.max() or 1.0
            im = Image.fromarray((arr * (255.0 / hi)).round().astype(np.uint8), "L")
        else:
            im = im.convert("RGB")
    return im


def load_mask(
    src: ImageSource,
    size: tuple[int, int],
    name: str | None = None,
    binarize: bool = False,
    threshold: int = 128,
) -> Image.Image:
    """Decode a mask and return it as single-channel 0/255 of exactly `size` (width, height).

    `binarize=False` is for masks people drew: anything but two levels is an error, since
    a grey mask usually means a wrong file (a photo, an anti-aliased export). Dataset
    adapters whose publishers ship grey masks (Magnetic Tile, MVTec 3D-AD) pass
    `binarize=True`, and values >= `threshold` become 255 (or > 0 when threshold is 0).
    """
    label = name or (str(src) if isinstance(src, (str, Path)) else "<mask>")
    try:
        im = _open(src, label)
    except BadImageError as exc:
        raise BadMaskError(label, exc.reason) from None
    if im.size != tuple(size):
        raise BadMaskError(label, f"mask is {im.size[0]}x{im.size[1]} but its image is {size[0]}x{size[1]}")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        arr = np.asarray(im.convert("RGBA"))
        alpha = arr[..., 3]
        grey = arr[..., :3].max(axis=2) if alpha.min() == 255 else alpha
    elif im.mode == "1":
        grey = np.asarray(im, dtype=np.uint8) * 255
    elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = np.asarray(im, dtype=np.int64)
    else:
        grey = np.asarray(im.convert("RGB")).max(axis=2) if im.mode != "L" else np.asarray(im)
    if binarize:
        out = grey > 0 if threshold <= 0 else grey >= threshold
    else:
        levels = np.unique(grey)
        if len(levels) > 2 or (len(levels) == 2 and levels[0] != 0):
            raise BadMaskError(label, f"mask is not binary ({len(levels)} grey levels, e.g. {levels[:4].tolist()}); expected 0 and one foreground value")
        out = grey > 0
    return Image.fromarray(out.astype(np.uint8) * 255, "L")


def require_anomaly(mask: Image.Image, name: str) -> Image.Image:
    """`mask` unless it marks no pixel: an anomaly mask with no anomaly is a wrong file, not a label."""
    if not mask.getbbox():
        raise BadMaskError(name, "mask is empty (all zero): an anomaly mask that marks no anomaly; fix or remove it")
    return mask


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def plain_png_array(data: bytes) -> np.ndarray | None:
    """The pixels of a *plain* PNG decoded by cv2, as PIL's `np.asarray(Image.open(...))` gives them; None for any other file.

    Plain: 8-bit grey or RGB (IHDR depth 8, colour type 0 or 2), not interlaced, and IDAT
    right after IHDR, so no palette, transparency (tRNS), gamma, ICC or sBIT chunk can
    make libpng and PIL disagree (ancillary chunks that change pixels must come before
    IDAT). That is what `daad publish` writes (PIL, no metadata). Why: cv2 decodes them
    1.2-1.6x faster (the 388 published patterns of `benchmarks/cai.py --cli`: 0.34 CPU s
    against 0.40-0.57 s); tests/test_images.py checks identity with PIL on real files.
    """
    if not (data[:8] == PNG_SIGNATURE and len(data) > 41 and data[12:16] == b"IHDR" and data[24] == 8
            and data[25] in (0, 2) and data[28] == 0 and data[37:41] == b"IDAT"):
        return None
    try:
        import cv2
    except ImportError:  # the base install has no OpenCV: PIL decodes it
        return None
    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None or a.dtype != np.uint8 or a.ndim != (2 if data[25] == 0 else 3):
        return None
    return a if a.ndim == 2 else cv2.cvtColor(a, cv2.COLOR_BGR2RGB)


def encode_png(im: Image.Image, level: int = 6) -> bytes:
    """Encode deterministically and without metadata at zlib `level`: the same pixels give the same bytes."""
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=level, optimize=False)
    return buf.getvalue()
