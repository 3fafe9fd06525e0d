"""The content-addressed media store: images and masks under DAAD_HOME/media.

A file's name is the sha256 of its bytes, so the same image collected twice (or from
two sources) is stored once and re-running a collect is a no-op. Files are written to a
temp file in the same folder and renamed into place, so a killed process never leaves a
half-written file under a final name.

What a kill does leave is the temp file (`.tmp-<host>-<pid>-*.png`). Collect commands
call `clean_stale_temps()` first, which removes a temp file when it is stale:

- its name says it was written on this host by a process that no longer runs (the
  writer died: `os.kill(pid, 0)` fails), or
- it is older than `STALE_AFTER` (10 minutes), whoever wrote it: a temp file lives for
  one write, milliseconds (a 25 MB PNG is written in well under a second), so a file
  that old is an orphan even if its pid was reused or it came from another host on a
  shared DAAD_HOME (whose pids mean nothing here, hence the host tag).

A fresh temp file of a live process is never touched, so cleaning is safe while another
collect writes into the same store.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from daad.core.atomic import umasked
from daad.core.images import ImageSource, encode_png, load_image, load_mask
from daad.core.settings import daad_home

if TYPE_CHECKING:
    from daad.core.record import Record


STALE_AFTER = 600.0  # seconds
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


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
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".tmp-{_HOST}-{os.getpid()}-", suffix=".png")
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

    def clean_stale_temps(self, stale_after: float = STALE_AFTER) -> int:
        """Remove temp files that killed writers left behind (see module doc); returns how many."""
        removed = 0
        now = time.time()
        for tmp in self.root.glob("*/*/.tmp-*"):
            parts = tmp.name.split("-")  # .tmp, host, pid, random.png
            try:
                age = now - tmp.stat().st_mtime
            except FileNotFoundError:
                continue  # its writer just renamed it into place
            dead = len(parts) >= 4 and parts[1] == _HOST and parts[2].isdigit() and not _alive(int(parts[2]))
            if dead or age > stale_after:
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

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
