"""MVTec LOCO AD (Bergmann, Batzner, Fauser, Sattlegger, Steger, IJCV 2022), `mvtec_loco_anomaly_detection.tar.xz`.

Publisher's layout (https://www.mvtec.com/company/research/datasets/mvtec-loco, and the
readme in the archive), one folder per category:

    <category>/train/good/NNN.png, <category>/validation/good/NNN.png     normal images
    <category>/test/good/NNN.png                                         normal test images
    <category>/test/logical_anomalies/NNN.png                            wrong arrangement, count, ...
    <category>/test/structural_anomalies/NNN.png                         damage, contamination, ...
    <category>/ground_truth/<type>/NNN/000.png, 001.png, ...             one PNG per annotated region
    <category>/defects_config.json                                       [{"defect_name", "pixel_value",
                                                                           "saturation_threshold", ...}]

Categories: breakfast_box, juice_bottle, pushpins, screw_bag, splicing_connectors.

An image may have several masks; each marks its region with the pixel value of its
defect type (`defects_config.json`). The record's mask is the union of all of them. The
source label of a structural anomaly is `<category>/<defect_name>` of the defect that
covers most pixels (all of them go to `meta["defects"]`); when the pixel values name no
defect it is `<category>/structural_anomalies`. Logical anomalies (a missing or extra
part, a wrong mix) are not appearance anomalies: their label is
`<category>/logical_anomalies`, mapped to null by default, so they are counted and never
guessed into a class; their masks are not read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Union

import numpy as np
from PIL import Image

from daad.core.errors import BadMaskError
from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Mapping, folders_found, image_files

CATEGORIES = ("breakfast_box", "juice_bottle", "pushpins", "screw_bag", "splicing_connectors")
LOGICAL, STRUCTURAL = "logical_anomalies", "structural_anomalies"
SPLITS = (("train", "train"), ("validation", "validation"), ("test", "test"))


def defect_names(config: Path) -> dict[int, str]:
    """pixel value -> defect name from one `defects_config.json` ({} when absent or unreadable)."""
    try:
        entries = json.loads(config.read_text())
        return {int(e["pixel_value"]): str(e["defect_name"]) for e in entries}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def _read(mask: Path) -> np.ndarray:
    try:
        with Image.open(mask) as im:
            return np.asarray(im if im.mode in ("L", "I", "I;16") else im.convert("L"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadMaskError(mask, f"cannot decode ({exc})") from None


def region_masks(gt_dir: Path) -> list[Path]:
    return image_files(gt_dir)


def union_mask(gt_dir: Path) -> np.ndarray:
    """0/255 union of every region mask of one image; BadMaskError when there is none or sizes differ."""
    masks = region_masks(gt_dir)
    if not masks:
        raise BadMaskError(gt_dir, "no region masks (000.png, ...) in this ground-truth folder")
    out: np.ndarray | None = None
    for m in masks:
        arr = _read(m) > 0
        if out is None:
            out = arr
        elif arr.shape != out.shape:
            raise BadMaskError(m, f"is {arr.shape[1]}x{arr.shape[0]} but {masks[0].name} is {out.shape[1]}x{out.shape[0]}")
        else:
            out |= arr
    assert out is not None
    return out.astype(np.uint8) * 255


def main_defect(gt_dir: Path, names: dict[int, str]) -> tuple[str, list[str]]:
    """(name of the defect covering most pixels, every defect named) of one image's masks; ("", []) if none is named."""
    area: dict[str, int] = {}
    for m in region_masks(gt_dir):
        try:
            values, counts = np.unique(_read(m), return_counts=True)
        except BadMaskError:
            continue  # the union reports it by name at ingest
        for v, c in zip(values.tolist(), counts.tolist()):
            if v and v in names:
                area[names[v]] = area.get(names[v], 0) + int(c)
    if not area:
        return "", []
    return max(area, key=lambda k: area[k]), sorted(area)


class MVTecLOCO(DatasetAdapter):
    name = "mvtec_loco"
    layout = (
        "MVTec LOCO AD's layout <category>/test/{logical,structural}_anomalies/NNN.png with masks "
        "<category>/ground_truth/<type>/NNN/000.png, ... (categories breakfast_box, juice_bottle, pushpins, screw_bag, splicing_connectors)"
    )

    def _categories(self, root: Path) -> list[Path]:
        return [root / c for c in CATEGORIES if (root / c).is_dir()]

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        cats = self._categories(root)
        if not cats:
            if root.name in CATEGORIES:
                raise self.layout_error(root, f"this is inside one category; pass the folder that holds the category folders ({root.parent})")
            raise self.layout_error(root, f"none of its categories ({', '.join(CATEGORIES)}) is here; {folders_found(root)}")
        for cat in cats:
            if not (cat / "test").is_dir():
                raise self.layout_error(root, f"{cat.name}/test/ is missing (half-extracted archive?)")
            for kind in (LOGICAL, STRUCTURAL):
                if (cat / "test" / kind).is_dir() and not (cat / "ground_truth" / kind).is_dir():
                    raise self.layout_error(root, f"{cat.name}/ground_truth/{kind}/ (the masks) is missing (half-extracted archive?)")

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        for cat in self._categories(root):
            names = defect_names(cat / "defects_config.json")
            for kind in (LOGICAL, STRUCTURAL):
                for image in image_files(cat / "test" / kind):
                    gt = cat / "ground_truth" / kind / image.stem
                    label, defects = f"{cat.name}/{kind}", []
                    if kind == STRUCTURAL:
                        main, defects = main_defect(gt, names)
                        label = f"{cat.name}/{main}" if main else label
                    yield self.item(root, image, lambda g=gt: union_mask(g), label, mapping, "test", anomaly_type=kind, defects=defects)

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for cat in self._categories(root):
            for split, _ in SPLITS:
                base = cat / split
                if not base.is_dir():
                    continue
                for kind in sorted(d for d in base.iterdir() if d.is_dir()):
                    for image in image_files(kind):
                        yield self.rel(root, image), image
