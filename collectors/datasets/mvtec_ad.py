"""MVTec AD (Bergmann et al., CVPR 2019), in the layout of `mvtec_anomaly_detection.tar.xz`.

Publisher's layout (https://www.mvtec.com/company/research/datasets/mvtec-ad, and the
readme in the archive), one folder per category:

    <category>/train/good/NNN.png                 normal training images
    <category>/test/good/NNN.png                  normal test images
    <category>/test/<defect>/NNN.png              anomalous test images
    <category>/ground_truth/<defect>/NNN_mask.png binary masks (0/255), same size

Categories: bottle, cable, capsule, carpet, grid, hazelnut, leather, metal_nut, pill,
screw, tile, toothbrush, transistor, wood, zipper. The source label of a sample is
`<category>/<defect>`. `MVTecLikeAdapter` is reused by MPDD, which follows this layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Download, Mapping, folders_found, image_files

GOOD = "good"


class MVTecLikeAdapter(DatasetAdapter):
    """`<category>/{train,test}/<type>/*.png` with masks in `<category>/ground_truth/<type>/<stem>_mask.png`."""

    categories: tuple[str, ...] = ()
    mask_suffix = "_mask"
    splits: tuple[str, ...] = ("train", "test")

    def _categories(self, root: Path) -> list[Path]:
        return [root / c for c in self.categories if (root / c).is_dir()]

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        cats = self._categories(root)
        if not cats:
            if root.name in self.categories or root.parent.name in self.categories:
                raise self.layout_error(root, f"this is inside one category; pass the folder that holds the category folders ({root.parent if root.name in self.categories else root.parent.parent})")
            raise self.layout_error(root, f"none of its categories ({', '.join(self.categories)}) is here; {folders_found(root)}")
        for cat in cats:
            test = cat / "test"
            if not test.is_dir():
                raise self.layout_error(root, f"{cat.name}/test/ is missing (half-extracted archive?)")
            self._check_masks(root, cat, [d for d in sorted(test.iterdir()) if d.is_dir() and d.name != GOOD])

    # -- the two places where MVTec-like layouts differ (MVTec 3D-AD overrides them) -----
    def _check_masks(self, root: Path, cat: Path, defects: list[Path]) -> None:
        """Raise LayoutError when the masks of `defects` (folders of cat/test) are not where they belong."""
        if defects and not (cat / "ground_truth").is_dir():
            raise self.layout_error(root, f"{cat.name}/ground_truth/ is missing, so the masks of {cat.name}/test/{defects[0].name} are not here (half-extracted archive?)")

    def _images(self, kind: Path) -> list[Path]:
        """The images of one `<split>/<kind>` folder."""
        return image_files(kind)

    def _mask(self, cat: Path, defect: Path, image: Path) -> Path:
        return cat / "ground_truth" / defect.name / f"{image.stem}{self.mask_suffix}.png"

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for cat in self._categories(root):
            for defect in sorted(d for d in (cat / "test").iterdir() if d.is_dir() and d.name != GOOD):
                for image in self._images(defect):
                    yield self.item(root, image, self._mask(cat, defect, image), f"{cat.name}/{defect.name}", mapping, "test")

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for cat in self._categories(root):
            for split in self.splits:
                base = cat / split
                if not base.is_dir():
                    continue
                for kind in sorted(d for d in base.iterdir() if d.is_dir()):
                    for image in self._images(kind):
                        yield self.rel(root, image), image


class MVTecAD(MVTecLikeAdapter):
    name = "mvtec_ad"
    title = "MVTec AD"
    license = "CC-BY-NC-SA-4.0"
    attribution = "MVTec AD, MVTec Software GmbH (Bergmann et al., CVPR 2019), CC BY-NC-SA 4.0"
    citation_key = "bergmann2019mvtec"
    citation = (
        "Paul Bergmann, Michael Fauser, David Sattlegger, Carsten Steger. MVTec AD - A Comprehensive "
        "Real-World Dataset for Unsupervised Anomaly Detection. CVPR 2019, pp. 9592-9600."
    )
    homepage = "https://www.mvtec.com/company/research/datasets/mvtec-ad"
    layout = "MVTec AD's layout <category>/test/<defect>/NNN.png with masks <category>/ground_truth/<defect>/NNN_mask.png (categories bottle, cable, ..., zipper)"
    categories = (
        "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
        "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
    )  # fmt: skip
    downloads = (
        Download(
            url="https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/420938113-1629952094/mvtec_anomaly_detection.tar.xz",
            filename="mvtec_anomaly_detection.tar.xz",
            sha256="cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
            size=5_264_982_680,
        ),
    )
