"""Attach masks drawn in any external tool (GIMP, CVAT, Label Studio exports...) as `annotated`.

A mask file is matched to its sample by its file name, so any tool works as long as it
keeps names: the stem (with a trailing `_mask`, `-mask` or `.mask` removed) is tried as

1. a full sample id or a unique id prefix of at least 8 hex digits (what `daad ls`
   prints, and the name of the image file in the media store), then
2. the file stem of a record's `origin_ref` (the collected file's name or the last
   part of its URL), when exactly one record has it.

Masks are validated like every other mask (`daad.core.images.load_mask`: same size as the
image, binary unless `binarize`; an all-zero mask is refused). A file that cannot be matched or validated is
reported with the reason and the batch goes on. Ground-truth masks and existing
annotated masks are only replaced with `replace=True`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Union
from urllib.parse import unquote, urlsplit

from tqdm import tqdm

from daad.core import taxonomy
from daad.core.catalog import Catalog
from daad.core.errors import BadItemError
from daad.core.images import IMAGE_SUFFIXES
from daad.core.masks import MaskOutcome, MaskReport, attach_mask, default_who
from daad.core.media_store import MediaStore
from daad.core.names import as_text
from daad.core.record import Record

_MASK_SUFFIX = re.compile(r"[_.-]mask$", re.I)
_HEX = re.compile(r"^[0-9a-f]{8,64}$")


def ref_stem(origin_ref: str) -> str:
    """The file stem of a path or URL (`https://x/File%3AScratch.jpg` -> `File:Scratch`)."""
    path = urlsplit(origin_ref).path if "://" in origin_ref else origin_ref
    return PurePosixPath(unquote(path).replace("\\", "/")).stem


def mask_stem(path: Path) -> str:
    return _MASK_SUFFIX.sub("", path.stem)


class _Matcher:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.by_stem: dict[str, list[str]] = defaultdict(list)
        for rec in catalog:
            if rec.origin_ref:
                self.by_stem[ref_stem(rec.origin_ref).lower()].append(rec.id)

    def match(self, stem: str) -> Record:
        low = stem.lower()
        if _HEX.match(low):
            rec = self.catalog.get(low)
            if rec is not None:
                return rec
        ids = self.by_stem.get(low, [])
        if len(ids) == 1:
            return self.catalog.get(ids[0])  # type: ignore[return-value]
        if len(ids) > 1:
            raise ValueError(f"file name {stem!r} matches {len(ids)} samples ({', '.join(i[:12] for i in ids[:4])}); name the mask by sample id")
        raise ValueError(f"no sample has id, id prefix or original file name {stem!r}")


def import_masks(
    folder: Union[str, Path],
    catalog: Catalog | None = None,
    store: MediaStore | None = None,
    binarize: bool = False,
    threshold: int = 128,
    replace: bool = False,
    who: str | None = None,
    progress: bool = True,
) -> MaskReport:
    """Attach every mask image under `folder` (recursively) to its sample as `annotated`."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: expected a folder of mask images")
    catalog = catalog if catalog is not None else Catalog()
    store = store if store is not None else MediaStore(catalog.home)
    who = who or default_who("masks-import")
    matcher = _Matcher(catalog)
    report = MaskReport()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in tqdm(files, desc="import masks", unit="mask", disable=not progress):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            report.add(MaskOutcome(str(path), "skipped", reason=f"not an image file type ({path.suffix or 'no suffix'})"))
            continue
        try:
            rec = matcher.match(as_text(mask_stem(path)))
        except ValueError as exc:
            report.add(MaskOutcome(str(path), "bad", reason=str(exc)))
            continue
        if not replace and rec.mask_status in (taxonomy.GROUND_TRUTH, taxonomy.ANNOTATED):
            report.add(MaskOutcome(str(path), "skipped", rec.id, f"sample {rec.id[:12]} already has a {rec.mask_status} mask (use --replace)"))
            continue
        try:
            _, changed = attach_mask(catalog, store, rec, path, taxonomy.ANNOTATED, who, name=str(path), binarize=binarize, threshold=threshold)
        except BadItemError as exc:
            report.add(MaskOutcome(str(path), "bad", rec.id, exc.reason))
            continue
        report.add(MaskOutcome(str(path), "annotated" if changed else "unchanged", rec.id))
    return report
