"""MVTec 3D-AD (Bergmann et al., VISAPP 2022), RGB images only, in the layout of `mvtec_3d_anomaly_detection.tar.xz`.

Publisher's layout (https://www.mvtec.com/company/research/datasets/mvtec-3d-ad):

    <category>/train/good/rgb/NNN.png        normal training images (xyz/NNN.tiff beside: point clouds)
    <category>/validation/good/rgb/NNN.png
    <category>/test/good/rgb/NNN.png
    <category>/test/<defect>/rgb/NNN.png     anomalous test images
    <category>/test/<defect>/gt/NNN.png      their masks (binarised here: anything > 0 is defect)

Categories: bagel, cable_gland, carrot, cookie, dowel, foam, peach, potato, rope, tire.
The xyz point clouds are not images and are neither collected nor listed. The source
label is `<category>/<defect>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from daad.ingest import Item, Skip

from .base import DatasetAdapter, Download, Mapping, image_files

GOOD = "good"
SPLITS = ("train", "validation", "test")


class MVTec3D(DatasetAdapter):
    name = "mvtec_3d"
    title = "MVTec 3D-AD"
    license = "CC-BY-NC-SA-4.0"
    attribution = "MVTec 3D-AD, MVTec Software GmbH (Bergmann et al., VISAPP 2022), CC BY-NC-SA 4.0"
    citation_key = "bergmann2022mvtec3d"
    citation = (
        "Paul Bergmann, Xin Jin, David Sattlegger, Carsten Steger. The MVTec 3D-AD Dataset for Unsupervised "
        "3D Anomaly Detection and Localization. VISAPP 2022, pp. 202-213."
    )
    homepage = "https://www.mvtec.com/company/research/datasets/mvtec-3d-ad"
    layout = "MVTec 3D-AD's layout <category>/test/<defect>/rgb/NNN.png with masks <category>/test/<defect>/gt/NNN.png (categories bagel, ..., tire)"
    categories = ("bagel", "cable_gland", "carrot", "cookie", "dowel", "foam", "peach", "potato", "rope", "tire")
    mask_binarize = True
    mask_threshold = 0  # any non-zero grey value is defect
    downloads = (
        Download(
            url="https://www.mydrive.ch/shares/45920/dd1eb345346df066c63b5c95676b961b/download/428824485-1643285832/mvtec_3d_anomaly_detection.tar.xz",
            filename="mvtec_3d_anomaly_detection.tar.xz",
            md5="d8bb2800fbf3ac88e798da6ae10dc819",  # as pinned by anomalib; MVTec publishes none
        ),
    )

    def _categories(self, root: Path) -> list[Path]:
        return [root / c for c in self.categories if (root / c).is_dir()]

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        cats = self._categories(root)
        if not cats:
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise self.layout_error(root, f"none of its categories ({', '.join(self.categories)}) is here; folders found: {', '.join(found[:10]) or 'none'}")
        for cat in cats:
            test = cat / "test"
            if not test.is_dir():
                raise self.layout_error(root, f"{cat.name}/test/ is missing (half-extracted archive?)")
            for defect in sorted(d for d in test.iterdir() if d.is_dir() and d.name != GOOD):
                if not (defect / "rgb").is_dir():
                    raise self.layout_error(root, f"{cat.name}/test/{defect.name}/rgb/ is missing")
                if not (defect / "gt").is_dir():
                    raise self.layout_error(root, f"{cat.name}/test/{defect.name}/gt/ (the masks) is missing (half-extracted archive?)")

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for cat in self._categories(root):
            for defect in sorted(d for d in (cat / "test").iterdir() if d.is_dir() and d.name != GOOD):
                for image in image_files(defect / "rgb"):
                    yield self.item(root, image, defect / "gt" / image.name, f"{cat.name}/{defect.name}", mapping, "test")

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for cat in self._categories(root):
            for split in SPLITS:
                if not (cat / split).is_dir():
                    continue
                for kind in sorted(d for d in (cat / split).iterdir() if d.is_dir()):
                    for image in image_files(kind / "rgb"):
                        yield self.rel(root, image), image
