"""AeBAD-S, the Aero-engine Blade Anomaly Detection dataset, single-blade part (Zhang et al., Computers in Industry 2023).

Publisher's layout (the `AeBAD.zip` linked from github.com/zhangzilongc/MMR, as the
authors' `AeBAD_SDataset` reads it), in the folder `AeBAD_S/`:

    train/good/<domain>/NNN.png                 normal training images
    test/good/<domain>/NNN.png                  normal test images
    test/<defect>/<domain>/NNN.png              anomalous test images
    ground_truth/<defect>/<domain>/NNN.png      their masks, same name (a mirrored tree)

Defect types: ablation, breakdown, fracture, groove. Domains (the dataset's point: the
same blades under domain shift): same, background, illumination, view. The masks are
PNG; the authors' loaders take any non-zero pixel as defect, so DAAD binarises at > 0.
The source label is `<defect>/<domain>`; the class mapping keys on the defect type.
`AeBAD/` (the archive's wrapper, which also holds the video part AeBAD_V) is accepted
as well: the one sub-folder with this layout is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Mapping, folders_found, image_files

DEFECTS = ("ablation", "breakdown", "fracture", "groove")
DOMAINS = ("same", "background", "illumination", "view")
GOOD = "good"


class AeBAD(DatasetAdapter):
    name = "aebad"
    layout = "AeBAD-S's layout test/<defect>/<domain>/NNN.png with masks ground_truth/<defect>/<domain>/NNN.png (defects ablation, breakdown, fracture, groove)"
    mask_binarize = True
    mask_threshold = 0

    def classify(self, label: str, mapping: Mapping) -> tuple[str | None, str]:
        """`<defect>/<domain>` is looked up in full, then by its defect type (not its domain)."""
        if label not in mapping and label.split("/", 1)[0] in mapping:
            return super().classify(label.split("/", 1)[0], mapping)
        return super().classify(label, mapping)

    def _defects(self, root: Path) -> list[Path]:
        return sorted(d for d in (root / "test").iterdir() if d.is_dir() and d.name != GOOD) if (root / "test").is_dir() else []

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        if not (root / "test").is_dir():
            raise self.layout_error(root, f"no test/ folder here; {folders_found(root)}")
        defects = self._defects(root)
        if not any(d.name in DEFECTS for d in defects):
            raise self.layout_error(root, f"test/ holds none of the defect folders {', '.join(DEFECTS)}")
        if not any((d / dom).is_dir() for d in defects for dom in DOMAINS):
            raise self.layout_error(root, f"test/<defect>/ holds none of the domain folders {', '.join(DOMAINS)}")
        if not (root / "ground_truth").is_dir():
            raise self.layout_error(root, "ground_truth/ (the masks) is missing (half-extracted archive?)")

    def _domains(self, folder: Path) -> list[Path]:
        return sorted(d for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for defect in self._defects(root):
            for domain in self._domains(defect):
                for image in image_files(domain):
                    mask = root / "ground_truth" / defect.name / domain.name / image.name
                    yield self.item(root, image, mask, f"{defect.name}/{domain.name}", mapping, "test", domain=domain.name)

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for split in ("train", "test"):
            for kind in self._domains(root / split):
                for domain in self._domains(kind):
                    for image in image_files(domain):
                        yield self.rel(root, image), image
