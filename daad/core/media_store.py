"""The content-addressed media store: images and masks under DAAD_HOME/media.

A file's name is the sha256 of its bytes, so the same image collected twice (or from
two sources) is stored once and re-running a collect is a no-op. Files are written to a
temp file in the same folder and renamed into place, so a killed process never leaves a
half-written file under a final name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from daad.core.atomic import umasked
from daad.core.images import ImageSource, encode_png, load_image, load_mask
from daad.core.settings import daad_home

if TYPE_CHECKING:
    from daad.core.record import Record


class MediaStore:
    """Stores normalised PNG images and 0/255 masks by content hash."""

    def __init__(self, home: Path | str | None = None):
        self.root = Path(home or daad_home()).expanduser() / "media"

    def path(self, digest: str, kind: str = "images") -> Path:
        """Where the file with this sha256 lives (kind: images or masks)."""
        return self.root / kind / digest[:2] / f"{digest}.png"

    def _put(self, data: bytes, kind: str) -> str:
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest, kind)
        if final.exists():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-", suffix=".png")
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), umasked())  # mkstemp's 0600 would make the store private to this user
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.filename is None:  # a failed write() names no file: say which
                raise OSError(exc.errno, exc.strerror, str(final)) from exc
            raise
        return digest

    def put_image(self, src: ImageSource, name: str | None = None) -> tuple[str, Image.Image]:
        """Normalise and store an image; returns (id, the normalised image)."""
        im = load_image(src, name)
        return self._put(encode_png(im), "images"), im

    def put_mask(
        self, src: ImageSource, size: tuple[int, int], name: str | None = None, binarize: bool = False, threshold: int = 128
    ) -> str:
        """Check, binarise if asked, and store a mask of the image's `size`; returns its sha256."""
        return self._put(encode_png(load_mask(src, size, name, binarize, threshold)), "masks")

    def image_path(self, sample_id: str) -> Path:
        return self.path(sample_id, "images")

    def mask_path(self, mask_sha: str) -> Path:
        return self.path(mask_sha, "masks")

    def describe(self, rec: "Record") -> dict:
        """Every record field plus absolute `image_path` and `mask_path` (None without a mask).

        This is the shape of `daad ls --json`, the way scripts and other tools read the catalog.
        """
        d = rec.to_dict()
        d["image_path"] = str(self.image_path(rec.id).resolve())
        d["mask_path"] = str(self.mask_path(rec.mask_sha).resolve()) if rec.mask_sha else None
        return d
