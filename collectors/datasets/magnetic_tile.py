"""Magnetic Tile surface defects (Huang, Qiu, Yuan: "Surface defect saliency of magnetic tile", 2018/2020).

Publisher's layout (github.com/abin24/Magnetic-tile-defect-datasets., the repository is
the distribution):

    MT_<Type>/Imgs/<name>.jpg     the image
    MT_<Type>/Imgs/<name>.png     its mask, same name, grey values (threshold at 128)

Types: MT_Blowhole, MT_Break, MT_Crack, MT_Fray, MT_Uneven, and MT_Free (defect-free:
normal images, never collected, still listed by `iter_all_images`). The source label
is the folder name (`MT_Crack`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Mapping, folders_found

TYPES = ("MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Free", "MT_Uneven")
NORMAL = "MT_Free"


class MagneticTile(DatasetAdapter):
    name = "magnetic_tile"
    layout = "Magnetic Tile's layout MT_<Type>/Imgs/<name>.jpg with same-name .png masks (MT_Blowhole, MT_Break, MT_Crack, MT_Fray, MT_Free, MT_Uneven)"
    mask_binarize = True
    mask_threshold = 128

    def _types(self, root: Path) -> list[Path]:
        return [root / t for t in TYPES if (root / t).is_dir()]

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        types = self._types(root)
        if not types:
            raise self.layout_error(root, f"no MT_<Type> folder here; {folders_found(root)}")
        for t in types:
            if not (t / "Imgs").is_dir():
                raise self.layout_error(root, f"{t.name}/Imgs/ is missing (half-extracted?)")

    def _images(self, folder: Path) -> list[Path]:
        return sorted(p for p in (folder / "Imgs").glob("*") if p.suffix.lower() == ".jpg")

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for t in self._types(root):
            if t.name == NORMAL:
                continue
            for image in self._images(t):
                yield self.item(root, image, image.with_suffix(".png"), t.name, mapping, "all")

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for t in self._types(root):
            for image in self._images(t):
                yield self.rel(root, image), image
