"""KolektorSDD2 (Bozic, Tabernik, Skocaj, Computers in Industry 2021).

Publisher's layout (https://www.vicos.si/resources/kolektorsdd2/, `KolektorSDD2.zip`):

    train/<id>.png        image
    train/<id>_GT.png     its mask (all zero for defect-free images)
    test/<id>.png
    test/<id>_GT.png

An image is anomalous when its `_GT` mask has any non-zero pixel. KSDD2 does not name
defect types, so every anomaly has the source label `defect`, mapped to `unassigned`:
the class is decided in review.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Mapping, image_files, mask_has_defect

SPLITS = ("train", "test")
GT = "_GT"


class KSDD2(DatasetAdapter):
    name = "ksdd2"
    layout = "KolektorSDD2's layout train/<id>.png + train/<id>_GT.png and test/<id>.png + test/<id>_GT.png"

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        splits = [s for s in SPLITS if (root / s).is_dir()]
        if not splits:
            raise self.layout_error(root, "no train/ or test/ folder here")
        for s in splits:
            images = [p for p in image_files(root / s) if not p.stem.endswith(GT)]
            if not images:
                raise self.layout_error(root, f"{s}/ holds no <id>.png images")
            if not any(p.stem.endswith(GT) for p in image_files(root / s)):
                raise self.layout_error(root, f"{s}/ holds no <id>_GT.png masks (half-extracted, or another dataset)")

    def _images(self, root: Path, split: str) -> list[Path]:
        return [p for p in image_files(root / split) if not p.stem.endswith(GT)]

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for split in SPLITS:
            for image in self._images(root, split):
                mask = image.with_name(f"{image.stem}{GT}.png")
                if mask_has_defect(mask) is False:  # None (unreadable): ingest reports it as bad
                    continue
                yield self.item(root, image, mask, "defect", mapping, split)

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for split in SPLITS:
            for image in self._images(root, split):
                yield self.rel(root, image), image
