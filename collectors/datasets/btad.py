"""BTAD, the beanTech Anomaly Detection dataset (Mishra et al., ISIE 2021).

Publisher's layout (http://avires.dimi.uniud.it/papers/btad/btad.zip, which extracts to
`BTech_Dataset_transformed/`), one folder per product:

    01/train/ok/NNNN.bmp            normal training images (product 02: .png)
    01/test/ok/NNNN.bmp             normal test images
    01/test/ko/NNNN.bmp             anomalous test images
    01/ground_truth/ko/NNNN.png     their masks (product 03: .bmp)

Products 01, 02, 03. BTAD names no defect types, so the source label is `<product>/ko`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Mapping, folders_found, image_files

PRODUCTS = ("01", "02", "03")


class BTAD(DatasetAdapter):
    name = "btad"
    layout = "BTAD's layout <product>/test/ko/NNNN.bmp|png with masks <product>/ground_truth/ko/NNNN.png|bmp (products 01, 02, 03)"

    def _products(self, root: Path) -> list[Path]:
        return [root / p for p in PRODUCTS if (root / p).is_dir()]

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        products = self._products(root)
        if not products:
            raise self.layout_error(root, f"none of the product folders 01, 02, 03 is here; {folders_found(root)}")
        for p in products:
            if not (p / "test").is_dir():
                raise self.layout_error(root, f"{p.name}/test/ is missing (half-extracted archive?)")
            if (p / "test" / "ko").is_dir() and not (p / "ground_truth" / "ko").is_dir():
                raise self.layout_error(root, f"{p.name}/ground_truth/ko/ (the masks) is missing (half-extracted archive?)")

    def _mask(self, product: Path, image: Path) -> Path:
        gt = product / "ground_truth" / "ko"
        for suffix in (".png", ".bmp"):
            if (gt / f"{image.stem}{suffix}").exists():
                return gt / f"{image.stem}{suffix}"
        return gt / f"{image.stem}.png"  # absent: ingest names it as a bad item

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for product in self._products(root):
            for image in image_files(product / "test" / "ko"):
                yield self.item(root, image, self._mask(product, image), f"{product.name}/ko", mapping, "test")

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for product in self._products(root):
            for split in ("train", "test"):
                for kind in ("ok", "ko"):
                    for image in image_files(product / split / kind):
                        yield self.rel(root, image), image
