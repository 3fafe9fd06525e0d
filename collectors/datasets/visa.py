"""VisA, the Visual Anomaly dataset (Zou et al., ECCV 2022).

Publisher's layout (https://github.com/amazon-science/spot-diff, `VisA_20220922.tar`):

    split_csv/1cls.csv                       object,split,label,image,mask (label normal|anomaly,
                                             paths relative to the root)
    <object>/Data/Images/Normal/NNNN.JPG
    <object>/Data/Images/Anomaly/NNN.JPG
    <object>/Data/Masks/Anomaly/NNN.png      masks: 0 background, k > 0 = defect type id k
    <object>/image_anno.csv                  image,label,mask (label: `normal` or defect
                                             names, several comma-separated)

Objects: candle, capsules, cashew, chewinggum, fryum, macaroni1, macaroni2, pcb1-pcb4,
pipe_fryum. The anomalies are the `anomaly` rows of `1cls.csv`; their defect names
come from `image_anno.csv`. The source label is `<object>/<defect names>`; an image
with several defect names gets a class only when all of them map to the same class.
Masks are binarised (any non-zero value is defect), as the publisher's own
`prepare_data.py` does.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator, Union

from daad.core.ingest import Item, Skip

from .base import DatasetAdapter, Mapping

SPLIT_CSV = Path("split_csv") / "1cls.csv"
ANNO = "image_anno.csv"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


class VisA(DatasetAdapter):
    name = "visa"
    layout = "VisA's layout split_csv/1cls.csv, <object>/Data/Images/{Normal,Anomaly}/*.JPG, <object>/Data/Masks/Anomaly/*.png and <object>/image_anno.csv"
    mask_binarize = True
    mask_threshold = 0

    def check_layout(self, root: Union[str, Path]) -> None:
        root = self.require_dir(root)
        if not (root / SPLIT_CSV).is_file():
            raise self.layout_error(root, f"{SPLIT_CSV} is missing")
        rows = _read_csv(root / SPLIT_CSV)
        if not rows or not {"object", "split", "label", "image", "mask"} <= set(rows[0]):
            raise self.layout_error(root, f"{SPLIT_CSV} lacks the columns object,split,label,image,mask")
        for obj in sorted({r["object"] for r in rows}):
            if not (root / obj / "Data" / "Images").is_dir():
                raise self.layout_error(root, f"{obj}/Data/Images/ is missing though {SPLIT_CSV} lists {obj} (half-extracted archive?)")
            if not (root / obj / ANNO).is_file():
                raise self.layout_error(root, f"{obj}/{ANNO} is missing (half-extracted archive?)")

    def _defects(self, root: Path, obj: str) -> dict[str, str]:
        """image path (and bare file name) -> defect names, from <object>/image_anno.csv."""
        out: dict[str, str] = {}
        for row in _read_csv(root / obj / ANNO):
            label = (row.get("label") or "").strip().lower()
            image = (row.get("image") or "").strip()
            out[image] = label
            out.setdefault(Path(image).name, label)
        return out

    def classify(self, label: str, mapping: Mapping) -> tuple[str | None, str]:
        """A full `<object>/<names>` key first; else every comma-separated name must map to one class."""
        if label in mapping:
            return super().classify(label, mapping)
        obj, _, names = label.partition("/")
        classes = set()
        for name in (n.strip() for n in names.split(",") if n.strip()):
            cls, why = super().classify(f"{obj}/{name}", mapping)
            if cls is None:
                return None, f"{label}: {why.split(': ', 1)[1]} ({name})" if "," in names else why
            classes.add(cls)
        if len(classes) != 1:
            return None, f"{label}: its defects map to different classes ({', '.join(sorted(classes)) or 'none'})"
        return classes.pop(), ""

    def iter_items(self, root: Union[str, Path], mapping: Mapping | None = None) -> Iterator[Union[Item, Skip]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        mapping = self.mapping() if mapping is None else mapping
        defects: dict[str, dict[str, str]] = {}
        for row in _read_csv(root / SPLIT_CSV):
            if row["label"] != "anomaly":
                continue
            obj = row["object"]
            if obj not in defects:
                defects[obj] = self._defects(root, obj)
            names = defects[obj].get(row["image"]) or defects[obj].get(Path(row["image"]).name) or "unlabelled"
            yield self.item(root, root / row["image"], root / row["mask"], f"{obj}/{names}", mapping, row["split"])

    def iter_all_images(self, root: Union[str, Path]) -> Iterator[tuple[str, Path]]:
        root = Path(root).expanduser()
        self.check_layout(root)
        for obj in sorted({r["object"] for r in _read_csv(root / SPLIT_CSV)}):
            for kind in ("Normal", "Anomaly"):
                folder = root / obj / "Data" / "Images" / kind
                if folder.is_dir():
                    for image in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
                        yield self.rel(root, image), image
