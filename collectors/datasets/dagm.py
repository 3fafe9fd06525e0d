"""DAGM 2007 (Wieler, Hahn: weakly supervised learning for industrial optical inspection, DAGM 2007 competition).

Publisher's layout (https://hci.iwr.uni-heidelberg.de/content/weakly-supervised-learning-industrial-optical-inspection,
one archive per class, `Class1.zip` ... `Class10.zip`):

    Class<k>/Train/NNNN.PNG
    Class<k>/Train/Label/Labels.txt        first line a count, then per image, tab-separated:
                                           <n> <defective 0|1> <NNNN.PNG> <0|1> [<NNNN_label.PNG>]
    Class<k>/Train/Label/NNNN_label.PNG    the mask of a defective image
    Class<k>/Test/...                      the same

The textures and defects are synthetic and the masks are the publisher's coarse
ellipses around each defect (weak labels): `mask_status` is still ground_truth (it is
what the publisher ships) and review may refine it. Defect types are not named, so the
source label is the class folder (`Class3`), mapped to `unassigned`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Union

from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Mapping, folders_found, image_files

SPLITS = ("Train", "Test")
LABELS = "Labels.txt"


def read_labels(path: Path) -> list[tuple[str, str]]:
    """(image file, mask file) of each defective image listed in a DAGM Labels.txt."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "1":
            mask = fields[4] if len(fields) >= 5 and fields[4] != "0" else f"{Path(fields[2]).stem}_label.PNG"
            out.append((fields[2], mask))
    return out


class DAGM(DatasetAdapter):
    name = "dagm"
    layout = "DAGM 2007's layout Class<k>/{Train,Test}/NNNN.PNG with Class<k>/{Train,Test}/Label/Labels.txt and NNNN_label.PNG masks"

    def _classes(self, root: Path) -> list[Path]:
        found = [d for d in root.iterdir() if d.is_dir() and re.fullmatch(r"Class\d+", d.name)]
        return sorted(found, key=lambda d: int(d.name[5:]))

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        classes = self._classes(root)
        if not classes:
            raise self.layout_error(root, f"no Class<k>/ folder here; {folders_found(root)}")
        for c in classes:
            splits = [s for s in SPLITS if (c / s).is_dir()]
            if not splits:
                raise self.layout_error(root, f"{c.name}/ has neither Train/ nor Test/ (half-extracted?)")
            for s in splits:
                if not (c / s / "Label" / LABELS).is_file():
                    raise self.layout_error(root, f"{c.name}/{s}/Label/{LABELS} is missing (half-extracted?)")

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for c in self._classes(root):
            for s in SPLITS:
                if not (c / s).is_dir():
                    continue
                for image_name, mask_name in read_labels(c / s / "Label" / LABELS):
                    image = c / s / image_name
                    yield self.item(root, image, c / s / "Label" / mask_name, c.name, mapping, s.lower())

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for c in self._classes(root):
            for s in SPLITS:
                for image in image_files(c / s):
                    yield self.rel(root, image), image
