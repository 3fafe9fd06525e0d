"""Collect a folder of your own anomaly photos (the paper's "reality photographing").

Layout accepted, recursively:

    photos/
      crack/IMG_0001.jpg           class from the first folder name when it is a DAAD class
      crack/IMG_0001_mask.png      optional mask beside the image: <stem>_mask.<ext>
      scratch/plate.heic
      masks/crack/IMG_0002.png     or a `masks/` folder mirroring the image paths

A class given explicitly (`anomaly_class=`) wins over folder names. Masks drawn by a
person are recorded as `annotated`; an empty (all-zero) mask makes its photo bad. Files
that are not images, and anything that is not a regular file (a FIFO or a device named
`x.png` would block the read for ever), are reported as skipped; images that do not
decode are reported as bad; neither stops the batch.

A mask is found by its name taken literally: the stem is compared as a string, never
used as a glob pattern, so `[ab].png` does not get `a_mask.png` and `q?.png` does not get
`q1_mask.png`. File names that are not valid UTF-8 are read by their real name and
recorded as text (`daad.core.names`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Union

from daad.core import licenses, taxonomy
from daad.core.catalog import Catalog
from daad.core.errors import LayoutError
from daad.core.images import IMAGE_SUFFIXES, not_regular
from daad.core.ingest import CollectReport, Item, Skip, ingest
from daad.core.media_store import MediaStore
from daad.core.names import as_text

MASK_SUFFIX = "_mask"
MASKS_DIR = "masks"


class _Folders:
    """Image files by stem, per folder, listed once: names are compared literally (no glob)."""

    def __init__(self) -> None:
        self._by_stem: dict[Path, dict[str, list[Path]]] = {}

    def named(self, folder: Path, stem: str) -> list[Path]:
        """Files in `folder` called `<stem>.<image suffix>`, sorted."""
        index = self._by_stem.get(folder)
        if index is None:
            index = {}
            try:
                names = sorted(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                names = []
            for n in names:
                if Path(n).suffix.lower() in IMAGE_SUFFIXES:
                    index.setdefault(Path(n).stem, []).append(folder / n)
            self._by_stem[folder] = index
        return index.get(stem, [])


def _find_mask(root: Path, rel: Path, folders: _Folders) -> Path | None:
    """The mask of image `rel` (relative to root): beside it, or in the masks/ mirror."""
    image = root / rel
    mirror = root / MASKS_DIR / rel.parent
    found = folders.named(image.parent, image.stem + MASK_SUFFIX) + folders.named(mirror, image.stem) + folders.named(mirror, image.stem + MASK_SUFFIX)
    return found[0] if found else None


def _is_mask(rel: Path) -> bool:
    return rel.parts[0] == MASKS_DIR or rel.stem.endswith(MASK_SUFFIX)


def iter_photos(
    folder: Union[str, Path],
    anomaly_class: str | None = None,
    license: str = "",
    attribution: str = "",
    name: str | None = None,
) -> Iterator[Union[Item, Skip]]:
    """Yield one Item per image under `folder` (sorted, so runs are reproducible)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise LayoutError(f"{root}: expected a folder of photos, found {'a file' if root.exists() else 'nothing'}")
    forced = taxonomy.check_class(anomaly_class) if anomaly_class else None
    lic = licenses.normalize(license)
    if lic == licenses.UNKNOWN:
        raise ValueError(f"licence {license!r} is not understood; give an SPDX id such as CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0 (or none)")
    origin = f"photos:{as_text(name or root.resolve().name)}"
    folders = _Folders()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            path = Path(dirpath) / fn
            rel = path.relative_to(root)
            if fn.startswith(".") or _is_mask(rel):
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                yield Skip(str(path), f"not an image file type ({path.suffix or 'no suffix'})")
                continue
            what = not_regular(path)
            if what:
                yield Skip(str(path), f"not a regular file ({what})")
                continue
            first = rel.parts[0].lower() if len(rel.parts) > 1 else ""
            cls = forced or (first if first in taxonomy.CLASSES else taxonomy.UNASSIGNED)
            mask = _find_mask(root, rel, folders)
            yield Item(
                image=path,
                name=str(path),
                source=taxonomy.PHOTOGRAPH,
                origin=origin,
                anomaly_class=cls,
                mask=mask,
                mask_status=taxonomy.ANNOTATED,
                origin_label=as_text(rel.parent) if rel.parent != Path(".") else "",
                origin_ref=as_text(rel),
                license=lic,
                attribution=attribution,
            )


def collect_photos(
    folder: Union[str, Path],
    catalog: Catalog | None = None,
    store: MediaStore | None = None,
    anomaly_class: str | None = None,
    license: str = "",
    attribution: str = "",
    name: str | None = None,
    progress: bool = True,
) -> CollectReport:
    """Collect every photo under `folder` into the catalog; idempotent by content hash."""
    catalog = catalog if catalog is not None else Catalog()
    store = store if store is not None else MediaStore(catalog.home)
    store.clean_stale_temps()
    items = list(iter_photos(folder, anomaly_class, license, attribution, name))
    return ingest(items, catalog, store, progress=progress, total=len(items), desc=f"photos {Path(folder).name}")
