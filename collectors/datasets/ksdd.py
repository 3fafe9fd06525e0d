"""KolektorSDD, version 1 (Tabernik, Sela, Skvarc, Skocaj, J. Intelligent Manufacturing 2020).

Publisher's layout (https://www.vicos.si/resources/kolektorsdd/, `KolektorSDD.zip`),
one folder per electrical commutator, eight surface images each:

    kos01/Part0.jpg
    kos01/Part0_label.bmp     its mask (all zero for defect-free images)
    ...
    kos50/Part7.jpg

An image is anomalous when its `_label.bmp` has any non-zero pixel. The defects are
surface cracks (the paper's own description), so the source label is `crack`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Union

from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Mapping, folders_found, mask_has_defect

PART = re.compile(r"^Part\d+\.jpg$", re.IGNORECASE)


class KSDD(DatasetAdapter):
    name = "ksdd"
    layout = "KolektorSDD's layout kosNN/PartN.jpg with masks kosNN/PartN_label.bmp"

    def _items(self, root: Path) -> list[Path]:
        return sorted(d for d in root.iterdir() if d.is_dir() and re.fullmatch(r"kos\d+", d.name))

    def _parts(self, folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if PART.match(p.name))

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        folders = self._items(root)
        if not folders:
            raise self.layout_error(root, f"no kosNN/ folder here; {folders_found(root)}")
        for f in folders:
            parts = self._parts(f)
            if parts and not any(p.with_name(f"{p.stem}_label.bmp").exists() for p in parts):
                raise self.layout_error(root, f"{f.name}/ has PartN.jpg but no PartN_label.bmp masks (half-extracted?)")

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for folder in self._items(root):
            for image in self._parts(folder):
                mask = image.with_name(f"{image.stem}_label.bmp")
                if mask_has_defect(mask) is False:
                    continue
                yield self.item(root, image, mask, "crack", mapping, "all")

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for folder in self._items(root):
            for image in self._parts(folder):
                yield self.rel(root, image), image
