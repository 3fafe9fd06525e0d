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

from .base import image_files
from .mvtec_ad import MVTecLikeAdapter


class MVTec3D(MVTecLikeAdapter):
    name = "mvtec_3d"
    layout = "MVTec 3D-AD's layout <category>/test/<defect>/rgb/NNN.png with masks <category>/test/<defect>/gt/NNN.png (categories bagel, ..., tire)"
    categories = ("bagel", "cable_gland", "carrot", "cookie", "dowel", "foam", "peach", "potato", "rope", "tire")
    splits = ("train", "validation", "test")
    mask_binarize = True
    mask_threshold = 0  # any non-zero grey value is defect

    def _check_masks(self, root: Path, cat: Path, defects: list[Path]) -> None:
        for defect in defects:
            if not (defect / "rgb").is_dir():
                raise self.layout_error(root, f"{cat.name}/test/{defect.name}/rgb/ is missing")
            if not (defect / "gt").is_dir():
                raise self.layout_error(root, f"{cat.name}/test/{defect.name}/gt/ (the masks) is missing (half-extracted archive?)")

    def _images(self, kind: Path) -> list[Path]:
        return image_files(kind / "rgb")  # xyz/ beside it holds point clouds, not images

    def _mask(self, cat: Path, defect: Path, image: Path) -> Path:
        return defect / "gt" / image.name
