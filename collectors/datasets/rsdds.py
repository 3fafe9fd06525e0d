"""RSDDs, the Rail Surface Defect datasets (Gan, Li, Wang, Yu, IEEE Sensors Journal 2017).

Publisher's layout (the `RSDDs dataset` archive of Beijing Jiaotong University, as the
code that reads it lays it out, e.g. `split_cut_RSDD` and nnU-Net converters on GitHub):

    Type-I RSDDs dataset/Rail surface images/rail_N.jpg     67 express-rail images, 160x1000
    Type-I RSDDs dataset/GroundTruth/rail_N.jpg             same-name masks (JPEG: grey noise)
    Type-II RSDDs dataset/Rail surface images/rail_N.jpg    128 common/heavy-haul images, 55x1250
    Type-II RSDDs dataset/GroundTruth/rail_N.jpg

Every image shows at least one defect. The masks are JPEG, so their white holds
compression noise: they are binarised at 128 (the readers above use > 200 or > 127;
128 keeps the marked regions and drops the ringing). RSDDs does not name defect types
per image (scars, cracks, spalling are mixed), so the label is `Type-I/defect` or
`Type-II/defect`, mapped to `unassigned`: the class is decided in review.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Mapping, folders_found, image_files

TYPES = (("Type-I", "Type-I RSDDs dataset"), ("Type-II", "Type-II RSDDs dataset"))
IMAGES, MASKS = "Rail surface images", "GroundTruth"


class RSDDs(DatasetAdapter):
    name = "rsdds"
    layout = "RSDDs' layout 'Type-I RSDDs dataset'/'Rail surface images'/rail_N.jpg with same-name masks in 'Type-I RSDDs dataset'/GroundTruth/ (and Type-II)"
    mask_binarize = True
    mask_threshold = 128

    def _types(self, root: Path) -> list[tuple[str, Path]]:
        return [(short, root / folder) for short, folder in TYPES if (root / folder).is_dir()]

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        types = self._types(root)
        if not types:
            raise self.layout_error(root, f"neither 'Type-I RSDDs dataset' nor 'Type-II RSDDs dataset' is here; {folders_found(root)}")
        for _, folder in types:
            for sub in (IMAGES, MASKS):
                if not (folder / sub).is_dir():
                    raise self.layout_error(root, f"'{folder.name}/{sub}/' is missing (half-extracted archive?)")

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for short, folder in self._types(root):
            for image in image_files(folder / IMAGES):
                yield self.item(root, image, folder / MASKS / image.name, f"{short}/defect", mapping, "all", rail_type=short)

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for _, folder in self._types(root):
            for image in image_files(folder / IMAGES):
                yield self.rel(root, image), image
